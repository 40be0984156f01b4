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

export function polish(model: FamilyModel, input: PacketInput, holds: (out: ConcreteOutcome, input: PacketInput) => boolean): PacketInput {
  let cur = input;
  const defaults = DEFAULT_FIELDS[model.family];
  for (const f of ORDER) {
    const want = defaults[f];
    if (want === undefined || cur.fields[f] === undefined || cur.fields[f] === want) continue;
    const next: PacketInput = { ...cur, fields: { ...cur.fields, [f]: want } };
    if (holds(runPacket(model, next), next)) cur = next;
  }
  return cur;
}

/**
 * A witness that comes in by lo reads like a looped-back local packet; when some other device
 * shows the same thing (one no rule names first), that one is used instead.
 */
export function preferDevice(model: FamilyModel, input: PacketInput, holds: (out: ConcreteOutcome, input: PacketInput) => boolean): PacketInput {
  if (input.ingress.kind !== 'iface' || input.ingress.device !== 'lo') return input;
  const unnamed = model.ifaces.unnamed();
  const names = model.ifaces.names.filter((n, i) => n !== '' && n !== 'lo' && i !== unnamed);
  const tries = [...(unnamed !== undefined ? [model.ifaces.nameOf(unnamed)] : []), ...names].slice(0, 8);
  for (const device of tries) {
    const next: PacketInput = { ...input, ingress: { kind: 'iface', device } };
    if (holds(runPacket(model, next), next)) return next;
  }
  return input;
}
