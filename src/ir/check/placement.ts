import type { RuleView } from '../../kinds/kind.js';
import { matchKind, printMatch, printTarget, targetEffect, targetKind } from '../../kinds/index.js';
import { type Diagnostic, diag } from '../../util/diagnostics.js';
import type { Family } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import type { Hook, TableName } from '../netfilter.js';
import type { Chain, Rule } from '../policy.js';
import type { ChainGraph } from './graph.js';

const lower = (hs: readonly Hook[]) => hs.map((h) => h.toLowerCase()).join(', ');

/**
 * Targets and matches where the kernel refuses them, each kind's own checks, and `return`
 * in a built-in chain. A user chain is held to the hooks of every built-in chain that reaches
 * it, as iptables-restore does (`SNAT` in a chain jumped to from PREROUTING is refused).
 */
export function checkPlacement(g: ChainGraph, family: Family, report: (d: Diagnostic) => void): void {
  for (const chain of g.table.chains) {
    const hooks = g.hooks.get(chain.name) ?? [];
    for (const rule of chain.rules) checkRule(rule, { table: g.table.name, chain, hooks, family }, report, g);
  }
}

/** Where a rule sits, for checkRule. */
export interface RulePlace {
  readonly table: TableName;
  readonly chain: Chain | { readonly name: string; readonly hook?: Hook; readonly policy?: Chain['policy'] };
  /** Hooks the chain is reached from (a built-in chain: its own). */
  readonly hooks: readonly Hook[];
  readonly family: Family;
}

/**
 * The checks of one rule in its place. Exported for generators of random policies
 * (test/gen/policy.ts), which drop what the kernel would refuse.
 */
export function checkRule(rule: Rule, place: RulePlace, report: (d: Diagnostic) => void, g?: ChainGraph): void {
  const { chain, hooks, family, table } = place;
  const view: RuleView = { table, chain: chain.name, hooks, family, matches: rule.matches, span: rule.span };
  const kindReport = (code: string, span: Span, message: string, hint?: string) => report(diag(code.startsWith('W') ? 'warning' : 'error', code, span, message, hint));

  for (const m of rule.matches) {
    const k = matchKind(m);
    const allowed = k.hookCheck === 'builtin' && !chain.hook ? undefined : k.hooks?.(m as never);
    if (allowed) {
      const bad = hooks.filter((h) => !allowed.includes(h));
      if (bad.length) {
        report(diag('error', 'E-match-hook', m.span, `\`${printMatch(m)}\` cannot be used in ${where(chain, bad)}`, `the kernel allows it only in ${lower(allowed)}`, via(g, chain)));
      }
    }
    k.validate?.(m as never, view, kindReport);
  }

  const t = rule.target;
  const tk = targetKind(t);
  if (tk.tables && !tk.tables.includes(table)) {
    report(
      diag('error', 'E-target-table', t.span, `\`${printTarget(t)}\` is not allowed in the ${table} table`, `it is only valid in the ${tk.tables.join(', ')} table${tk.tables.length > 1 ? 's' : ''}`),
    );
  } else {
    const allowed = tk.hooks?.(t as never);
    if (allowed) {
      const bad = hooks.filter((h) => !allowed.includes(h));
      if (bad.length) {
        report(diag('error', 'E-target-hook', t.span, `\`${printTarget(t)}\` cannot be used in ${where(chain, bad)}`, `the kernel allows it only in ${lower(allowed)}`, via(g, chain)));
      }
    }
  }
  tk.validate?.(t as never, view, kindReport);

  if (chain.hook && targetEffect(t, family).type === 'return') {
    const policy = (chain.policy ?? 'ACCEPT').toLowerCase();
    report(
      diag(
        'warning',
        'W-return-in-builtin',
        t.span,
        `\`return\` in built-in chain ${chain.name.toLowerCase()} ends the chain with its policy (${policy})`,
        `write \`${policy}\` to say so directly`,
      ),
    );
  }
}

function where(chain: RulePlace['chain'], bad: readonly Hook[]): string {
  return chain.hook ? `chain ${chain.name.toLowerCase()}` : `chain ${chain.name}, which is reached from ${lower(bad)}`;
}

/** Notes pointing at the jumps that bring packets of a forbidden hook into a user chain. */
function via(g: ChainGraph | undefined, chain: RulePlace['chain']): Diagnostic['related'] {
  if (chain.hook || !g) return undefined;
  const callers = g.edges.filter((e) => e.to === chain.name && (g.hooks.get(e.from.name) ?? []).length > 0);
  return callers.slice(0, 3).map((e) => ({ span: e.rule.target.span, message: `${e.from.hook ? e.from.name.toLowerCase() : e.from.name} ${e.mode}s here` }));
}
