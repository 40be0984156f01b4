import { type Constraint, and } from '../../ir/constraint.js';
import type { TargetEffect } from '../../ir/effect.js';
import { type Hook, HOOKS, type TableName, tablesOnHook } from '../../ir/netfilter.js';
import type { Chain, Flow, Policy, Rule } from '../../ir/policy.js';
import { matchConstraint, printMatch, printTarget, targetEffect } from '../../kinds/index.js';
import type { Family } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import { type IfacePattern, IfaceDomain } from './ifaces.js';
import { RoutingView } from './routing.js';
import { rulesetUsesConntrack } from '../../netfilter/rules/needs-conntrack.js';
import { type CtValidity, ctValidity } from './ct-validity.js';

/**
 * The policy of one family, compiled for analysis: every rule with its meaning (one Constraint
 * for all its matches, one TargetEffect), chains linked to their callers, the tables of each
 * hook in kernel order, the interface-name domain and the host's routing.
 *
 * Built once per check; the concrete interpreter, the box pre-pass and the Z3 encoding all
 * read this structure, so they cannot disagree about what the policy says.
 */
export interface ModelRule {
  /** Index in FamilyModel.rules. */
  readonly id: number;
  readonly table: TableName;
  readonly chain: string;
  /** 0-based position in the chain. */
  readonly index: number;
  readonly constraint: Constraint;
  readonly effect: TargetEffect;
  /** The rule as DSL text, for messages. */
  readonly text: string;
  readonly span: Span;
  readonly source: Rule;
}

export interface ModelChain {
  readonly table: TableName;
  readonly name: string;
  readonly hook?: Hook;
  readonly policy?: 'ACCEPT' | 'DROP';
  readonly rules: readonly ModelRule[];
  readonly span: Span;
  /** Rules (anywhere in the table) that jump or goto here. */
  readonly callers: ModelRule[];
  /** Hooks whose built-in chains can lead here. */
  readonly hooks: Set<Hook>;
}

export interface Stage {
  readonly hook: Hook;
  readonly table: TableName;
  readonly chain: ModelChain;
}

/** What the policy does anywhere, so encodings can skip what cannot happen. */
export interface ModelFeatures {
  readonly setsMark: boolean;
  readonly setsCtmark: boolean;
  readonly notrack: boolean;
  readonly nat: boolean;
  /** Some rule asks for connection tracking, so the kernel tracks this family at all. */
  readonly tracking: boolean;
}

/** A problem in the policy's structure the analysis worked around (it is reported, not thrown). */
export interface ModelNote {
  readonly span: Span;
  readonly message: string;
}

export interface FamilyModel {
  readonly family: Family;
  readonly policy: Policy;
  readonly rules: readonly ModelRule[];
  readonly chains: ReadonlyMap<string, ModelChain>;
  /** Built-in chains per hook, in the order the kernel runs their tables. */
  readonly stages: Readonly<Record<Hook, readonly Stage[]>>;
  readonly ifaces: IfaceDomain;
  readonly routing: RoutingView;
  readonly features: ModelFeatures;
  /** Which packets conntrack can give which state (from the simulator's trackers). */
  readonly ct: CtValidity;
  readonly notes: readonly ModelNote[];
}

export function chainKey(table: TableName, name: string): string {
  return `${table}/${name}`;
}

export function lookupChain(model: FamilyModel, table: TableName, name: string): ModelChain | undefined {
  return model.chains.get(chainKey(table, name));
}

export function ruleText(r: Rule): string {
  return [...r.matches.map(printMatch), printTarget(r.target)].join(' ');
}

/** Interface patterns a constraint mentions (for the interface-name domain). */
export function ifacePatterns(c: Constraint, out: IfacePattern[] = []): IfacePattern[] {
  switch (c.op) {
    case 'and':
    case 'or':
      c.of.forEach((x) => ifacePatterns(x, out));
      break;
    case 'not':
      ifacePatterns(c.of, out);
      break;
    case 'iface':
      out.push({ name: c.name, wildcard: c.wildcard });
      break;
    default:
      break;
  }
  return out;
}

/**
 * Compiles one family of a policy. `extraFlows` are flows (expectations, a query) whose
 * interface names must be part of the interface domain too.
 */
export function buildFamilyModel(policy: Policy, family: Family, extraFlows: readonly Flow[] = []): FamilyModel {
  const ruleset = policy.rulesets[family];
  const rules: ModelRule[] = [];
  const chains = new Map<string, ModelChain>();
  const notes: ModelNote[] = [];
  const patterns: IfacePattern[] = [];
  let setsMark = false;
  let setsCtmark = false;
  let notrack = false;
  let nat = false;

  for (const table of ruleset.tables) {
    for (const chain of table.chains) {
      const mc: ModelChain = {
        table: table.name,
        name: chain.name,
        ...(chain.hook ? { hook: chain.hook } : {}),
        ...(chain.policy ? { policy: chain.policy } : {}),
        rules: compileRules(family, table.name, chain, rules),
        span: chain.span,
        callers: [],
        hooks: new Set(chain.hook ? [chain.hook] : []),
      };
      chains.set(chainKey(table.name, chain.name), mc);
    }
  }
  for (const r of rules) {
    ifacePatterns(r.constraint, patterns);
    const e = r.effect;
    if (e.type === 'jump' || e.type === 'goto') {
      const target = chains.get(chainKey(r.table, e.chain));
      if (target) target.callers.push(r);
      else notes.push({ span: r.span, message: `rule jumps to chain ${e.chain}, which table ${r.table} does not have; the jump is ignored` });
    } else if (e.type === 'continue') {
      for (const a of e.actions) {
        if (a.type === 'xmark' || a.type === 'copy-mark') {
          if ((a.type === 'xmark' ? a.field : a.to) === 'mark') setsMark = true;
          else setsCtmark = true;
        } else if (a.type === 'notrack') notrack = true;
      }
    } else if (e.type === 'nat') nat = true;
  }
  for (const f of extraFlows) for (const m of f.matches) ifacePatterns(matchConstraint(m, family), patterns);

  // Hooks that can lead to each user chain (for presence of hook-dependent fields).
  const propagate = (c: ModelChain, hook: Hook, seen: Set<ModelChain>): void => {
    if (seen.has(c)) return;
    seen.add(c);
    c.hooks.add(hook);
    for (const r of c.rules) {
      if (r.effect.type === 'jump' || r.effect.type === 'goto') {
        const t = chains.get(chainKey(c.table, r.effect.chain));
        if (t) propagate(t, hook, seen);
      }
    }
  };
  for (const c of chains.values()) if (c.hook) propagate(c, c.hook, new Set());

  // Conntrack runs in a namespace only once some rule asks for it (nf_ct_netns_get); without
  // it packets carry no connection and the nat table is never consulted (nf_nat_inet_fn).
  // The simulator decides this the same way (src/netfilter/rules/needs-conntrack.ts).
  const tracking = rulesetUsesConntrack(ruleset);
  const stages = {} as Record<Hook, Stage[]>;
  for (const hook of HOOKS) {
    stages[hook] = [];
    for (const t of tablesOnHook(hook)) {
      if (t === 'nat' && !tracking) continue;
      const c = chains.get(chainKey(t, hook));
      if (c) stages[hook].push({ hook, table: t, chain: c });
    }
  }

  const routing = new RoutingView(family, policy.host);
  // lo always gets its own class: the kernel treats it apart (martian checks, no MAC header).
  const ifaces = new IfaceDomain(patterns, [...routing.devices, 'lo']);
  const ct = ctValidity(family, policy.host?.sysctls ?? {});
  return { family, policy, rules, chains, stages, ifaces, routing, features: { setsMark, setsCtmark, notrack, nat, tracking }, ct, notes };
}

function compileRules(family: Family, table: TableName, chain: Chain, out: ModelRule[]): ModelRule[] {
  return chain.rules.map((rule, index) => {
    const mr: ModelRule = {
      id: out.length,
      table,
      chain: chain.name,
      index,
      constraint: and(...rule.matches.map((m) => matchConstraint(m, family))),
      effect: targetEffect(rule.target, family),
      text: ruleText(rule),
      span: rule.span,
      source: rule,
    };
    out.push(mr);
    return mr;
  });
}

/** Builds the models of both families. */
export function buildModels(policy: Policy, extraFlows: readonly Flow[] = []): FamilyModel[] {
  return (['ipv4', 'ipv6'] as const).map((f) => buildFamilyModel(policy, f, extraFlows));
}
