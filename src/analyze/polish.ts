import type { Constraint } from '../ir/constraint.js';
import type { NumericField } from '../ir/fields.js';
import { DEFAULT_FIELDS } from './box/candidates.js';
import { type ConcreteOutcome, runPacket } from './concrete/interp.js';
import type { PacketInput } from './concrete/input.js';
import type { FamilyModel } from './model/build.js';

/**
 * Makes a solver's witness read naturally: every header field the claim does not depend on is
 * set back to an ordinary value (source port 40000, TTL 64, documentation addresses…), one at
 * a time, keeping each change only if the concrete run still shows what the witness is for.
 */
const ORDER: readonly NumericField[] = ['sport', 'dport', 'ttl', 'tcpflags', 'length', 'tos', 'icmptype', 'icmpcode', 'saddr', 'daddr', 'macsrc', 'uid', 'gid'];

export function polish(model: FamilyModel, input: PacketInput, holds: (out: ConcreteOutcome, input: PacketInput) => boolean, keep: ReadonlySet<string> = new Set()): PacketInput {
  let cur = input;
  const defaults = DEFAULT_FIELDS[model.family];
  for (const f of ORDER) {
    if (keep.has(f)) continue;
    const want = defaults[f];
    if (want === undefined || cur.fields[f] === undefined || cur.fields[f] === want) continue;
    const next: PacketInput = { ...cur, fields: { ...cur.fields, [f]: want } };
    if (holds(runPacket(model, next), next)) cur = next;
  }
  return cur;
}

/**
 * A witness reads best, and the simulator can replay it, as the first packet of a connection
 * coming in by a real device: when it shows the same thing as NEW (a packet the raw table drops
 * never gets a state anyway), or by a device other than lo (one no rule names first), that
 * one is used instead.
 */
export function preferDevice(model: FamilyModel, input: PacketInput, holds: (out: ConcreteOutcome, input: PacketInput) => boolean, keep: ReadonlySet<string> = new Set()): PacketInput {
  if (input.ctState !== 'NEW' && !keep.has('ctstate')) {
    const fresh: PacketInput = { ...input, ctState: 'NEW' };
    if (holds(runPacket(model, fresh), fresh)) input = fresh;
  }
  if (keep.has('iif') || input.ingress.kind !== 'iface' || input.ingress.device !== 'lo') return input;
  const unnamed = model.ifaces.unnamed();
  const names = model.ifaces.names.filter((n, i) => n !== '' && n !== 'lo' && i !== unnamed);
  const tries = [...(unnamed !== undefined ? [model.ifaces.nameOf(unnamed)] : []), ...names].slice(0, 8);
  for (const device of tries) {
    const next: PacketInput = { ...input, ingress: { kind: 'iface', device } };
    if (holds(runPacket(model, next), next)) return next;
  }
  return input;
}

/**
 * Both: ordinary header values, then a new connection from a real device (findings'
 * witnesses). `about` is the rule the witness is about: the fields its tests read are left as
 * they are, so the packet still matches it.
 */
export function readable(model: FamilyModel, input: PacketInput, holds: (out: ConcreteOutcome, input: PacketInput) => boolean, about?: Constraint): PacketInput {
  const keep = new Set<string>();
  if (about) fieldsOf(about, keep);
  return preferDevice(model, polish(model, input, holds, keep), holds, keep);
}

/** Every field (and interface) a constraint reads. */
export function fieldsOf(c: Constraint, out: Set<string>): Set<string> {
  switch (c.op) {
    case 'in':
    case 'masked':
    case 'present':
    case 'iface':
      out.add(c.field);
      // Fields computed from others are read from their sources.
      if (c.field === 'dscp') out.add('tos');
      if (c.field === 'srctype') out.add('saddr');
      if (c.field === 'dsttype' || c.field === 'pkttype') out.add('daddr');
      return out;
    case 'and':
    case 'or':
      for (const x of c.of) fieldsOf(x, out);
      return out;
    case 'not':
      return fieldsOf(c.of, out);
    default:
      return out;
  }
}
