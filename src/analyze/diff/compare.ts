import type { Alignment } from './align.js';
import { type Box, type Space, type Term, addHoles, holesList, materialize, narrow, term } from './space.js';
import { equalParts } from './equal.js';
import { type Step, type Val, trailSteps, valKey as symValKey } from './sym.js';
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
  /** The packets (a box minus holes). */
  readonly term: Term;
  readonly kind: DiffKind;
  readonly a: Leaf;
  readonly b: Leaf;
}

/** Packets on which the sides evaluate different unmodelled tests with state (same outcome otherwise). */
export interface StatefulNote {
  readonly term: Term;
}

/** The stateful unmodelled tests a walk evaluated after the sides parted, in order. */
export function consults(l: Leaf): string {
  let out = '';
  for (const s of trailSteps(l.piece.trail)) if (s.t === 'opaque') out += `${s.keys.join('&')}|`;
  return out;
}

/**
 * The new side's leaves, walked from the old side's leaves (each term tagged with its old
 * leaf), against those: where the outcomes differ, raw differences; where only the stateful
 * tests evaluated differ, notes.
 */
export function compareTagged(space: Space, la: readonly Leaf[], lb: readonly Leaf[]): { diffs: RawDiff[]; stateful: StatefulNote[] } {
  const diffs: RawDiff[] = [];
  const stateful: StatefulNote[] = [];
  const keyA = la.map(outcomeKey);
  const consA = la.map(consults);
  for (const b of lb) {
    const kb = outcomeKey(b);
    const cb = consults(b);
    for (const t of b.piece.terms) {
      const k = t.tag;
      if (k === undefined) continue;
      const a = la[k];
      if (keyA[k] !== kb) {
        const parts = differences(space, t.box, a.out, b.out);
        for (const p of parts) {
          const nt = narrow(space, t, p.box);
          if (nt) diffs.push({ term: nt, kind: p.kind, a, b });
        }
        if (consA[k] !== cb) for (const rest of space.minus([t.box], parts.map((p) => p.box))) {
          const nt = narrow(space, t, rest);
          if (nt) stateful.push({ term: nt });
        }
      } else if (consA[k] !== cb) stateful.push({ term: t });
    }
  }
  return { diffs, stateful };
}

const delivered = (o: SideOutcome) => o.verdict !== 'dropped';

function valKey(v: Val | undefined): string {
  return v === undefined ? '-' : symValKey(v);
}

/** Everything about an outcome the comparison looks at, as a key (equal keys: no difference). */
export function outcomeKey(l: Leaf): string {
  const o = l.out;
  const f = o.final;
  if (!delivered(o)) return `dropped ${o.deny ?? 'drop'}`;
  return `${o.verdict} ${valKey(o.egress)} ${valKey(f.saddr)} ${valKey(f.daddr)} ${valKey(f.sport)} ${valKey(f.dport)}`;
}

/** Splits a box by whether two values are equal (equal.ts). */
export const splitEqual = equalParts;

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
  // B's terms in a one-dimensional index over the address slot that tells them apart best.
  const entries: { leaf: number; term: Term }[] = [];
  lb.forEach((b, j) => {
    for (const t of b.piece.terms) entries.push({ leaf: j, term: t });
  });
  const keyB = lb.map(outcomeKey);
  const index = new SlotIndex(space, entries.map((e) => e.term.box));
  for (const a of la) {
    const ka = outcomeKey(a);
    for (const ta of a.piece.terms) {
      for (const e of index.query(ta.box)) {
        const { leaf: j, term: tb } = entries[e];
        if (keyB[j] === ka) continue;
        const b = lb[j];
        {
          if (!space.overlaps(ta.box, tb.box)) continue;
          const x = space.intersect(ta.box, tb.box);
          const tx = x && meetTerms(space, ta, tb, x);
          if (!tx) continue;
          for (const p of differences(space, x, a.out, b.out)) {
            const nt = narrow(space, tx, p.box);
            if (nt) diffs.push({ term: nt, kind: p.kind, a, b });
          }
        }
      }
    }
  }
  return diffs;
}

/**
 * Boxes indexed by the hull of one slot (the address slot with the most distinct ranges):
 * sorted by hull start, in blocks that remember their furthest end, so a query skips whole
 * blocks that end before it starts.
 */
class SlotIndex {
  private readonly slot: number;
  private readonly order: number[];
  private readonly lo: bigint[];
  private readonly hi: bigint[];
  private readonly blockMaxHi: bigint[];
  private static readonly BLOCK = 32;

  constructor(
    private readonly space: Space,
    boxes: readonly Box[],
  ) {
    const hull = (b: Box, s: number): [bigint, bigint] => {
      const set = space.values(b, s);
      return [set[0][0], set[set.length - 1][1]];
    };
    const distinct = (s: number) => new Set(boxes.map((b) => hull(b, s).join('-'))).size;
    this.slot = distinct(0) >= distinct(1) ? 0 : 1;
    const hulls = boxes.map((b) => hull(b, this.slot));
    this.order = boxes.map((_, i) => i).sort((x, y) => (hulls[x][0] < hulls[y][0] ? -1 : hulls[x][0] > hulls[y][0] ? 1 : 0));
    this.lo = this.order.map((i) => hulls[i][0]);
    this.hi = this.order.map((i) => hulls[i][1]);
    this.blockMaxHi = [];
    for (let k = 0; k < this.order.length; k += SlotIndex.BLOCK) {
      let m = -1n;
      for (let i = k; i < Math.min(k + SlotIndex.BLOCK, this.order.length); i++) if (this.hi[i] > m) m = this.hi[i];
      this.blockMaxHi.push(m);
    }
  }

  /** Indices of boxes whose hull on the slot meets the query box's. */
  *query(box: Box): Generator<number> {
    const set = this.space.values(box, this.slot);
    const qlo = set[0][0];
    const qhi = set[set.length - 1][1];
    for (let b = 0; b < this.blockMaxHi.length; b++) {
      const start = b * SlotIndex.BLOCK;
      if (start >= this.lo.length || this.lo[start] > qhi) break;
      if (this.blockMaxHi[b] < qlo) continue;
      for (let i = start; i < Math.min(start + SlotIndex.BLOCK, this.lo.length); i++) {
        if (this.lo[i] > qhi) break;
        if (this.hi[i] >= qlo) yield this.order[i];
      }
    }
  }
}

/** The intersection of two terms on the box x (their common box): x minus both hole lists. */
export function meetTerms(space: Space, ta: Term, tb: Term, x: Box): Term | undefined {
  const na = narrow(space, ta, x);
  const nb = na && narrow(space, tb, x);
  if (!na || !nb) return undefined;
  return term(x, addHoles(na.holes, holesList(nb)));
}

const PAIRS = new WeakMap<Alignment, Map<number, number>>();

/**
 * The steps that decide a difference, one per side: for a side that drops, its dropping rule
 * or policy; for a side that delivers, its decision at the same hook and table where the other
 * side dropped (else its last rule); when both deliver or both drop, the first rule steps
 * where the walks part (paired rules with the same action count as the same step).
 */
export function decisiveSteps(al: Alignment, a: Leaf, b: Leaf, tableOfRule: (side: 'a' | 'b', ruleId: number) => string): { a?: Step; b?: Step } {
  let pairOfB = PAIRS.get(al);
  if (!pairOfB) {
    pairOfB = new Map<number, number>();
    for (const [ra, rb] of al.pairs) pairOfB.set(rb.id, ra.id);
    PAIRS.set(al, pairOfB);
  }
  const sa = trailSteps(a.piece.trail).filter((s) => s.t !== 'opaque');
  const sb = trailSteps(b.piece.trail).filter((s) => s.t !== 'opaque');
  const last = <T>(xs: readonly T[]) => xs[xs.length - 1];
  const lastRule = (xs: readonly Step[]) => [...xs].reverse().find((s) => s.t === 'rule') ?? last(xs);
  const tableOf = (side: 'a' | 'b', s: Step | undefined) =>
    !s ? undefined : s.t === 'policy' ? `${s.hook}/${s.table}` : s.t === 'rule' ? `${s.hook}/${tableOfRule(side, s.ruleId)}` : undefined;
  const at = (xs: readonly Step[], side: 'a' | 'b', hookTable: string | undefined) => (hookTable ? [...xs].reverse().find((s) => tableOf(side, s) === hookTable) : undefined);
  const da = a.out.verdict !== 'dropped';
  const db = b.out.verdict !== 'dropped';
  if (!da && db) {
    const x = last(sa);
    return { ...(x ? { a: x } : {}), ...opt('b', at(sb, 'b', tableOf('a', x)) ?? lastRule(sb)) };
  }
  if (da && !db) {
    const y = last(sb);
    return { ...opt('a', at(sa, 'a', tableOf('b', y)) ?? lastRule(sa)), ...(y ? { b: y } : {}) };
  }
  if (!da && !db) return { ...opt('a', last(sa)), ...opt('b', last(sb)) };
  // Both deliver: the first rule steps that differ.
  const ra = sa.filter((s) => s.t === 'rule');
  const rb = sb.filter((s) => s.t === 'rule');
  const same = (x: Step, y: Step) => x.t === 'rule' && y.t === 'rule' && pairOfB!.get(y.ruleId) === x.ruleId && x.action === y.action && x.hook === y.hook;
  let i = 0;
  while (i < ra.length && i < rb.length && same(ra[i], rb[i])) i++;
  return { ...opt('a', ra[i] ?? last(ra)), ...opt('b', rb[i] ?? last(rb)) };
}

function opt<K extends 'a' | 'b'>(k: K, s: Step | undefined): { [P in K]?: Step } {
  return (s ? { [k]: s } : {}) as { [P in K]?: Step };
}
