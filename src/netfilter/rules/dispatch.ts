import type { Constraint } from '../../ir/constraint.js';
import { type NumericField, NUMERIC_FIELDS } from '../../ir/fields.js';
import { type IntervalSet, intersect, normalize, union } from '../../util/intervals.js';
import type { Family } from '../../util/ip.js';
import type { Frame } from '../frame.js';

/**
 * A decision index over a long chain, so a packet looks only at rules that can match it.
 *
 * For a header field (protocol, ports, IPv4 addresses) each rule has a *support*: the values of
 * that field for which its constraint can possibly hold (an over-approximation read off the
 * constraint: `in` sets, intersected through `and`, united through `or`; anything else means
 * "any value"). Splitting the field's domain at every support boundary gives segments; a
 * segment's candidate list holds, in rule order, every rule whose support covers it plus every
 * rule that does not constrain the field. Packets without the field (ICMP has no ports) get
 * the unconstrained rules only, since an `in` test on a missing field is false.
 *
 * First-match order is kept because candidate lists are in rule order and contain every rule
 * that could match; the executor still evaluates each candidate fully. Lists that stay long
 * are split again on another field (up to three levels). Rules with stateful matches (limit,
 * recent) are never skipped, so their side effects happen as in the kernel.
 *
 * Only fields no rule can change during a chain walk are used (targets change marks, never
 * headers; NAT happens between chains).
 */
export interface Dispatch {
  /** Rule indices to look at for this packet, in order. */
  candidates(f: Frame): Int32Array;
  /** For reports: the fields used, outermost first, and the longest candidate list. */
  readonly describe: string;
}

interface RuleShape {
  readonly constraint: Constraint;
  readonly stateful: boolean;
}

type Reader = (f: Frame) => number;

interface FieldSpec {
  readonly field: NumericField;
  readonly max: number;
  readonly read: Reader;
}

function fieldSpecs(family: Family): FieldSpec[] {
  const specs: FieldSpec[] = [
    { field: 'proto', max: 255, read: (f) => f.pkt.proto },
    { field: 'dport', max: 65535, read: (f) => (f.hasPortsNow() && f.pkt.dport !== undefined ? f.pkt.dport : -1) },
    { field: 'sport', max: 65535, read: (f) => (f.hasPortsNow() ? (f.pkt.sport as number) : -1) },
  ];
  if (family === 'ipv4') {
    specs.push({ field: 'daddr', max: 0xffffffff, read: (f) => f.dstN }, { field: 'saddr', max: 0xffffffff, read: (f) => f.srcN });
  }
  return specs;
}

/** Values of `field` for which `c` can be true; null means "not constrained". */
export function support(c: Constraint, field: NumericField): IntervalSet | null {
  switch (c.op) {
    case 'false':
      return [];
    case 'in':
      return c.field === field ? c.set : null;
    case 'and': {
      let acc: IntervalSet | null = null;
      for (const x of c.of) {
        const s = support(x, field);
        if (s !== null) acc = acc === null ? s : intersect(acc, s);
      }
      return acc;
    }
    case 'or': {
      let acc: IntervalSet = [];
      for (const x of c.of) {
        const s = support(x, field);
        if (s === null) return null;
        acc = union(acc, s);
      }
      return acc;
    }
    default:
      return null;
  }
}

type Node =
  | { readonly kind: 'leaf'; readonly list: Int32Array }
  | {
      readonly kind: 'split';
      readonly read: Reader;
      readonly starts: Float64Array;
      readonly children: readonly Node[];
      readonly missing: Node;
    };

const SPLIT_AT = 16;
const MAX_DEPTH = 3;
/** Upper bound on the total length of all candidate lists of one split (memory guard). */
const MAX_TOTAL = 4_000_000;

interface Plan {
  readonly spec: FieldSpec;
  readonly starts: number[];
  readonly lists: Int32Array[];
  readonly missing: Int32Array;
  readonly cost: number;
}

/** Segments a subset of rules on one field; undefined when it does not pay or is too big. */
function plan(rules: readonly RuleShape[], subset: Int32Array, spec: FieldSpec): Plan | undefined {
  const anyRules: number[] = [];
  const events: { at: number; rule: number; add: boolean }[] = [];
  for (const r of subset) {
    const s = rules[r].stateful ? null : support(rules[r].constraint, spec.field);
    if (s === null) {
      anyRules.push(r);
      continue;
    }
    for (const [lo, hi] of normalize(s)) {
      const l = Number(lo);
      const h = Math.min(Number(hi), spec.max);
      if (l > spec.max) continue;
      events.push({ at: l, rule: r, add: true });
      if (h < spec.max) events.push({ at: h + 1, rule: r, add: false });
    }
  }
  if (events.length === 0) return undefined;
  events.sort((a, b) => a.at - b.at);
  const starts: number[] = [];
  const lists: Int32Array[] = [];
  const active = new Map<number, number>();
  const anySet = new Int32Array(anyRules);
  let total = 0;
  let worst = 0;
  let weighted = 0;
  const emit = (start: number) => {
    const merged = mergeSorted([...active.keys()].sort((a, b) => a - b), anySet);
    const prev = lists[lists.length - 1];
    if (prev && sameList(prev, merged)) return;
    starts.push(start);
    lists.push(merged);
    total += merged.length;
    worst = Math.max(worst, merged.length);
  };
  if (events[0].at > 0) emit(0);
  let i = 0;
  while (i < events.length) {
    const at = events[i].at;
    while (i < events.length && events[i].at === at) {
      const e = events[i];
      const n = active.get(e.rule) ?? 0;
      if (e.add) active.set(e.rule, n + 1);
      else if (n <= 1) active.delete(e.rule);
      else active.set(e.rule, n - 1);
      i++;
    }
    emit(at);
    if (total > MAX_TOTAL) return undefined;
  }
  for (const l of lists) weighted += l.length;
  const cost = weighted / lists.length + worst / 4;
  return { spec, starts, lists, missing: anySet, cost };
}

function sameList(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function mergeSorted(a: readonly number[], b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i] < b[j])) out[k++] = a[i++];
    else out[k++] = b[j++];
  }
  return out;
}

function build(rules: readonly RuleShape[], subset: Int32Array, specs: readonly FieldSpec[], depth: number): Node {
  if (subset.length <= SPLIT_AT || depth >= MAX_DEPTH || specs.length === 0) return { kind: 'leaf', list: subset };
  let best: Plan | undefined;
  for (const spec of specs) {
    const p = plan(rules, subset, spec);
    if (p && (!best || p.cost < best.cost)) best = p;
  }
  // Not worth it unless the average packet looks at clearly fewer rules.
  if (!best || best.cost >= subset.length * 0.75) return { kind: 'leaf', list: subset };
  const rest = specs.filter((s) => s !== best!.spec);
  const cache = new Map<Int32Array, Node>();
  const children = best.lists.map((l) => {
    let n = cache.get(l);
    if (!n) {
      n = build(rules, l, rest, depth + 1);
      cache.set(l, n);
    }
    return n;
  });
  return {
    kind: 'split',
    read: best.spec.read,
    starts: Float64Array.from(best.starts),
    children,
    missing: build(rules, best.missing, rest, depth + 1),
  };
}

function describe(n: Node, specsUsed: string[]): number {
  if (n.kind === 'leaf') return n.list.length;
  let worst = describe(n.missing, specsUsed);
  for (const c of n.children) worst = Math.max(worst, describe(c, specsUsed));
  return worst;
}

export function buildDispatch(rules: readonly RuleShape[], family: Family): Dispatch | undefined {
  const all = Int32Array.from(rules.keys());
  const root = build(rules, all, fieldSpecs(family), 0);
  if (root.kind === 'leaf') return undefined;
  const worst = describe(root, []);
  return {
    candidates(f) {
      let n: Node = root;
      while (n.kind === 'split') {
        const v = n.read(f);
        if (v < 0) {
          n = n.missing;
          continue;
        }
        const s = n.starts;
        let lo = 0;
        let hi = s.length - 1;
        // Last segment whose start is <= v (the first segment starts at 0).
        while (lo < hi) {
          const mid = (lo + hi + 1) >> 1;
          if (s[mid] <= v) lo = mid;
          else hi = mid - 1;
        }
        n = n.children[lo];
      }
      return n.list;
    },
    describe: `indexed (${rules.length} rules, at most ${worst} looked at)`,
  };
}

export const DISPATCH_FIELDS: readonly NumericField[] = ['proto', 'dport', 'sport', 'daddr', 'saddr'];
export { NUMERIC_FIELDS };
