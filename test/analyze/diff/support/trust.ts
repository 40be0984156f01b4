import fc from 'fast-check';
import { diffPolicies } from '../../../../src/analyze/diff/index.js';
import type { DiffClass, DiffReport } from '../../../../src/analyze/diff/types.js';
import { toSimPacket } from '../../../../src/analyze/replay.js';
import type { Policy } from '../../../../src/ir/policy.js';
import type { SimOutcome } from '../../../../src/netfilter/api.js';
import { opaqueParts } from '../../../../src/ir/constraint.js';
import { type Match, TARGET_KINDS, type Target, matchConstraint, targetEffect } from '../../../../src/kinds/index.js';
import { FAMILIES } from '../../../../src/util/ip.js';
import { policyArb } from '../../../gen/policy.js';
import { MUTATIONS, type Mutation, mutate } from './mutate.js';
import { SimPair, describePacket, outcomeLine, sampleDifference } from './sample.js';

/** The cases and the check of the diff's trust property (mutation-trust.test.ts); also run by hand over many seeds. */

function show(p: Policy): string {
  const out: string[] = [];
  for (const family of ['ipv4', 'ipv6'] as const) {
    for (const t of p.rulesets[family].tables) {
      for (const c of t.chains) {
        if (!c.rules.length && (c.policy ?? 'ACCEPT') === 'ACCEPT') continue;
        out.push(`  ${family} ${t.name}/${c.name}${c.policy ? ` policy ${c.policy}` : ''}`);
        for (const r of c.rules) out.push(`    ${JSON.stringify(r, (k, v) => (k === 'span' ? undefined : typeof v === 'bigint' ? v.toString() : v))}`);
      }
    }
  }
  return out.join('\n');
}

function classLine(c: DiffClass): string {
  return `${c.family} ${c.kind}: ${c.cubes[0]?.flow} | witness ${c.witness.summary} | old ${c.old.summary} | new ${c.new.summary} | replay ${c.replay.status}: ${c.replay.detail}`;
}

/** The witness, run here in fresh simulators of both sides (the policies' own host): the difference must show. */
function replayHere(oldPolicy: Policy, newPolicy: Policy, c: DiffClass): string | undefined {
  const input = c.witness.input;
  const pair = new SimPair(oldPolicy, newPolicy);
  const x = {
    ingress: input.ingress.kind === 'iface' ? ({ kind: 'iface', device: input.ingress.device } as const) : ({ kind: 'local' } as const),
    packet: toSimPacket(input),
    ...(input.ingress.kind === 'local' ? { uid: Number(input.fields.uid ?? 0n), gid: Number(input.fields.gid ?? 0n) } : {}),
  };
  const r = pair.step(x);
  // The rule that dropped the packet itself: a REJECT's answer walks OUTPUT too, and its steps
  // (event 'answer') are the answer's fate, not the packet's.
  const decidedBy = (o: SimOutcome) => [...o.trace].reverse().find((s) => s.event !== 'answer' && (s.rule !== undefined || s.action.startsWith('policy')))?.action ?? o.dropReason;
  const differs = outcomeLine(r.a) !== outcomeLine(r.b) || (r.a.verdict === 'dropped' && r.b.verdict === 'dropped' && decidedBy(r.a) !== decidedBy(r.b));
  return differs ? undefined : `witness ${describePacket(x.packet, x.ingress)} shows no difference in the simulator: old ${outcomeLine(r.a)}, new ${outcomeLine(r.b)}`;
}

export interface Tally {
  cases: number;
  /** Classes of packets of connections no replay can set up (see unsetUp). */
  unconfirmable: number;
  byKind: Record<string, number>;
  sampled: number;
  reported: number;
  onlyDiff: number;
  unknown: number;
  packets: number;
  notReplayed: number;
}

export async function checkCase(policy: Policy, m: Mutation, noHost: boolean, seed: number, run: number, tally: Tally): Promise<string | undefined> {
  const strip = (p: Policy): Policy => (noHost ? { ...p, host: undefined } : p);
  const report: DiffReport = await diffPolicies({ path: 'old', policy: strip(policy) }, { path: 'new', policy: strip(m.policy) }, { timeoutMs: 10_000 });
  const sample = sampleDifference(policy, m.policy, { seed: seed + run, perFamily: 60 });
  tally.cases++;
  tally.byKind[m.kind] = (tally.byKind[m.kind] ?? 0) + 1;
  tally.packets += sample.compared;
  const where = () =>
    `case ${run} (${m.what}${noHost ? ', diff without host model' : ''})\nold policy:\n${show(policy)}\nreport: ${report.status}\n  ${[...report.classes.map(classLine), ...report.unknown.map((u) => `unknown: ${u.reason} ${u.region ?? ''}`)].join('\n  ')}`;
  if (report.internalErrors.length) return `internal errors: ${report.internalErrors.map((e) => `${e.message} [${e.witness ?? ''}]`).join('; ')} in ${where()}`;
  if (m.noop) {
    if (sample.found) return `a no-op edit made the simulator answer differently: ${JSON.stringify(sample.found)} in ${where()}`;
    if (report.status !== 'equivalent') return `a no-op edit is not proved equivalent in ${where()}`;
    return undefined;
  }
  if (report.status === 'unknown') tally.unknown++;
  if (sample.found) {
    tally.sampled++;
    if (report.status !== 'different') return `the simulator finds a difference the diff does not report: ${JSON.stringify(sample.found)} in ${where()}`;
  }
  if (report.status !== 'different') return undefined;
  tally.reported++;
  let replayed = 0;
  let hostless = 0;
  for (const c of report.classes) {
    if (c.replay.status !== 'agrees') {
      // Without a host model an address-type test has no answer to replay with, and a made-up
      // host joins no multicast group.
      if (noHost && (c.dependsOn.length > 0 || c.replay.detail.includes('without a host model'))) hostless++;
      else if (unsetUp(c)) {
        // A packet of a connection these rules cannot make (or a RELATED one, which needs an
        // expectation): real on a host whose connections outlive a ruleset change, as the
        // report assumes, but neither sampling nor a replay can make one. Counted, not judged.
        hostless++;
        tally.unconfirmable++;
      } else tally.notReplayed++;
      continue;
    }
    replayed++;
    // Here only a new connection's packet is replayed again on its own: a packet of an existing
    // connection needs the connection set up first, side by side, which the diff's replay did
    // (replay.ts replayEstablished) and checked against the model.
    if (!noHost && c.witness.input.ctState === 'NEW') {
      const problem = replayHere(policy, m.policy, c);
      if (problem) return `${problem} (class ${classLine(c)}) in ${where()}`;
    }
  }
  if (!sample.found) {
    tally.onlyDiff++;
    if (replayed === 0 && hostless < report.classes.length) return `the diff reports a difference that neither sampling nor a replayed witness shows in ${where()}`;
  }
  return undefined;
}

/** A class of packets of an existing connection whose witness no replay could set up. */
function unsetUp(c: DiffClass): boolean {
  const state = c.witness.input.ctState;
  if (state === 'RELATED') return true;
  return state === 'ESTABLISHED' && /cannot be set up|is not in this class/.test(c.replay.detail);
}

export function newTally(): Tally {
  return { cases: 0, unconfirmable: 0, byKind: {}, sampled: 0, reported: 0, onlyDiff: 0, unknown: 0, packets: 0, notReplayed: 0 };
}

export interface Case {
  readonly policy: Policy;
  readonly mutation: Mutation;
  readonly noHost: boolean;
}

/** Match kinds the analyzer models (some still have unmodelled variants, which modelledOnly drops). */
const MODELLED_MATCHES: Match['kind'][] = ['addr', 'port', 'proto', 'iface', 'ct-state', 'ct-status', 'ct-direction', 'ct-tuple', 'tcp-flags', 'icmp', 'mac', 'mark', 'addrtype', 'dscp', 'ttl', 'pkttype', 'length', 'fragment', 'owner', 'helper'];
const MODELLED_TARGETS: Target['kind'][] = (Object.keys(TARGET_KINDS) as Target['kind'][]).filter((k) => !['opaque', 'queue', 'tproxy'].includes(k));

/**
 * The policy without rules nfproof does not model (unknown modules, rate limits, QUEUE…): a
 * difference that hinges on one is reported with what it depends on and cannot be replayed,
 * so the exact property is checked on the rest (diff.test.ts checks those reports by hand).
 */
export function modelledOnly(p: Policy): Policy {
  const rulesets = { ...p.rulesets };
  for (const family of FAMILIES) {
    const modelled = (r: Policy['rulesets']['ipv4']['tables'][number]['chains'][number]['rules'][number]) =>
      r.matches.every((m) => opaqueParts(matchConstraint(m, family)).length === 0) && targetEffect(r.target, family).type !== 'opaque';
    rulesets[family] = { ...p.rulesets[family], tables: p.rulesets[family].tables.map((t) => ({ ...t, chains: t.chains.map((c) => ({ ...c, rules: c.rules.filter(modelled) })) })) };
  }
  return { ...p, rulesets };
}

/** The cases of one seed: random policies, each with one mutation. */
export function trustCases(seed: number, runs: number): Case[] {
  return fc
    .sample(
      fc.tuple(
        policyArb({ maxRules: 6, maxUserChains: 2, maxMatches: 2, expectations: false, comments: false, host: true, matchKinds: MODELLED_MATCHES, targetKinds: MODELLED_TARGETS }),
        fc.constantFrom(...MUTATIONS),
        fc.array(fc.nat(1000), { minLength: 3, maxLength: 3 }),
        fc.boolean(),
      ),
      { seed, numRuns: runs },
    )
    .flatMap(([generated, kind, choices, noHost]) => {
      const policy = modelledOnly(generated);
      const mutation = mutate(policy, kind, choices);
      return mutation ? [{ policy, mutation, noHost }] : [];
    });
}
