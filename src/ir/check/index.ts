import type { Diagnostic } from '../../util/diagnostics.js';
import { FAMILIES } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import type { Policy } from '../policy.js';
import { checkChains } from './chains.js';
import { buildChainGraph } from './graph.js';
import { checkPlacement } from './placement.js';

/**
 * Semantic checks on a lowered (or imported) policy: jumps to chains that do not exist, jump
 * loops, user chains nothing reaches, targets and matches in tables or hooks where the kernel
 * refuses them, and each kind's own validation (a port without tcp/udp…).
 *
 * Both families are checked; a rule of an `inet` table appears in each, so the same finding is
 * reported once.
 */
export function checkPolicy(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  const seen = new Set<string>();
  const report = (d: Diagnostic) => {
    const key = `${d.code}\u0000${d.span.file}\u0000${d.span.start.offset}\u0000${d.span.end.offset}\u0000${d.message}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push(d);
  };
  const graphs = FAMILIES.flatMap((family) => policy.rulesets[family].tables.map((table) => ({ family, graph: buildChainGraph(table, family) })));
  // A chain of an inet table reached only by IPv4 rules is still in use: warn only when no family reaches it.
  const reached = new Set<string>();
  for (const { graph } of graphs) {
    for (const [name, hooks] of graph.hooks) if (hooks.length) reached.add(chainKey(graph.table.name, name, graph.chains.get(name)!.span));
  }
  for (const { family, graph } of graphs) {
    checkChains(graph, report, (c) => reached.has(chainKey(graph.table.name, c.name, c.span)));
    checkPlacement(graph, family, report);
  }
  return out;
}

function chainKey(table: string, chain: string, span: Span): string {
  return `${table}\u0000${chain}\u0000${span.file}\u0000${span.start.offset}`;
}

export { buildChainGraph, type ChainGraph, type JumpEdge } from './graph.js';
