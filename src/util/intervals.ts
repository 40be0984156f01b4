/**
 * Sets of unsigned integers as sorted, disjoint, non-adjacent closed intervals.
 * Used for every numeric header field (addresses as bigint up to 128 bits, ports, marks…),
 * by the simulator (membership), the analyzer (boxes, Z3 ranges) and the emitter (prefix covers).
 */
export type Interval = readonly [lo: bigint, hi: bigint];
export type IntervalSet = readonly Interval[];

export const EMPTY: IntervalSet = Object.freeze([]);

/** Sort, merge overlapping and adjacent intervals. */
export function normalize(items: readonly Interval[]): IntervalSet {
  const sorted = items.filter(([lo, hi]) => lo <= hi).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: [bigint, bigint][] = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1n) {
      if (hi > last[1]) last[1] = hi;
    } else {
      out.push([lo, hi]);
    }
  }
  return out;
}

export function union(a: IntervalSet, b: IntervalSet): IntervalSet {
  return normalize([...a, ...b]);
}

export function intersect(a: IntervalSet, b: IntervalSet): IntervalSet {
  const out: Interval[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const lo = a[i][0] > b[j][0] ? a[i][0] : b[j][0];
    const hi = a[i][1] < b[j][1] ? a[i][1] : b[j][1];
    if (lo <= hi) out.push([lo, hi]);
    if (a[i][1] < b[j][1]) i++;
    else j++;
  }
  return out;
}

/** Complement within the domain [0, max]. */
export function complement(a: IntervalSet, max: bigint): IntervalSet {
  const out: Interval[] = [];
  let next = 0n;
  for (const [lo, hi] of a) {
    if (lo > next) out.push([next, lo - 1n]);
    next = hi + 1n;
  }
  if (next <= max) out.push([next, max]);
  return out;
}

export function subtract(a: IntervalSet, b: IntervalSet, max: bigint): IntervalSet {
  return intersect(a, complement(b, max));
}

export function contains(a: IntervalSet, v: bigint): boolean {
  // Binary search: sets from real rulesets can hold thousands of intervals.
  let lo = 0;
  let hi = a.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [l, h] = a[mid];
    if (v < l) hi = mid - 1;
    else if (v > h) lo = mid + 1;
    else return true;
  }
  return false;
}

export function isSubset(a: IntervalSet, b: IntervalSet): boolean {
  return a.every(([lo, hi]) => b.some(([l, h]) => l <= lo && hi <= h));
}

export function equals(a: IntervalSet, b: IntervalSet): boolean {
  return a.length === b.length && a.every(([lo, hi], i) => lo === b[i][0] && hi === b[i][1]);
}

export function size(a: IntervalSet): bigint {
  return a.reduce((n, [lo, hi]) => n + (hi - lo + 1n), 0n);
}

export function full(max: bigint): IntervalSet {
  return [[0n, max]];
}

/** Largest value representable in `bits` bits. */
export function maxOf(bits: number): bigint {
  return (1n << BigInt(bits)) - 1n;
}
