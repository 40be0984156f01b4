import type { Constraint } from '../../ir/constraint.js';
import { type IntervalSet, normalize } from '../../util/intervals.js';
import { FIELD_SLOT, IIF_SLOT, OIF_SLOT, bitsOf, fieldMax } from '../model/fields.js';
import type { IfaceDomain } from '../model/ifaces.js';
import type { Box, BoxDomain } from './box.js';

/**
 * A constraint as unions of boxes: `over` holds every packet that satisfies it, `under` only
 * packets that do. They are equal (`exact`) unless the constraint has a part boxes cannot say
 * exactly: an unmodelled match (over: anything, under: nothing), a mask that is not a prefix,
 * or a union that grew past the size cap (over: its hull, under: what fits).
 */
export interface BoxApprox {
  readonly over: readonly Box[];
  readonly under: readonly Box[];
  readonly exact: boolean;
}

/** Past this many boxes a union is approximated. */
export const UNION_CAP = 64;

export class ConstraintBoxes {
  constructor(
    private readonly dom: BoxDomain,
    private readonly ifaces: IfaceDomain,
  ) {}

  of(c: Constraint): BoxApprox {
    const dom = this.dom;
    switch (c.op) {
      case 'true':
        return { over: [dom.full()], under: [dom.full()], exact: true };
      case 'false':
        return { over: [], under: [], exact: true };
      case 'in':
        return this.single(FIELD_SLOT[c.field], c.set);
      case 'present':
        return this.single(FIELD_SLOT[c.field], [[0n, fieldMax(c.field, dom.family)]]);
      case 'masked': {
        const bits = bitsOf(c.field, dom.family);
        const max = fieldMax(c.field, dom.family);
        const mask = c.mask & max;
        if ((c.value & mask) !== c.value) return { over: [], under: [], exact: true }; // can never hold
        if (isPrefixMask(mask, bits)) return this.single(FIELD_SLOT[c.field], [[c.value, c.value | (~mask & max)]]);
        const exact = maskedSet(mask, c.value, bits);
        if (exact) return this.single(FIELD_SLOT[c.field], exact);
        const present = [dom.with(dom.full(), FIELD_SLOT[c.field], [[0n, max]])];
        return { over: present, under: [], exact: false };
      }
      case 'iface':
        return this.single(c.field === 'iif' ? IIF_SLOT : OIF_SLOT, this.ifaces.matching(c.name, c.wildcard));
      case 'opaque':
        return { over: [dom.full()], under: [], exact: false };
      case 'or': {
        const parts = c.of.map((x) => this.of(x));
        return this.capped(
          parts.flatMap((p) => p.over),
          parts.flatMap((p) => p.under),
          parts.every((p) => p.exact),
        );
      }
      case 'and': {
        let over: readonly Box[] = [dom.full()];
        let under: readonly Box[] = [dom.full()];
        let exact = true;
        for (const x of c.of) {
          const p = this.of(x);
          exact &&= p.exact;
          over = this.product(over, p.over);
          under = this.product(under, p.under);
          const capped = this.capped(over, under, exact);
          over = capped.over;
          under = capped.under;
          exact = capped.exact;
        }
        return { over, under, exact };
      }
      case 'not': {
        const p = this.of(c.of);
        const over = this.complement(p.under);
        const under = this.complement(p.over);
        // A complement cut short is a superset: still an over-approximation, no longer an under one.
        return this.capped(over.boxes, under.exact ? under.boxes : [], p.exact && over.exact && under.exact);
      }
      default: {
        const never: never = c;
        throw new Error(`unhandled constraint ${JSON.stringify(never)}`);
      }
    }
  }

  private single(slot: number, set: IntervalSet): BoxApprox {
    if (set.length === 0) return { over: [], under: [], exact: true };
    const b = this.dom.with(this.dom.full(), slot, set);
    return { over: [b], under: [b], exact: true };
  }

  private product(a: readonly Box[], b: readonly Box[]): Box[] {
    const out: Box[] = [];
    for (const x of a) for (const y of b) {
      const z = this.dom.intersect(x, y);
      if (z) out.push(z);
    }
    return out;
  }

  /** Complement of a union: the intersection of each box's complement (a superset if cut short, then not exact). */
  private complement(boxes: readonly Box[]): { boxes: Box[]; exact: boolean } {
    let acc: Box[] = [this.dom.full()];
    let exact = true;
    for (const b of boxes) {
      const parts: Box[] = [];
      for (let i = 0; i < b.length; i++) {
        const s = b[i];
        if (s === undefined) continue;
        const c = this.dom.complementSlot(i, s);
        if (c.length) parts.push(this.dom.with(this.dom.full(), i, c));
      }
      acc = this.product(acc, parts);
      if (acc.length > UNION_CAP * 4) {
        exact = false;
        break;
      }
    }
    return { boxes: acc, exact };
  }

  private capped(over: readonly Box[], under: readonly Box[], exact: boolean): BoxApprox {
    let o = over;
    let u = under;
    let e = exact;
    if (o.length > UNION_CAP) {
      o = [o.reduce((h, b) => this.dom.hull(h, b))];
      e = false;
    }
    if (u.length > UNION_CAP) {
      u = u.slice(0, UNION_CAP);
      e = false;
    }
    return { over: o, under: u, exact: e };
  }
}

/**
 * {v : v & mask == value} as intervals: the free bits below the lowest masked bit make each
 * interval, every combination of the other free bits one interval. Undefined when that is more
 * than MASK_INTERVALS intervals (a sparse mask on a wide field).
 */
const MASK_INTERVALS = 4096;

export function maskedSet(mask: bigint, value: bigint, bits: number): IntervalSet | undefined {
  let low = 0;
  while (low < bits && ((mask >> BigInt(low)) & 1n) === 0n) low++;
  const freeHigh: number[] = [];
  for (let b = low; b < bits; b++) if (((mask >> BigInt(b)) & 1n) === 0n) freeHigh.push(b);
  if (freeHigh.length > Math.log2(MASK_INTERVALS)) return undefined;
  const span = (1n << BigInt(low)) - 1n;
  const out: [bigint, bigint][] = [];
  for (let combo = 0; combo < 1 << freeHigh.length; combo++) {
    let base = value;
    freeHigh.forEach((b, i) => {
      if ((combo >> i) & 1) base |= 1n << BigInt(b);
    });
    out.push([base, base | span]);
  }
  return normalize(out);
}

function isPrefixMask(mask: bigint, bits: number): boolean {
  // All ones followed by all zeros within the field width.
  const inv = ~mask & ((1n << BigInt(bits)) - 1n);
  return (inv & (inv + 1n)) === 0n;
}
