import { type Constraint, opaqueParts } from '../../ir/constraint.js';
import type { TargetEffect } from '../../ir/effect.js';
import type { HostModel } from '../../ir/policy.js';
import { type FamilyModel, type ModelChain, type ModelRule, chainKey } from '../model/build.js';

/**
 * Structural alignment of two versions of a ruleset (one family): chains are paired by table
 * and name, rules within a chain by a longest common subsequence of their meanings (constraint
 * and effect, not their text, so `iif lan` and `-i eth0` are the same rule).
 *
 * What it gives the diff:
 * - the rules that are not paired ("changed") and the built-in chains whose policy changed: a
 *   packet that fires none of them on either side walks both rulesets step by step alike, so
 *   differences can only lie among packets that fire one of them;
 * - for paired rules, their unmodelled tests are the same test (same state), so both sides
 *   read one answer for them.
 */
export interface Alignment {
  readonly changedA: readonly ModelRule[];
  readonly changedB: readonly ModelRule[];
  /** Built-in chains (table/name) whose policy differs, or that exist on one side only. */
  readonly policyChanged: readonly { readonly table: string; readonly name: string }[];
  /** Paired rules [A, B]. */
  readonly pairs: readonly (readonly [ModelRule, ModelRule])[];
  /** B's opaque key → A's, for the tests of paired rules. */
  readonly opaqueKeyOfB: ReadonlyMap<string, string>;
  /** B rule id → A rule id for paired rules (their unmodelled targets share an answer). */
  readonly targetPairOfB: ReadonlyMap<number, number>;
  readonly hostChanged: boolean;
  /**
   * Where the other side has rules this side lacks: per chain (table/name), per position of
   * this side (the index of the next rule, or the chain's length for its end), those rules.
   */
  readonly gapsA: ReadonlyMap<string, ReadonlyMap<number, readonly ModelRule[]>>;
  readonly gapsB: ReadonlyMap<string, ReadonlyMap<number, readonly ModelRule[]>>;
}

/**
 * An opaque key without its instance part (`limit#7@file:3:5 5/second` → `limit 5/second`):
 * what the test is, not which rule holds it (kinds/helpers.ts instanceKey).
 */
export function stripInstance(key: string): string {
  // `@file:line:col` ends at the first `:line:col` followed by the detail (file names may hold spaces).
  const m = /^([^#@\s]*)(?:#\d+)?(?:@.*?:\d+:\d+(?= |$))?(.*)$/.exec(key);
  return m ? `${m[1]}${m[2]}` : key;
}

/**
 * iptables modules whose answer depends on earlier packets (counters, rates, randomness,
 * lists); any other unmodelled module answers alike for the same packet wherever it is used.
 */
const STATEFUL_MODULES = new Set(['statistic', 'quota', 'quota2', 'connbytes', 'nth', 'random', 'limit', 'hashlimit', 'recent', 'connlimit', 'rateest', 'cluster', 'time', 'dccp']);

/**
 * Whether an unmodelled test keeps state of its own (each rule holding it is a separate
 * instance): rate limits, recent lists, connection counts, counters, and unknown modules of
 * those kinds. A test without state is the same unknown wherever it appears.
 */
export function isStatefulOpaque(key: string): boolean {
  if (!/^[^#@\s]*#\d+/.test(key)) return false;
  const m = /^xt-match[^ ]* -m (\S+)/.exec(key);
  return m ? STATEFUL_MODULES.has(m[1]) : true;
}

function canon(x: unknown): string {
  return JSON.stringify(x, (k, v: unknown) => {
    if (k === 'span') return undefined;
    if (typeof v === 'bigint') return `${v}n`;
    return v;
  });
}

/** A constraint's meaning as text: opaque instances left out, conjunctions and disjunctions in a fixed order. */
function constraintSig(c: Constraint): string {
  const sig = (x: Constraint): string => {
    switch (x.op) {
      case 'opaque':
        return canon({ op: 'opaque', key: stripInstance(x.key) });
      case 'and':
      case 'or':
        return `${x.op}(${x.of.map(sig).sort().join(',')})`;
      case 'not':
        return `not(${sig(x.of)})`;
      default:
        return canon(x);
    }
  };
  return sig(c);
}

function effectSig(e: TargetEffect): string {
  return canon(e);
}

export function ruleSignature(r: ModelRule): string {
  return `${r.table}|${constraintSig(r.constraint)}|${effectSig(r.effect)}`;
}

/** Pairs of equal items of two sequences, in order (a longest common subsequence, or close). */
export function lcsPairs(a: readonly string[], b: readonly string[]): [number, number][] {
  const pairs: [number, number][] = [];
  let lo = 0;
  while (lo < a.length && lo < b.length && a[lo] === b[lo]) {
    pairs.push([lo, lo]);
    lo++;
  }
  let ea = a.length;
  let eb = b.length;
  const tail: [number, number][] = [];
  while (ea > lo && eb > lo && a[ea - 1] === b[eb - 1]) {
    ea--;
    eb--;
    tail.push([ea, eb]);
  }
  const n = ea - lo;
  const m = eb - lo;
  if (n > 0 && m > 0) {
    if (n * m <= 4_000_000) pairs.push(...dpLcs(a, b, lo, ea, eb));
    else pairs.push(...greedyPairs(a, b, lo, ea, eb));
  }
  pairs.push(...tail.reverse());
  return pairs;
}

function dpLcs(a: readonly string[], b: readonly string[], lo: number, ea: number, eb: number): [number, number][] {
  const n = ea - lo;
  const m = eb - lo;
  // Equal strings as small integers, so the table compares numbers.
  const ids = new Map<string, number>();
  const id = (s: string) => {
    let v = ids.get(s);
    if (v === undefined) ids.set(s, (v = ids.size));
    return v;
  };
  const ai = Int32Array.from({ length: n }, (_, i) => id(a[lo + i]));
  const bi = Int32Array.from({ length: m }, (_, j) => id(b[lo + j]));
  const w = m + 1;
  const t = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      t[i * w + j] = ai[i] === bi[j] ? t[(i + 1) * w + j + 1] + 1 : Math.max(t[(i + 1) * w + j], t[i * w + j + 1]);
    }
  }
  const out: [number, number][] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (ai[i] === bi[j]) {
      out.push([lo + i, lo + j]);
      i++;
      j++;
    } else if (t[(i + 1) * w + j] >= t[i * w + j + 1]) i++;
    else j++;
  }
  return out;
}

/** For very long differing middles: pair equal items in order, greedily (still monotone). */
function greedyPairs(a: readonly string[], b: readonly string[], lo: number, ea: number, eb: number): [number, number][] {
  const where = new Map<string, number[]>();
  for (let j = lo; j < eb; j++) {
    const l = where.get(b[j]);
    if (l) l.push(j);
    else where.set(b[j], [j]);
  }
  const out: [number, number][] = [];
  let last = lo - 1;
  for (let i = lo; i < ea; i++) {
    const l = where.get(a[i]);
    if (!l) continue;
    const j = l.find((x) => x > last);
    if (j === undefined) continue;
    out.push([i, j]);
    last = j;
  }
  return out;
}

function hostSig(h: HostModel | undefined): string {
  if (!h) return 'none';
  return canon({ i: h.interfaces.map((i) => ({ d: i.device, a: i.addresses })), r: h.routes });
}

export function align(a: FamilyModel, b: FamilyModel): Alignment {
  const changedA: ModelRule[] = [];
  const changedB: ModelRule[] = [];
  const pairs: [ModelRule, ModelRule][] = [];
  const policyChanged: { table: string; name: string }[] = [];
  const gapsA = new Map<string, Map<number, ModelRule[]>>();
  const gapsB = new Map<string, Map<number, ModelRule[]>>();
  const keys = new Set<string>([...a.chains.keys(), ...b.chains.keys()]);
  for (const key of keys) {
    const ca = a.chains.get(key);
    const cb = b.chains.get(key);
    const builtin = (ca ?? cb)!.hook !== undefined;
    if (builtin && (ca?.policy ?? 'ACCEPT') !== (cb?.policy ?? 'ACCEPT')) policyChanged.push({ table: (ca ?? cb)!.table, name: (ca ?? cb)!.name });
    if (!ca || !cb) {
      if (ca) changedA.push(...ca.rules);
      if (cb) changedB.push(...cb.rules);
      // A built-in chain one side's model does not have at all (a table it has no use for):
      // the other side's rules are a gap there, which that side's walk touches at the chain's
      // place in the hook (walk.ts missingChains).
      const other = ca ?? cb!;
      if (builtin && other.rules.length) (ca ? gapsB : gapsA).set(key, new Map([[0, [...other.rules]]]));
      continue;
    }
    alignChain(ca, cb, pairs, changedA, changedB, gapsA, gapsB);
  }
  const opaqueKeyOfB = new Map<string, string>();
  const targetPairOfB = new Map<number, number>();
  for (const [ra, rb] of pairs) {
    const ka = opaqueParts(ra.constraint).map((o) => o.key);
    const kb = opaqueParts(rb.constraint).map((o) => o.key);
    kb.forEach((k, i) => {
      if (ka[i] !== undefined) opaqueKeyOfB.set(k, ka[i]);
    });
    if (ra.effect.type === 'opaque') targetPairOfB.set(rb.id, ra.id);
  }
  return {
    changedA,
    changedB,
    policyChanged,
    pairs,
    opaqueKeyOfB,
    targetPairOfB,
    hostChanged: hostSig(a.policy.host) !== hostSig(b.policy.host),
    gapsA,
    gapsB,
  };
}

function alignChain(
  ca: ModelChain,
  cb: ModelChain,
  pairs: [ModelRule, ModelRule][],
  changedA: ModelRule[],
  changedB: ModelRule[],
  gapsA: Map<string, Map<number, ModelRule[]>>,
  gapsB: Map<string, Map<number, ModelRule[]>>,
): void {
  const sa = ca.rules.map(ruleSignature);
  const sb = cb.rules.map(ruleSignature);
  const ps = lcsPairs(sa, sb);
  const pa = new Set(ps.map(([i]) => i));
  const pb = new Set(ps.map(([, j]) => j));
  for (const [i, j] of ps) pairs.push([ca.rules[i], cb.rules[j]]);
  ca.rules.forEach((r, i) => pa.has(i) || changedA.push(r));
  cb.rules.forEach((r, j) => pb.has(j) || changedB.push(r));
  // Gaps: the other side's unpaired rules between two pairs sit before this side's next paired rule.
  const key = chainKey(ca.table, ca.name);
  const gap = (into: Map<string, Map<number, ModelRule[]>>, at: number, rules: ModelRule[]) => {
    if (rules.length === 0) return;
    const m = into.get(key) ?? new Map<number, ModelRule[]>();
    m.set(at, [...(m.get(at) ?? []), ...rules]);
    into.set(key, m);
  };
  let i = 0;
  let j = 0;
  for (const [pi, pj] of [...ps, [ca.rules.length, cb.rules.length] as [number, number]]) {
    gap(gapsA, pi, cb.rules.slice(j, pj));
    gap(gapsB, pj, ca.rules.slice(i, pi));
    i = pi + 1;
    j = pj + 1;
  }
}

export { chainKey };
