import { emitRuleset } from '../../../../src/backends/emit/index.js';
import { importIptablesSave } from '../../../../src/backends/import/index.js';
import { checkRule } from '../../../../src/ir/check/placement.js';
import type { Hook } from '../../../../src/ir/netfilter.js';
import type { Chain, Policy, Rule, Ruleset, Table } from '../../../../src/ir/policy.js';
import { printMatch, printTarget, type Target } from '../../../../src/kinds/index.js';
import type { Diagnostic } from '../../../../src/util/diagnostics.js';
import { FAMILIES, type Family } from '../../../../src/util/ip.js';
import { NO_SPAN } from '../../../../src/util/span.js';
import { SourceFiles } from '../../../../src/util/sources.js';

/**
 * Mutations of a policy for the diff's trust property. Each one is an edit a reviewer could
 * see in a pull request: two rules swapped, a rule deleted, a rule widened by dropping one of
 * its matches, a rule's verdict changed. Two edits that must not change anything: the policy
 * re-emitted as iptables-restore text and read back, and two adjacent rules swapped that no
 * packet can match both of (they test different protocols).
 *
 * `choices` are random numbers that pick the place; when a mutation has no place in the
 * policy (no chain with two rules…), the next kind that has one is used, so every case is a
 * real edit.
 */
export const MUTATIONS = ['reorder', 'delete', 'widen', 'action', 'reemit', 'swap-disjoint'] as const;
export type MutationKind = (typeof MUTATIONS)[number];

export interface Mutation {
  readonly kind: MutationKind;
  /** True when the edit cannot change what the policy does. */
  readonly noop: boolean;
  /** What was done, for failure messages. */
  readonly what: string;
  readonly policy: Policy;
}

interface Place {
  readonly family: Family;
  readonly table: number;
  readonly chain: number;
}

const ruleText = (r: Rule) => [...r.matches.map(printMatch), printTarget(r.target)].join(' ');

/**
 * Chains with at least `minRules` rules: those with a decisive rule when there are any, and
 * three times in four those of the filter and nat tables (where verdicts and NAT are decided).
 */
function places(p: Policy, minRules: number, r: number): Place[] {
  const out: Place[] = [];
  for (const family of FAMILIES) {
    p.rulesets[family].tables.forEach((t, ti) => t.chains.forEach((c, ci) => c.rules.length >= minRules && out.push({ family, table: ti, chain: ci })));
  }
  const strong = out.filter((at) => chainOf(p, at).chain.rules.some(decisive));
  const pool = strong.length ? strong : out;
  const main = pool.filter((at) => ['filter', 'nat'].includes(chainOf(p, at).table.name));
  return main.length && r % 4 !== 0 ? main : pool;
}

function chainOf(p: Policy, at: Place): { table: Table; chain: Chain } {
  const table = p.rulesets[at.family].tables[at.table];
  return { table, chain: table.chains[at.chain] };
}

/** The policy with one chain's rules replaced (everything else shared). */
function withRules(p: Policy, at: Place, rules: readonly Rule[]): Policy {
  const rs = p.rulesets[at.family];
  const tables = rs.tables.map((t, ti) => (ti !== at.table ? t : { ...t, chains: t.chains.map((c, ci) => (ci !== at.chain ? c : { ...c, rules })) }));
  return { ...p, rulesets: { ...p.rulesets, [at.family]: { ...rs, tables } satisfies Ruleset } };
}

/** Hooks each chain of a table is reached from (built-in: its own; user: its callers'). */
function chainHooks(table: Table): Map<string, Hook[]> {
  const hooks = new Map<string, Set<Hook>>();
  const visit = (name: string, h: Hook, seen: Set<string>) => {
    if (seen.has(name)) return;
    seen.add(name);
    const set = hooks.get(name) ?? new Set<Hook>();
    set.add(h);
    hooks.set(name, set);
    const c = table.chains.find((x) => x.name === name);
    for (const r of c?.rules ?? []) if (r.target.kind === 'jump') visit(r.target.chain, h, seen);
  };
  for (const c of table.chains) if (c.hook) visit(c.name, c.hook, new Set());
  return new Map([...hooks].map(([k, v]) => [k, [...v]]));
}

/** Would iptables-restore take this rule where it sits? */
function valid(p: Policy, at: Place, rule: Rule): boolean {
  const { table, chain } = chainOf(p, at);
  const problems: Diagnostic[] = [];
  checkRule(rule, { table: table.name, chain, hooks: chainHooks(table).get(chain.name) ?? [], family: at.family }, (d) => problems.push(d));
  return !problems.some((d) => d.severity === 'error');
}

const pick = <T>(xs: readonly T[], r: number): T => xs[r % xs.length];

/**
 * Rules whose edit can change what happens to a packet: verdicts, jumps, NAT, mark and header
 * writes (a LOG or COUNTER rule changes nothing the diff compares). Edits prefer them.
 */
function decisive(rule: Rule): boolean {
  return !['log', 'nflog', 'counter', 'checksum', 'classify', 'tcpmss'].includes(rule.target.kind);
}

/** The rules of a chain an edit picks from: the decisive ones when there are any. */
function candidates(rules: readonly Rule[]): number[] {
  const all = rules.map((_, i) => i);
  const strong = all.filter((i) => decisive(rules[i]));
  return strong.length ? strong : all;
}

function reorder(p: Policy, r: readonly number[]): Mutation | undefined {
  const ps = places(p, 2, r[2]);
  if (!ps.length) return undefined;
  const at = pick(ps, r[0]);
  const rules = [...chainOf(p, at).chain.rules];
  const i = pick(candidates(rules), r[1]);
  const j = (i + 1 + (r[2] % (rules.length - 1))) % rules.length;
  [rules[i], rules[j]] = [rules[j], rules[i]];
  return { kind: 'reorder', noop: false, what: `${describe(p, at)}: swap rules ${i} and ${j}`, policy: withRules(p, at, rules) };
}

function del(p: Policy, r: readonly number[]): Mutation | undefined {
  const ps = places(p, 1, r[2]);
  if (!ps.length) return undefined;
  const at = pick(ps, r[0]);
  const rules = [...chainOf(p, at).chain.rules];
  const i = pick(candidates(rules), r[1]);
  const [gone] = rules.splice(i, 1);
  return { kind: 'delete', noop: false, what: `${describe(p, at)}: delete rule ${i} \`${ruleText(gone)}\``, policy: withRules(p, at, rules) };
}

function widen(p: Policy, r: readonly number[]): Mutation | undefined {
  const options: { at: Place; i: number; k: number }[] = [];
  for (const at of places(p, 1, r[2])) {
    chainOf(p, at).chain.rules.forEach((rule, i) => decisive(rule) && rule.matches.forEach((_, k) => options.push({ at, i, k })));
  }
  for (let n = 0; n < options.length; n++) {
    const { at, i, k } = options[(r[0] + n) % options.length];
    const rules = [...chainOf(p, at).chain.rules];
    const old = rules[i];
    const wider: Rule = { ...old, matches: old.matches.filter((_, x) => x !== k) };
    if (!valid(p, at, wider)) continue;
    rules[i] = wider;
    return { kind: 'widen', noop: false, what: `${describe(p, at)}: rule ${i} \`${ruleText(old)}\` loses \`${printMatch(old.matches[k])}\``, policy: withRules(p, at, rules) };
  }
  return undefined;
}

const VERDICTS: readonly Target[] = [
  { kind: 'verdict', verdict: 'accept', span: NO_SPAN },
  { kind: 'verdict', verdict: 'drop', span: NO_SPAN },
  { kind: 'reject', span: NO_SPAN } as Target,
];

function action(p: Policy, r: readonly number[]): Mutation | undefined {
  const options: { at: Place; i: number }[] = [];
  for (const at of places(p, 1, r[2])) chainOf(p, at).chain.rules.forEach((_, i) => options.push({ at, i }));
  for (let n = 0; n < options.length; n++) {
    const { at, i } = options[(r[0] + n) % options.length];
    const rules = [...chainOf(p, at).chain.rules];
    const old = rules[i];
    for (let v = 0; v < VERDICTS.length; v++) {
      const target = VERDICTS[(r[1] + v) % VERDICTS.length];
      if (printTarget(target) === printTarget(old.target)) continue;
      const changed: Rule = { ...old, target };
      if (!valid(p, at, changed)) continue;
      rules[i] = changed;
      return { kind: 'action', noop: false, what: `${describe(p, at)}: rule ${i} \`${ruleText(old)}\` now \`${printTarget(target)}\``, policy: withRules(p, at, rules) };
    }
  }
  return undefined;
}

/**
 * Emitted as iptables-restore text per family and read back (the host model is kept);
 * undefined when the emitter refuses a rule (iptables would too: `-p tcp -p tcp`).
 */
export function reemit(p: Policy): Policy | undefined {
  const sources = new SourceFiles();
  const rulesets = { ...p.rulesets };
  for (const family of FAMILIES) {
    if (p.rulesets[family].tables.length === 0) continue;
    const file = `reemitted.${family}.rules`;
    const emitted = emitRuleset(p, family);
    if (emitted.diagnostics.some((d) => d.severity === 'error')) return undefined;
    const r = importIptablesSave(emitted.text, file, sources, { family });
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    if (!r.policy || errors.length) throw new Error(`emitted ${family} text does not import: ${errors.map((d) => d.message).join('; ')}`);
    rulesets[family] = r.policy.rulesets[family];
  }
  return { ...p, rulesets };
}

/** A single protocol the rule insists on (not negated), if any. */
function protoOf(rule: Rule): number | undefined {
  const m = rule.matches.find((x) => x.kind === 'proto');
  return m && m.kind === 'proto' && !m.negated && m.protos.length === 1 ? m.protos[0] : undefined;
}

function swapDisjoint(p: Policy, r: readonly number[]): Mutation | undefined {
  const options: { at: Place; i: number }[] = [];
  for (const at of places(p, 2, 1)) {
    const rules = chainOf(p, at).chain.rules;
    for (let i = 0; i + 1 < rules.length; i++) {
      const a = protoOf(rules[i]);
      const b = protoOf(rules[i + 1]);
      // No packet matches both, and no rewrite on the way changes a packet's protocol.
      if (a !== undefined && b !== undefined && a !== b) options.push({ at, i });
    }
  }
  if (!options.length) return undefined;
  const { at, i } = pick(options, r[0]);
  const rules = [...chainOf(p, at).chain.rules];
  [rules[i], rules[i + 1]] = [rules[i + 1], rules[i]];
  return { kind: 'swap-disjoint', noop: true, what: `${describe(p, at)}: swap rules ${i} and ${i + 1} (different protocols)`, policy: withRules(p, at, rules) };
}

function describe(p: Policy, at: Place): string {
  const { table, chain } = chainOf(p, at);
  return `${at.family} ${table.name}/${chain.name}`;
}

function reemitted(p: Policy): Mutation | undefined {
  const policy = reemit(p);
  return policy && { kind: 'reemit', noop: true, what: 're-emitted and re-imported', policy };
}

/**
 * Applies the mutation of this kind, or of the next kind that has a place in the policy;
 * undefined when none has (an empty policy the emitter also refuses).
 */
export function mutate(p: Policy, kind: MutationKind, choices: readonly number[]): Mutation | undefined {
  const r = [...choices, 0, 0, 0].map((x) => Math.abs(x));
  const start = MUTATIONS.indexOf(kind);
  for (let n = 0; n < MUTATIONS.length; n++) {
    const k = MUTATIONS[(start + n) % MUTATIONS.length];
    const m =
      k === 'reorder' ? reorder(p, r) : k === 'delete' ? del(p, r) : k === 'widen' ? widen(p, r) : k === 'action' ? action(p, r) : k === 'swap-disjoint' ? swapDisjoint(p, r) : reemitted(p);
    if (m) return m;
  }
  return undefined;
}
