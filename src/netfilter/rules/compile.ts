import { type Constraint, opaqueParts } from '../../ir/constraint.js';
import type { TargetEffect } from '../../ir/effect.js';
import { type Hook, HOOKS, type TableName, tablesOnHook } from '../../ir/netfilter.js';
import type { Chain, Rule, Ruleset } from '../../ir/policy.js';
import { type Match, matchConstraint, matchKind, printTarget, targetEffect } from '../../kinds/index.js';
import type { Family } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import { type Frame, frameView } from '../frame.js';
import { buildDispatch, type Dispatch } from './dispatch.js';
import { rulesetUsesConntrack } from './needs-conntrack.js';
import { compileConstraint, type Pred } from './predicate.js';

/**
 * A ruleset compiled for execution: each rule's matches become one predicate over a Frame,
 * each target its TargetEffect, chains get counters and (when long) a dispatch index that
 * narrows the rules a packet must look at.
 */
export interface CompiledRule {
  readonly index: number;
  readonly test: Pred;
  /** The rule's meaning without the opaque matches' state, for the dispatch index. */
  readonly constraint: Constraint;
  /** Whether a match needs the kind's evaluate() (stateful or unknown): never skipped by the index. */
  readonly stateful: boolean;
  readonly effect: TargetEffect;
  readonly span: Span;
  /** The target as the user wrote it, for traces. */
  readonly label: string;
}

export interface CompiledChain {
  readonly table: TableName;
  readonly name: string;
  readonly hook?: Hook;
  readonly policy?: 'ACCEPT' | 'DROP';
  readonly rules: readonly CompiledRule[];
  readonly packets: Float64Array;
  readonly bytes: Float64Array;
  policyPackets: number;
  policyBytes: number;
  readonly span: Span;
  /** Present for chains long enough to be worth indexing. */
  readonly dispatch?: Dispatch;
  /** The table the chain belongs to (jump targets are looked up there). */
  owner: CompiledTable;
}

export interface CompiledTable {
  readonly name: TableName;
  readonly chains: ReadonlyMap<string, CompiledChain>;
  /** Chains in declaration order (built-ins first), for listings. */
  readonly order: readonly CompiledChain[];
}

export interface CompiledRuleset {
  readonly family: Family;
  readonly tables: ReadonlyMap<TableName, CompiledTable>;
  /** The built-in chain of a table on a hook, when the policy declares that table. */
  builtin(table: TableName, hook: Hook): CompiledChain | undefined;
  /** A nat table exists: the kernel's NAT hooks are registered (null bindings happen). */
  readonly hasNat: boolean;
  /** Some rule needs conntrack, so the kernel tracks this family at all (needs-conntrack.ts). */
  readonly tracking: boolean;
}

/** What opaque matches need from the simulator (kinds' evaluate hooks with their state). */
export interface OpaqueEnv {
  decide(m: Match, ruleKey: string, c: Extract<Constraint, { op: 'opaque' }>, f: Frame): boolean;
}

/** Chains with at least this many rules get a dispatch index. */
export const DISPATCH_THRESHOLD = 16;

export interface CompileOptions {
  /** Overrides for tests: a rule's effect / constraint instead of the registry's. */
  readonly effectOf?: (rule: Rule, family: Family) => TargetEffect;
  readonly labelOf?: (rule: Rule) => string | undefined;
  readonly dispatchThreshold?: number;
  /** Force conntrack on or off (default: on when a rule needs it, as the kernel does). */
  readonly tracking?: boolean;
}

function compileRule(
  rule: Rule,
  index: number,
  table: TableName,
  chain: string,
  family: Family,
  env: OpaqueEnv,
  opts: CompileOptions,
): CompiledRule {
  const tests: Pred[] = [];
  const constraints: Constraint[] = [];
  let stateful = false;
  rule.matches.forEach((m, mi) => {
    const c = matchConstraint(m, family);
    constraints.push(c);
    if (opaqueParts(c).length > 0) stateful = true;
    const key = `${family}/${table}/${chain}/${index}/${mi}`;
    tests.push(compileConstraint(c, family, (oc, f) => env.decide(m, key, oc, f)));
  });
  const test: Pred =
    tests.length === 0
      ? () => true
      : tests.length === 1
        ? tests[0]
        : (f) => {
            for (let i = 0; i < tests.length; i++) if (!tests[i](f)) return false;
            return true;
          };
  const constraint: Constraint = constraints.length === 0 ? { op: 'true' } : constraints.length === 1 ? constraints[0] : { op: 'and', of: constraints };
  return {
    index,
    test,
    constraint,
    stateful,
    effect: opts.effectOf ? opts.effectOf(rule, family) : targetEffect(rule.target, family),
    span: rule.span,
    label: opts.labelOf?.(rule) ?? printTarget(rule.target),
  };
}

function compileChain(c: Chain, table: TableName, family: Family, env: OpaqueEnv, opts: CompileOptions): CompiledChain {
  const rules = c.rules.map((r, i) => compileRule(r, i, table, c.name, family, env, opts));
  const threshold = opts.dispatchThreshold ?? DISPATCH_THRESHOLD;
  const dispatch = rules.length >= threshold ? buildDispatch(rules, family) : undefined;
  return {
    table,
    name: c.name,
    ...(c.hook ? { hook: c.hook } : {}),
    ...(c.policy ? { policy: c.policy } : {}),
    rules,
    packets: new Float64Array(rules.length),
    bytes: new Float64Array(rules.length),
    policyPackets: 0,
    policyBytes: 0,
    span: c.span,
    ...(dispatch ? { dispatch } : {}),
    owner: undefined as unknown as CompiledTable,
  };
}

export function compileRuleset(rs: Ruleset, env: OpaqueEnv, opts: CompileOptions = {}): CompiledRuleset {
  const family = rs.family;
  const tables = new Map<TableName, CompiledTable>();
  for (const t of rs.tables) {
    const chains = new Map<string, CompiledChain>();
    const order: CompiledChain[] = [];
    for (const c of t.chains) {
      const cc = compileChain(c, t.name, family, env, opts);
      chains.set(c.name, cc);
      order.push(cc);
    }
    const compiled: CompiledTable = { name: t.name, chains, order };
    for (const cc of order) cc.owner = compiled;
    tables.set(t.name, compiled);
  }
  // Nested records, not string keys: this lookup happens several times per packet.
  const builtins: Record<string, Partial<Record<Hook, CompiledChain>>> = {};
  for (const hook of HOOKS) {
    for (const tn of tablesOnHook(hook)) {
      const chain = tables.get(tn)?.chains.get(hook);
      if (chain) (builtins[tn] ??= {})[hook] = chain;
    }
  }
  const none: Partial<Record<Hook, CompiledChain>> = {};
  for (const tn of ['raw', 'mangle', 'nat', 'filter', 'security'] as const) builtins[tn] ??= none;
  return {
    family,
    tables,
    builtin: (table, hook) => builtins[table][hook],
    hasNat: tables.has('nat'),
    tracking: opts.tracking ?? rulesetUsesConntrack(rs, opts.effectOf ? (r) => opts.effectOf!(r, family) : undefined),
  };
}

/** For the reference evaluation in tests: the frame as a PacketView. */
export { frameView };
export { matchKind };
