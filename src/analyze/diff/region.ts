import { type Constraint, ifaceMatches } from '../../ir/constraint.js';
import { CT_STATE, type NumericField } from '../../ir/fields.js';
import { type IntervalSet, contains, intersect, normalize, union } from '../../util/intervals.js';
import type { Family } from '../../util/ip.js';
import { FIELDS, FIELD_SLOT, bitsOf, fieldMax, presenceOf } from '../model/fields.js';
import type { RoutingView } from '../model/routing.js';
import { type Box, Inexact, type Space, protosWith } from './space.js';
import { type BitsVal, type Piece, type Val, evalVal, getVal, present, slotVal } from './sym.js';

/**
 * Where a rule's constraint holds within a piece of header space, exactly, as disjoint boxes.
 * The constraint speaks of the packet as it is at the rule; the piece says how each field
 * relates to the arriving packet (a slot, or a constant), so each test becomes a condition on
 * one slot. `and` refines, `or` adds disjoint parts, `not` subtracts.
 *
 * Unmodelled tests become slots of their own (the same unknown answer on both sides when the
 * alignment pairs the rules that hold them). A test with no exact box form (a scattered mask
 * on a wide field whose value is not known) throws Inexact.
 */
export class Matcher {
  /** The address-type field's value per set of addresses (disjoint), when the host model tells them. */
  private readonly addrTypes?: readonly [IntervalSet, number][];

  constructor(
    readonly space: Space,
    readonly family: Family,
    /** This side's name for an unmodelled test (paired keys share one slot). */
    private readonly opaqueKey: (key: string) => string,
    routing?: RoutingView,
  ) {
    if (routing?.hasHost) this.addrTypes = routing.addrTypeSteps();
  }

  region(c: Constraint, p: Piece, box: Box): Box[] {
    switch (c.op) {
      case 'true':
        return [box];
      case 'false':
        return [];
      case 'and': {
        let acc: Box[] = [box];
        for (const x of c.of) {
          acc = acc.flatMap((b) => this.region(x, p, b));
          if (acc.length === 0) break;
        }
        return acc;
      }
      case 'or': {
        const out: Box[] = [];
        let rest: Box[] = [box];
        for (const x of c.of) {
          if (rest.length === 0) break;
          const hit = rest.flatMap((b) => this.region(x, p, b));
          if (hit.length === 0) continue;
          out.push(...hit);
          rest = this.space.minus(rest, hit);
        }
        return out;
      }
      case 'not':
        return this.space.minus([box], this.region(c.of, p, box));
      case 'in':
        this.statusKnown(p, c.field);
        return this.test(p, box, c.field, c.set);
      case 'masked':
        this.statusKnown(p, c.field);
        return this.masked(p, box, c.field, c.mask, c.value);
      case 'present': {
        const v = getVal(p.sym, c.field);
        return this.presenceRegion(p, box, c.field).flatMap((b) =>
          v.k === 'const' ? (v.v <= fieldMax(c.field, this.family) ? [b] : []) : v.k === 'bits' ? [b] : this.onSlot(b, v, [[0n, fieldMax(c.field, this.family)]]),
        );
      }
      case 'iface': {
        const classes = this.space.ifaces.matching(c.name, c.wildcard);
        const v = c.field === 'iif' ? p.sym.iif : p.sym.oif;
        if (v.k === 'const') return ifaceMatches(this.space.ifaces.nameOf(Number(v.v)), c.name, c.wildcard) ? [box] : [];
        return this.onSlot(box, v, classes);
      }
      case 'opaque': {
        const slot = this.space.extra({ kind: 'opaque', key: this.opaqueKey(c.key), reason: c.reason });
        const b = this.space.restrict(box, slot, [[1n, 1n]]);
        return b ? [b] : [];
      }
      default: {
        const never: never = c;
        throw new Error(`unhandled constraint ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * The part of a box where a field exists. Where the piece's class tells, all or nothing;
   * otherwise the condition on the protocol (ports, TCP, ICMP fields, not on a non-first
   * fragment) or on the conntrack state (ct fields) as a box.
   */
  presenceRegion(p: Piece, box: Box, f: NumericField): Box[] {
    const pr = present(p, f);
    if (pr === true) return [box];
    if (pr === false) return [];
    const kind = presenceOf(f);
    if (kind === 'ports' || kind === 'tcp' || kind === 'icmp') {
      const b = this.space.restrict(box, FIELD_SLOT.proto, protosWith(this.family, kind));
      const c = b && this.space.restrict(b, FIELD_SLOT.fragment, [[0n, 0n]]);
      return c ? [c] : [];
    }
    if (kind === 'ctports') {
      const tracked = this.onSlot(box, getVal(p.sym, 'ctstate'), normalize([CT_STATE.NEW, CT_STATE.ESTABLISHED, CT_STATE.RELATED].map((s) => [BigInt(s), BigInt(s)] as const)));
      // A new connection's protocol is the packet's, whose fragment bit also tells ports apart.
      return tracked.flatMap((b) => this.onSlot(b, getVal(p.sym, 'ctproto'), protosWith(this.family, 'ports')));
    }
    const states = kind === 'ct' ? [CT_STATE.NEW, CT_STATE.ESTABLISHED, CT_STATE.RELATED] : [CT_STATE.ESTABLISHED, CT_STATE.RELATED];
    return this.onSlot(box, getVal(p.sym, 'ctstate'), normalize(states.map((s) => [BigInt(s), BigInt(s)] as const)));
  }

  /** ct status after NAT that the walk could not tell as a value (see walk.ts applyNat). */
  private statusKnown(p: Piece, f: NumericField): void {
    if (f === 'ctstatus' && p.sym.ctstatusUnknown) throw new Inexact('whether NAT changed the connection (ct status snat/dnat) is not known here');
  }

  /** The part of `box` where `v` takes a value of `set`. */
  onSlot(box: Box, v: Val, set: IntervalSet): Box[] {
    if (v.k === 'const') return contains(set, v.v) ? [box] : [];
    const pre = v.k === 'bits' ? bitsPreimage(this.space, box, v, set) : v.off === 0n ? set : shift(set, -v.off, this.space.top(v.slot));
    const b = this.space.restrict(box, v.slot, pre);
    return b ? [b] : [];
  }


  /** An address-type test with a host model: the addresses whose type passes `ok`. */
  private addrTypeTest(p: Piece, box: Box, f: 'srctype' | 'dsttype', ok: (bits: bigint) => boolean): Box[] {
    const sets: IntervalSet[] = [];
    // The whole field value is tested: an IPv6 type is class and route bits at once.
    for (const [addrs, value] of this.addrTypes!) if (ok(BigInt(value))) sets.push(addrs);
    const addrs = sets.reduce<IntervalSet>((a, b) => union(a, b), []);
    return this.onSlot(box, getVal(p.sym, f === 'srctype' ? 'saddr' : 'daddr'), addrs);
  }

  private test(p: Piece, box0: Box, f: NumericField, set: IntervalSet): Box[] {
    return this.presenceRegion(p, box0, f).flatMap((box) => {
      if ((f === 'srctype' || f === 'dsttype') && this.addrTypes) return this.addrTypeTest(p, box, f, (b) => contains(set, b));
      const real = intersect(set, [[0n, fieldMax(f, this.family)]]);
      if (f === 'dscp') return this.onSlot(box, getVal(p.sym, 'tos'), dscpToTos(real));
      return this.onSlot(box, getVal(p.sym, f), real);
    });
  }

  private masked(p: Piece, box0: Box, f: NumericField, mask: bigint, value: bigint): Box[] {
    return this.presenceRegion(p, box0, f).flatMap((box) => this.maskedPresent(p, box, f, mask, value));
  }

  private maskedPresent(p: Piece, box: Box, f: NumericField, mask: bigint, value: bigint): Box[] {
    const bits = bitsOf(f, this.family);
    const max = fieldMax(f, this.family);
    const m = mask & max;
    if ((value & m) !== value) return [];
    if ((f === 'srctype' || f === 'dsttype') && this.addrTypes) return this.addrTypeTest(p, box, f, (b) => (b & m) === value);
    if (f === 'dscp') {
      const ok: [bigint, bigint][] = [];
      for (let d = 0n; d <= 63n; d++) if ((d & m) === value) ok.push([d, d]);
      return this.onSlot(box, getVal(p.sym, 'tos'), dscpToTos(normalize(ok)));
    }
    const v0 = getVal(p.sym, f);
    if (v0.k === 'const') return (v0.v & m) === value ? [box] : [];
    if (v0.k === 'bits') {
      // ((x & keep) ^ xor) & m = value: bits of m outside keep are xor's, the rest a mask test on x.
      if (((v0.xor ^ value) & m & ~v0.keep) !== 0n) return [];
      const km = m & v0.keep;
      const set = maskedSet(bits, km, (value ^ v0.xor) & km);
      if (set) return this.onSlot(box, slotVal(v0.slot), set);
      return this.onSlot(box, v0, maskedPoints(this.space.values(box, v0.slot), v0, m, value));
    }
    const v = v0;
    const set = maskedSet(bits, m, value);
    if (set && v.off === 0n) return this.onSlot(box, v, set);
    // Few values possible here: test them one by one.
    const here = this.space.values(box, v.slot);
    const count = here.reduce((n, [lo, hi]) => n + (hi - lo + 1n), 0n);
    if (count <= 1024n) {
      const ok: [bigint, bigint][] = [];
      for (const [lo, hi] of here) for (let x = lo; x <= hi; x++) if (((x + v.off) & m) === value) ok.push([x, x]);
      const b = this.space.restrict(box, v.slot, normalize(ok));
      return b ? [b] : [];
    }
    throw new Inexact(`a test of ${f} under the mask 0x${m.toString(16)} has no exact box form`, v.slot);
  }
}

/** {v : (v & mask) == value} over `bits`-bit values as intervals, when there are not too many. */
export function maskedSet(bits: number, mask: bigint, value: bigint): IntervalSet | undefined {
  const max = (1n << BigInt(bits)) - 1n;
  // Free low bits (below the lowest mask bit) make each allowed high pattern one interval.
  let low = 0;
  while (low < bits && ((mask >> BigInt(low)) & 1n) === 0n) low++;
  if (low === bits) return [[0n, max]];
  let freeHigh = 0;
  for (let i = low; i < bits; i++) if (((mask >> BigInt(i)) & 1n) === 0n) freeHigh++;
  if (freeHigh > 12) return undefined;
  const freePositions: number[] = [];
  for (let i = low; i < bits; i++) if (((mask >> BigInt(i)) & 1n) === 0n) freePositions.push(i);
  const out: [bigint, bigint][] = [];
  const span = (1n << BigInt(low)) - 1n;
  for (let k = 0; k < 1 << freeHigh; k++) {
    let base = value;
    freePositions.forEach((pos, j) => {
      if ((k >> j) & 1) base |= 1n << BigInt(pos);
    });
    out.push([base, base + span]);
  }
  return normalize(out);
}

/** DSCP values as the TOS bytes that carry them (DSCP is the top six bits). */
export function dscpToTos(set: IntervalSet): IntervalSet {
  return normalize(set.map(([lo, hi]) => [lo << 2n, (hi << 2n) | 3n] as const));
}

/** {x : x + by ∈ set} clipped to [0, top]. */
export function shift(set: IntervalSet, by: bigint, top: bigint): IntervalSet {
  const out: [bigint, bigint][] = [];
  for (const [lo, hi] of set) {
    const a = lo + by;
    const b = hi + by;
    if (b < 0n || a > top) continue;
    out.push([a < 0n ? 0n : a, b > top ? top : b]);
  }
  return out;
}

/** The values v takes on the slot values `here` that pass (v & m) == value (few values only). */
function maskedPoints(here: IntervalSet, v: BitsVal, m: bigint, value: bigint): IntervalSet {
  const out: [bigint, bigint][] = [];
  let n = 0;
  for (const [lo, hi] of here) {
    for (let x = lo; x <= hi; x++) {
      if (++n > 1024) throw new Inexact('a mask test on a partly rewritten value has no exact box form', v.slot);
      const y = evalVal(v, x);
      if ((y & m) === value) out.push([y, y]);
    }
  }
  return normalize(out);
}

/** The slot values x of the box with (x & keep) ^ xor in `set`: few values one by one, else by masks. */
export function bitsPreimage(space: Space, box: Box, v: BitsVal, set: IntervalSet): IntervalSet {
  const here = space.values(box, v.slot);
  if (here.reduce((n, [lo, hi]) => n + (hi - lo + 1n), 0n) <= 1024n) {
    const ok: [bigint, bigint][] = [];
    for (const [lo, hi] of here) for (let x = lo; x <= hi; x++) if (contains(set, evalVal(v, x))) ok.push([x, x]);
    return normalize(ok);
  }
  const points = set.reduce((n, [lo, hi]) => n + (hi - lo + 1n), 0n);
  if (points > 16n) throw new Inexact('a range test on a partly rewritten value', v.slot);
  let out: IntervalSet = [];
  for (const [lo, hi] of set) {
    for (let c = lo; c <= hi; c++) {
      // (x & keep) ^ xor = c: the kept bits of x are those of c ^ xor, the others must agree already.
      const want = c ^ v.xor;
      if ((want & ~v.keep) !== 0n) continue;
      const part = maskedSet(bitsOf(FIELDS[v.slot], space.family), v.keep, want);
      if (!part) throw new Inexact('a test on a partly rewritten value has no exact box form', v.slot);
      out = union(out, part);
    }
  }
  return out;
}
