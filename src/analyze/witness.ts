import { PORT_PROTOS, PROTO, type NumericField, TCP_FLAG } from '../ir/fields.js';
import { formatAddress } from '../util/ip.js';
import { ADDRTYPE_UNKNOWN, type ConcreteOutcome, isAnswer, runPacket } from './concrete/interp.js';
import type { PacketInput } from './concrete/input.js';
import type { FamilyModel, ModelRule } from './model/build.js';
import { icmpProto } from './model/fields.js';
import type { RuleRef, Witness } from './types.js';

/** Turning concrete packets and their outcomes into witnesses for reports. */

export function ruleRef(model: FamilyModel, r: ModelRule): RuleRef {
  return { family: model.family, table: r.table, chain: r.chain, index: r.index, span: r.span, text: r.text };
}

const PROTO_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(PROTO).map(([k, v]) => [v, k]));

function flagsText(flags: bigint): string {
  const names = (Object.entries(TCP_FLAG) as [string, number][]).filter(([, bit]) => (Number(flags) & bit) !== 0).map(([n]) => n);
  return names.length ? names.join(',') : 'none';
}

/** `tcp 203.0.113.7:40000 -> 10.0.0.5:22 [SYN]` for a set of header values. */
export function headerSummary(model: FamilyModel, v: Readonly<Partial<Record<NumericField, bigint>>>): string {
  const fam = model.family;
  const proto = Number(v.proto ?? 0n);
  const name = PROTO_NAMES[proto] ?? `proto ${proto}`;
  const addr = (a: bigint | undefined) => formatAddress(fam, a ?? 0n);
  const wrap = (a: string) => (fam === 'ipv6' ? `[${a}]` : a);
  const fragment = (v.fragment ?? 0n) === 1n;
  if (!fragment && PORT_PROTOS.includes(proto)) {
    const flags = proto === PROTO.tcp && v.tcpflags !== undefined ? ` [${flagsText(v.tcpflags)}]` : '';
    return `${name} ${wrap(addr(v.saddr))}:${v.sport ?? 0n} -> ${wrap(addr(v.daddr))}:${v.dport ?? 0n}${flags}`;
  }
  if (!fragment && proto === icmpProto(fam)) {
    return `${name} ${addr(v.saddr)} -> ${addr(v.daddr)} type ${v.icmptype ?? 0n} code ${v.icmpcode ?? 0n}`;
  }
  return `${name} ${addr(v.saddr)} -> ${addr(v.daddr)}${fragment ? ' (fragment)' : ''}`;
}

export function inputSummary(model: FamilyModel, input: PacketInput): string {
  const where = input.ingress.kind === 'iface' ? `in ${input.ingress.device}` : isAnswer(model, input) ? 'sent by this host in answer to another packet' : 'from a local socket';
  const extras: string[] = [input.ctState];
  if (input.fields.mark) extras.push(`mark 0x${input.fields.mark.toString(16)}`);
  return `${headerSummary(model, input.fields)} ${where} [${extras.join(', ')}]`;
}

export function makeWitness(model: FamilyModel, input: PacketInput, outcome: ConcreteOutcome = runPacket(model, input)): Witness {
  const path = outcome.path.map((s) => ({
    hook: s.hook,
    table: s.table,
    chain: s.chain,
    ...(s.ruleId !== undefined ? { rule: ruleRef(model, model.rules[s.ruleId]) } : {}),
    action: s.action,
  }));
  const leaves = outcome.verdict !== 'dropped';
  return {
    input,
    summary: inputSummary(model, input) + (outcome.ownLinkLocal ? ` (taking ${formatAddress(model.family, outcome.ownLinkLocal.addr)} as ${outcome.ownLinkLocal.device}'s own link-local address)` : ''),
    verdict: outcome.verdict,
    ...(outcome.dropReason ? { dropReason: outcome.dropReason } : {}),
    ...(outcome.egress !== undefined ? { egress: outcome.egress } : {}),
    ...(leaves ? { egressSummary: headerSummary(model, outcome.final) } : {}),
    path,
    dependsOn: outcome.opaqueUsed.map((k) => describeOpaque(model, k)),
  };
}

function describeOpaque(model: FamilyModel, key: string): string {
  if (key === ADDRTYPE_UNKNOWN) return 'address types (which addresses are this host’s): unknown without a host model';
  const m = /^target(\d+)$/.exec(key);
  if (m) {
    const r = model.rules[Number(m[1])];
    return r ? `the unmodelled target of ${r.text}` : key;
  }
  for (const r of model.rules) {
    const reason = findOpaqueReason(r.constraint, key);
    if (reason) return reason;
  }
  return key;
}

function findOpaqueReason(c: ModelRule['constraint'], key: string): string | undefined {
  switch (c.op) {
    case 'opaque':
      return c.key === key ? c.reason : undefined;
    case 'and':
    case 'or':
      for (const x of c.of) {
        const r = findOpaqueReason(x, key);
        if (r) return r;
      }
      return undefined;
    case 'not':
      return findOpaqueReason(c.of, key);
    default:
      return undefined;
  }
}
