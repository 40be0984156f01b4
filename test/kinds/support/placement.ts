import type { Hook, TableName } from '../../../src/ir/netfilter.js';
import { type Match, type Target, matchKind, targetKind } from '../../../src/kinds/index.js';
import type { RuleView } from '../../../src/kinds/kind.js';
import type { Family } from '../../../src/util/ip.js';
import { NO_SPAN } from '../../../src/util/span.js';

/**
 * What the kinds say about where a rule may stand — the target's tables, every kind's hooks and
 * validate() — for a rule in a built-in chain. The semantic checks of src/ir use the same
 * fields; this small version lets the kinds' claims be compared with what the kernel refuses.
 */
export function placementProblems(matches: readonly Match[], target: Target | undefined, table: TableName, hook: Hook, family: Family): string[] {
  const out: string[] = [];
  const rule: RuleView = { table, chain: hook, hooks: [hook], family, matches, span: NO_SPAN };
  const report = (code: string) => out.push(code);
  for (const m of matches) {
    const k = matchKind(m);
    const hooks = k.hooks?.(m);
    if (hooks && !hooks.includes(hook)) out.push(`hook:${m.kind}`);
    k.validate?.(m, rule, report);
  }
  if (target) {
    const k = targetKind(target);
    if (k.tables && !k.tables.includes(table)) out.push(`table:${target.kind}`);
    const hooks = k.hooks?.(target);
    if (hooks && !hooks.includes(hook)) out.push(`hook:${target.kind}`);
    k.validate?.(target, rule, report);
  }
  return out;
}
