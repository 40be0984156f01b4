import type { Constraint } from '../../ir/constraint.js';
import { type IntervalSet, intersect } from '../../util/intervals.js';
import type { ModelChain } from '../model/build.js';
import { FIELD_SLOT } from '../model/fields.js';

/**
 * Skipping rules that cannot match: for a long chain whose rules mostly test the source (or
 * destination) address, the address line is cut into elementary intervals, each listing the
 * rules whose address test holds there; a packet then visits only those and the rules that do
 * not test that address, in chain order. Addresses only change in the nat table, where the
 * chain ends at the NAT rule, so the choice made at chain entry stays right.
 */
export interface ChainIndex {
  readonly slot: number;
  /** Start of each elementary interval, ascending; interval k is [starts[k], starts[k+1]). */
  readonly starts: readonly bigint[];
  /** Positions of the rules that may match in interval k (ascending). */
  readonly lists: readonly (readonly number[])[];
  /** Positions of rules without a test on the field (ascending). */
  readonly free: readonly number[];
}

const MIN_RULES = 48;
const MAX_WORK = 40;

/** The address set a rule requires, when its constraint is a conjunction with `in field`. */
function requiredSet(c: Constraint, field: 'saddr' | 'daddr'): IntervalSet | undefined {
  if (c.op === 'in' && c.field === field) return c.set;
  if (c.op !== 'and') return undefined;
  let out: IntervalSet | undefined;
  for (const x of c.of) {
    if (x.op === 'in' && x.field === field) out = out ? intersect(out, x.set) : x.set;
  }
  return out;
}

export function buildIndex(chain: ModelChain): ChainIndex | undefined {
  const n = chain.rules.length;
  if (n < MIN_RULES) return undefined;
  let best: { field: 'saddr' | 'daddr'; sets: (IntervalSet | undefined)[]; count: number } | undefined;
  for (const field of ['saddr', 'daddr'] as const) {
    const sets = chain.rules.map((r) => requiredSet(r.constraint, field));
    const count = sets.filter((s) => s !== undefined).length;
    if (!best || count > best.count) best = { field, sets, count };
  }
  if (!best || best.count < n / 2) return undefined;
  const points = new Set<bigint>([0n]);
  for (const s of best.sets) for (const [lo, hi] of s ?? []) points.add(lo).add(hi + 1n);
  const starts = [...points].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const lists: number[][] = starts.map(() => []);
  let work = 0;
  const locate = (v: bigint) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= v) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const free: number[] = [];
  best.sets.forEach((s, pos) => {
    if (s === undefined) {
      free.push(pos);
      return;
    }
    for (const [lo, hi] of s) {
      for (let k = locate(lo); k < starts.length && starts[k] <= hi; k++) {
        lists[k].push(pos);
        work++;
      }
    }
  });
  if (work > MAX_WORK * n) return undefined;
  return { slot: FIELD_SLOT[best.field], starts, lists, free };
}

/** Positions of the chain's rules a packet with this address can match, in order. */
export function* positions(index: ChainIndex, v: bigint): Generator<number> {
  const { starts, lists, free } = index;
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= v) lo = mid;
    else hi = mid - 1;
  }
  const a = lists[lo];
  let i = 0;
  let j = 0;
  while (i < a.length || j < free.length) {
    if (j >= free.length || (i < a.length && a[i] < free[j])) yield a[i++];
    else yield free[j++];
  }
}
