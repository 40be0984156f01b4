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
