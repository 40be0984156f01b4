import { targetEffect } from '../../kinds/index.js';
import type { Family } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import type { Hook } from '../netfilter.js';
import type { Chain, Rule, Table } from '../policy.js';

/** A jump or goto from one chain to another, with the rule that makes it. */
export interface JumpEdge {
  readonly from: Chain;
  readonly to: string;
  readonly rule: Rule;
  readonly mode: 'jump' | 'goto';
}

/**
 * The jump graph of one table: which chain jumps where, from which hooks each chain can be
 * reached, and the loops. iptables-restore refuses loops (ELOOP) and checks every target and
 * match of a user chain against the hooks of every built-in chain that reaches it, so the
 * same facts drive nfproof's checks.
 */
export interface ChainGraph {
  readonly table: Table;
  readonly chains: ReadonlyMap<string, Chain>;
  readonly edges: readonly JumpEdge[];
  /** Hooks each chain is reached from (built-ins: their own hook). Unreached chains map to []. */
  readonly hooks: ReadonlyMap<string, readonly Hook[]>;
  /** Built-in chains through which each user chain is reached (for messages). */
  readonly reachedFrom: ReadonlyMap<string, readonly string[]>;
  /** Each loop once, as the edges that close it, in order. */
  readonly loops: readonly (readonly JumpEdge[])[];
}

export function buildChainGraph(table: Table, family: Family): ChainGraph {
  const chains = new Map(table.chains.map((c) => [c.name, c]));
  const edges: JumpEdge[] = [];
  const out = new Map<string, JumpEdge[]>();
  for (const c of table.chains) {
    const list: JumpEdge[] = [];
    for (const r of c.rules) {
      const e = targetEffect(r.target, family);
      if (e.type === 'jump' || e.type === 'goto') {
        const edge: JumpEdge = { from: c, to: e.chain, rule: r, mode: e.type };
        edges.push(edge);
        list.push(edge);
      }
    }
    out.set(c.name, list);
  }

  const hooks = new Map<string, Set<Hook>>(table.chains.map((c) => [c.name, new Set<Hook>()]));
  const reachedFrom = new Map<string, Set<string>>(table.chains.map((c) => [c.name, new Set<string>()]));
  for (const root of table.chains) {
    if (!root.hook) continue;
    // Breadth-first from each built-in chain; a loop is harmless here (visited set).
    const seen = new Set([root.name]);
    const queue = [root.name];
    while (queue.length) {
      const name = queue.shift()!;
      hooks.get(name)?.add(root.hook);
      reachedFrom.get(name)?.add(root.name);
      for (const e of out.get(name) ?? []) {
        if (!seen.has(e.to) && chains.has(e.to)) {
          seen.add(e.to);
          queue.push(e.to);
        }
      }
    }
  }

  return {
    table,
    chains,
    edges,
    hooks: new Map([...hooks].map(([k, v]) => [k, [...v]])),
    reachedFrom: new Map([...reachedFrom].map(([k, v]) => [k, [...v].filter((n) => n !== k)])),
    loops: findLoops(table.chains, out, chains),
  };
}

/** Depth-first search; every back edge closes a loop, reported with the path that forms it. */
function findLoops(all: readonly Chain[], out: ReadonlyMap<string, readonly JumpEdge[]>, chains: ReadonlyMap<string, Chain>): JumpEdge[][] {
  const state = new Map<string, 'open' | 'done'>();
  const path: JumpEdge[] = [];
  const loops: JumpEdge[][] = [];
  const seenLoops = new Set<string>();
  const visit = (name: string): void => {
    state.set(name, 'open');
    for (const e of out.get(name) ?? []) {
      // Jumps to missing or built-in chains are errors of their own, not loops.
      if (!chains.has(e.to) || chains.get(e.to)!.hook) continue;
      const s = state.get(e.to);
      if (s === 'open') {
        const start = path.findIndex((p) => p.from.name === e.to);
        const loop = [...(start >= 0 ? path.slice(start) : []), e];
        const key = loop
          .map((x) => x.from.name)
          .sort()
          .join('\u0000');
        if (!seenLoops.has(key)) {
          seenLoops.add(key);
          loops.push(loop);
        }
      } else if (s === undefined) {
        path.push(e);
        visit(e.to);
        path.pop();
      }
    }
    state.set(name, 'done');
  };
  // Built-ins first so that loops are described from where packets enter them.
  for (const c of [...all.filter((c) => c.hook), ...all.filter((c) => !c.hook)]) if (!state.has(c.name)) visit(c.name);
  return loops;
}

export function edgeSpan(e: JumpEdge): Span {
  return e.rule.target.span;
}
