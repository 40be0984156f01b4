import type { Chain, Policy, Rule } from '../../ir/policy.js';
import type { TableName } from '../../ir/netfilter.js';
import { type Match, matchKind, targetEffect, targetKind } from '../../kinds/index.js';
import type { RuleView } from '../../kinds/kind.js';
import type { AddrValue, PortValue } from '../../kinds/values.js';
import type { Family } from '../../util/ip.js';

/**
 * Makes an imported policy read like one written by hand, for `nfproof import`'s .nfp output:
 *
 * 1. Runs of adjacent rules that differ only in one address, port or protocol — `-s a -j ACCEPT`,
 *    `-s b -j ACCEPT` — become one rule with a set (`saddr { a, b } accept`). Only for targets
 *    that end the packet's walk (accept, drop, reject, return, goto, NAT), where the set means
 *    exactly the run of rules it replaces (see src/backends/emit/rule.ts); never when a value
 *    repeats (the emitter would write it once, and the rules would no longer line up).
 * 2. Sets of two or more values that occur more than once become named defines (`ref`), which
 *    the printer writes as `define netN = { … }` / `define portsN = { … }`.
 *
 * The import itself (importIptablesSave) keeps one IR rule per iptables rule, so that `check`
 * and `diff` point at the dump's own lines; only the printed policy is folded.
 */
function key(x: unknown): string {
  return JSON.stringify(x, (k, v) => (k === 'span' ? undefined : typeof v === 'bigint' ? `${v}n` : v));
}

const ENDS_WALK = new Set(['accept', 'drop', 'reject', 'return', 'goto', 'nat']);

type Foldable = (Match & { kind: 'addr' }) | (Match & { kind: 'port' }) | (Match & { kind: 'proto' });

function foldable(m: Match): m is Foldable {
  if (m.kind === 'proto') return !m.negated;
  if (m.kind === 'addr') return !m.negated && m.value.excluded.length === 0 && m.value.ref === undefined;
  if (m.kind === 'port') return !m.negated && m.value.ref === undefined;
  return false;
}

/** The one position where two rules differ in a foldable value of the same sort, if so. */
function differsInOneValue(a: Rule, b: Rule): number | undefined {
  if (a.matches.length !== b.matches.length || a.comment !== b.comment) return undefined;
  if (key(a.target) !== key(b.target)) return undefined;
  let at: number | undefined;
  for (let i = 0; i < a.matches.length; i++) {
    const x = a.matches[i];
    const y = b.matches[i];
    if (key(x) === key(y)) continue;
    if (at !== undefined || !foldable(x) || !foldable(y) || x.kind !== y.kind) return undefined;
    if (x.kind !== 'proto' && y.kind !== 'proto' && x.dir !== y.dir) return undefined;
    if (x.kind === 'port' && y.kind === 'port' && (x.multiport ?? false) !== (y.multiport ?? false)) return undefined;
    at = i;
  }
  return at;
}

function itemsOf(m: Foldable): readonly unknown[] {
  return m.kind === 'proto' ? m.protos : m.value.items;
}

function withItems(m: Foldable, extra: Foldable): Foldable {
  if (m.kind === 'proto' && extra.kind === 'proto') return { ...m, protos: [...m.protos, ...extra.protos] };
  if (m.kind === 'addr' && extra.kind === 'addr') return { ...m, value: { ...m.value, items: [...m.value.items, ...extra.value.items] } };
  if (m.kind === 'port' && extra.kind === 'port') {
    const { multiport: _drop, ...rest } = m;
    return { ...rest, value: { ...m.value, items: [...m.value.items, ...extra.value.items] } };
  }
  return m;
}

/** Whether every kind accepts the rule as it stands (a folded rule must not become invalid). */
function acceptable(rule: Rule, family: Family, table: TableName, chain: Chain): boolean {
  let ok = true;
  const view: RuleView = { table, chain: chain.name, hooks: chain.hook ? [chain.hook] : [], family, matches: rule.matches, span: rule.span };
  const report = () => {
    ok = false;
  };
  for (const m of rule.matches) matchKind(m).validate?.(m, view, report);
  targetKind(rule.target).validate?.(rule.target, view, report);
  return ok;
}

function mergeRuns(chain: Chain, family: Family, table: TableName): Rule[] {
  const rules = chain.rules;
  const out: Rule[] = [];
  for (const r of rules) {
    const prev = out[out.length - 1];
    const at = prev && ENDS_WALK.has(targetEffect(r.target, family).type) ? differsInOneValue(prev, r) : undefined;
    if (prev && at !== undefined) {
      const have = new Set(itemsOf(prev.matches[at] as Foldable).map(key));
      const add = r.matches[at] as Foldable;
      if (itemsOf(add).every((i) => !have.has(key(i)))) {
        const matches = prev.matches.map((m, i) => (i === at ? withItems(m as Foldable, add) : m));
        const { counters: _c, ...rest } = prev;
        const merged = { ...rest, matches };
        if (acceptable(merged, family, table, chain)) {
          out[out.length - 1] = merged;
          continue;
        }
      }
    }
    out.push(r);
  }
  return out;
}

/** Names sets that occur more than once. */
function nameRepeatedSets(policy: Policy): Policy {
  const uses = new Map<string, number>();
  const visit = (f: (m: Match) => Match) => (p: Policy): Policy => ({
    ...p,
    rulesets: {
      ipv4: { ...p.rulesets.ipv4, tables: p.rulesets.ipv4.tables.map((t) => ({ ...t, chains: t.chains.map((c): Chain => ({ ...c, rules: c.rules.map((r) => ({ ...r, matches: r.matches.map(f) })) })) })) },
      ipv6: { ...p.rulesets.ipv6, tables: p.rulesets.ipv6.tables.map((t) => ({ ...t, chains: t.chains.map((c): Chain => ({ ...c, rules: c.rules.map((r) => ({ ...r, matches: r.matches.map(f) })) })) })) },
    },
  });
  const setKey = (m: Match): string | undefined => {
    if (m.kind === 'addr' && m.value.items.length + m.value.excluded.length >= 2 && !m.value.ref) return `a${key(m.value)}`;
    if (m.kind === 'port' && m.value.items.length >= 2 && !m.value.ref) return `p${key(m.value.items)}`;
    return undefined;
  };
  visit((m) => {
    const k = setKey(m);
    if (k) uses.set(k, (uses.get(k) ?? 0) + 1);
    return m;
  })(policy);
  const names = new Map<string, string>();
  let nets = 0;
  let ports = 0;
  return visit((m) => {
    const k = setKey(m);
    if (!k || (uses.get(k) ?? 0) < 2) return m;
    let name = names.get(k);
    if (!name) {
      name = k.startsWith('a') ? `net${++nets}` : `ports${++ports}`;
      names.set(k, name);
    }
    if (m.kind === 'addr') return { ...m, value: { ...m.value, ref: name } as AddrValue };
    if (m.kind === 'port') return { ...m, value: { ...m.value, ref: name } as PortValue };
    return m;
  })(policy);
}

export function idiomatic(policy: Policy): Policy {
  const merged: Policy = {
    ...policy,
    rulesets: {
      ipv4: { ...policy.rulesets.ipv4, tables: policy.rulesets.ipv4.tables.map((t) => ({ ...t, chains: t.chains.map((c) => ({ ...c, rules: mergeRuns(c, 'ipv4', t.name) })) })) },
      ipv6: { ...policy.rulesets.ipv6, tables: policy.rulesets.ipv6.tables.map((t) => ({ ...t, chains: t.chains.map((c) => ({ ...c, rules: mergeRuns(c, 'ipv6', t.name) })) })) },
    },
  };
  return nameRepeatedSets(merged);
}
