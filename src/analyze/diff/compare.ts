import { type IntervalSet, intersect } from '../../util/intervals.js';
import type { Alignment } from './align.js';
import { type Box, type Space, setsOverlap } from './space.js';
import { type Step, type Val, sameVal, trailSteps } from './sym.js';
import type { Leaf, SideOutcome } from './walk.js';

/**
 * Comparing what the two sides do with the same packets. Both walks partition the same start
 * region into leaves; where a leaf of each side overlaps and their outcomes differ, the overlap
 * (split further where the outcome depends on a value, e.g. a NAT address equal to the
 * original) is a raw difference cube.
 */
export type DiffKind =
  /** Dropped before, delivered now. */
  | 'allowed'
  /** Delivered before, dropped now. */
  | 'denied'
  /** Delivered both times, with a different header after NAT. */
  | 'nat'
  /** Delivered both times, same header, but elsewhere (local vs forwarded, another device). */
  | 'rerouted'
  /** Dropped both times, but answered differently (DROP vs REJECT, another REJECT message). */
  | 'deny-changed';

export interface RawDiff {
  readonly box: Box;
  readonly kind: DiffKind;
  readonly a: Leaf;
  readonly b: Leaf;
}

/** A region where one side evaluates an unmodelled test with state and the other does not. */
export interface StatefulNote {
  readonly box: Box;
  /** The test (space key). */
  readonly key: string;
}

const delivered = (o: SideOutcome) => o.verdict !== 'dropped';

function valKey(v: Val | undefined): string {
  return v === undefined ? '-' : v.k === 'const' ? `c${v.v}` : `s${v.slot}${v.off ? `+${v.off}` : ''}`;
}

/** Everything about an outcome the comparison looks at, as a key (equal keys: no difference). */
export function outcomeKey(l: Leaf): string {
  const o = l.out;
  const f = o.final;
  if (!delivered(o)) return `dropped ${o.deny ?? 'drop'}`;
  return `${o.verdict} ${valKey(o.egress)} ${valKey(f.saddr)} ${valKey(f.daddr)} ${valKey(f.sport)} ${valKey(f.dport)}`;
}

/** Splits a box by whether two values are equal; two slots are compared through a relation slot. */
export function splitEqual(space: Space, box: Box, a: Val, b: Val): { eq: Box[]; ne: Box[] } {
  if (sameVal(a, b)) return { eq: [box], ne: [] };
  if (a.k === 'const' && b.k === 'const') return a.v === b.v ? { eq: [box], ne: [] } : { eq: [], ne: [box] };
  if (a.k === 'const') [a, b] = [b, a];
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
  if (a.off !== 0n || b.off !== 0n || intersect(sa, sb).length === 0) return { eq: [], ne: [box] };
  const [x, y] = a.slot < b.slot ? [a.slot, b.slot] : [b.slot, a.slot];
  const rel = space.extra({ kind: 'relation', key: `slot${x} = slot${y}`, a: x, b: y });
  const s = space.split(box, rel, [[1n, 1n]]);
  return { eq: s.yes, ne: s.no };
}

function shifted(set: IntervalSet, off: bigint): IntervalSet {
  return off === 0n ? set : set.map(([lo, hi]) => [lo + off, hi + off] as const);
}

/** The parts of `box` where two outcomes differ, by kind. */
export function differences(space: Space, box: Box, a: SideOutcome, b: SideOutcome): { box: Box; kind: DiffKind }[] {
  const da = delivered(a);
  const db = delivered(b);
  if (da !== db) return [{ box, kind: db ? 'allowed' : 'denied' }];
  if (!da) return (a.deny ?? 'drop') !== (b.deny ?? 'drop') ? [{ box, kind: 'deny-changed' }] : [];
  const out: { box: Box; kind: DiffKind }[] = [];
  let same: Box[] = [box];
  for (const f of ['saddr', 'daddr', 'sport', 'dport'] as const) {
    const va = a.final[f];
    const vb = b.final[f];
    if (!va || !vb) continue;
    const next: Box[] = [];
    for (const x of same) {
      const s = splitEqual(space, x, va, vb);
      for (const n of s.ne) out.push({ box: n, kind: 'nat' });
      next.push(...s.eq);
    }
    same = next;
  }
  if (a.verdict !== b.verdict) {
    for (const x of same) out.push({ box: x, kind: 'rerouted' });
  } else if (a.egress && b.egress) {
    for (const x of same) for (const n of splitEqual(space, x, a.egress, b.egress).ne) out.push({ box: n, kind: 'rerouted' });
  }
  return out;
}

/**
 * Pairs the leaves of both sides. Leaves with the same outcome key cannot differ; the others
 * are intersected (cheap slot tests first) and compared.
 */
export function compareLeaves(space: Space, la: readonly Leaf[], lb: readonly Leaf[]): RawDiff[] {
  const diffs: RawDiff[] = [];
  const keyB = lb.map(outcomeKey);
  for (const a of la) {
    const ka = outcomeKey(a);
    for (let j = 0; j < lb.length; j++) {
      if (keyB[j] === ka) continue;
      const b = lb[j];
      for (const ba of a.piece.boxes) {
        for (const bb of b.piece.boxes) {
          if (!space.overlaps(ba, bb)) continue;
          const x = space.intersect(ba, bb);
          if (!x) continue;
          for (const p of differences(space, x, a.out, b.out)) diffs.push({ box: p.box, kind: p.kind, a, b });
        }
      }
    }
  }
  return diffs;
}

/**
 * Where the two sides evaluate an unmodelled test with state on different packets (the
 * symmetric difference of where each evaluates it), per test.
 */
export function consultDifferences(space: Space, a: ReadonlyMap<string, Box[]>, b: ReadonlyMap<string, Box[]>): StatefulNote[] {
  const out: StatefulNote[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    const ra = a.get(key) ?? [];
    const rb = b.get(key) ?? [];
    for (const box of [...space.minus(ra, rb), ...space.minus(rb, ra)]) out.push({ box, key });
  }
  return out;
}

/**
 * The first step where the two walks part ways: the rules (or policies) that decide the
 * difference, one per side. Steps of paired rules with the same action are the same step.
 */
export function decisiveSteps(al: Alignment, a: Leaf, b: Leaf): { a?: Step; b?: Step } {
  const pairOfB = new Map<number, number>();
  for (const [ra, rb] of al.pairs) pairOfB.set(rb.id, ra.id);
  const sa = trailSteps(a.piece.trail);
  const sb = trailSteps(b.piece.trail);
  const same = (x: Step, y: Step) =>
    x.t === 'rule' && y.t === 'rule'
      ? pairOfB.get(y.ruleId) === x.ruleId && x.action === y.action && x.hook === y.hook
      : x.t === 'policy' && y.t === 'policy'
        ? x.table === y.table && x.chain === y.chain && x.policy === y.policy && x.hook === y.hook
        : false;
  let i = 0;
  while (i < sa.length && i < sb.length && same(sa[i], sb[i])) i++;
  // Nothing differs in the walks (a route or NAT pick tells them apart): show the last steps.
  if (i === sa.length && i === sb.length) return { ...(sa.length ? { a: sa[sa.length - 1] } : {}), ...(sb.length ? { b: sb[sb.length - 1] } : {}) };
  return { ...(sa[i] ? { a: sa[i] } : { ...(sa.length ? { a: sa[sa.length - 1] } : {}) }), ...(sb[i] ? { b: sb[i] } : { ...(sb.length ? { b: sb[sb.length - 1] } : {}) }) };
}
