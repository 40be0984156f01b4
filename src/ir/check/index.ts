import type { Diagnostic } from '../../util/diagnostics.js';
import { FAMILIES } from '../../util/ip.js';
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
  for (const family of FAMILIES) {
    for (const table of policy.rulesets[family].tables) {
      const graph = buildChainGraph(table, family);
      checkChains(graph, report);
      checkPlacement(graph, family, report);
    }
  }
  return out;
}

export { buildChainGraph, type ChainGraph, type JumpEdge } from './graph.js';
