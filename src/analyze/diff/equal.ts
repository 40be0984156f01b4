import { type IntervalSet, intersect } from '../../util/intervals.js';
import { type Box, Inexact, type Space, setsOverlap } from './space.js';
import { type BitsVal, type Val, sameVal } from './sym.js';
import { bitsPreimage, maskedSet } from './region.js';
import { FIELDS, bitsOf } from '../model/fields.js';

/**
 * A box split by whether two values are equal. A constant against a slot is a box condition;
 * two different slots are compared through a relation slot of the space (see ExtraSlot), which
 * both sides share.
 */
export function equalParts(space: Space, box: Box, a0: Val, b0: Val): { eq: Box[]; ne: Box[] } {
  let a = a0;
  let b = b0;
  if (sameVal(a, b)) return { eq: [box], ne: [] };
  if (a.k === 'const' && b.k === 'const') return a.v === b.v ? { eq: [box], ne: [] } : { eq: [], ne: [box] };
  if (a.k === 'const') [a, b] = [b, a];
  // Partly rewritten values (an address after NETMAP) against a constant or the same slot.
  if (b.k === 'bits' && a.k !== 'bits') [a, b] = [b, a];
  if (a.k === 'bits') {
    const eq = bitsEqual(space, box, a, b);
    if (eq === undefined) throw new Inexact('a comparison of partly rewritten values', a.slot);
    if (eq.length === 0) return { eq: [], ne: [box] };
    const s = space.split(box, a.slot, eq);
    return { eq: s.yes, ne: s.no };
  }
  if (b.k === 'bits') throw new Inexact('a comparison of partly rewritten values', b.slot);
  if (a.k !== 'slot') return { eq: [], ne: [box] };
  if (b.k === 'const') {
    const s = space.split(box, a.slot, [[b.v - a.off, b.v - a.off]]);
    return { eq: s.yes, ne: s.no };
  }
  const sa = shifted(space.values(box, a.slot), a.off);
  const sb = shifted(space.values(box, b.slot), b.off);
  if (!setsOverlap(sa, sb)) return { eq: [], ne: [box] };
  const one = (s: IntervalSet) => s.length === 1 && s[0][0] === s[0][1];
  if (one(sa) && one(sb)) return { eq: [box], ne: [] };
  if (a.off !== 0n || b.off !== 0n) throw new Inexact('a comparison of two shifted values', a.slot);
  if (intersect(sa, sb).length === 0) return { eq: [], ne: [box] };
  const [x, y] = a.slot < b.slot ? [a.slot, b.slot] : [b.slot, a.slot];
  const rel = space.extra({ kind: 'relation', key: `slot${x} = slot${y}`, a: x, b: y });
  const s = space.split(box, rel, [[1n, 1n]]);
  return { eq: s.yes, ne: s.no };
}

function shifted(set: IntervalSet, off: bigint): IntervalSet {
  return off === 0n ? set : set.map(([lo, hi]) => [lo + off, hi + off] as const);
}

/**
 * The values x of a's slot for which (x & keep) ^ xor equals b: b a constant, the slot itself,
 * or another rewrite of it; undefined when that set has no compact interval form.
 */
function bitsEqual(space: Space, box: Box, a: BitsVal, b: Val): IntervalSet | undefined {
  const width = bitsOf(FIELDS[a.slot], space.family);
  const max = (1n << BigInt(width)) - 1n;
  if (b.k === 'const') return bitsPreimage(space, box, a, [[b.v, b.v]]);
  // (x & k1) ^ x1 = (x & k2) ^ x2  <=>  x & (k1 ^ k2) = x1 ^ x2 (the slot itself: k2 = all, x2 = 0).
  const [k2, x2] = b.k === 'slot' && b.slot === a.slot && b.off === 0n ? [max, 0n] : b.k === 'bits' && b.slot === a.slot ? [b.keep, b.xor] : [undefined, undefined];
  if (k2 === undefined || x2 === undefined) return undefined;
  const mask = (a.keep ^ k2) & max;
  const value = (a.xor ^ x2) & max;
  if ((value & ~mask) !== 0n) return [];
  return maskedSet(width, mask, value);
}
