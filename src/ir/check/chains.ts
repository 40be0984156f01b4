import { type Diagnostic, diag } from '../../util/diagnostics.js';
import { isHook } from '../netfilter.js';
import type { Chain } from '../policy.js';
import { type ChainGraph, edgeSpan } from './graph.js';
import { closest } from './suggest.js';

/** Jumps to missing or built-in chains, loops, and user chains that nothing reaches. */
export function checkChains(g: ChainGraph, report: (d: Diagnostic) => void, reachedElsewhere: (c: Chain) => boolean = () => false): void {
  const userNames = [...g.chains.values()].filter((c) => !c.hook).map((c) => c.name);
  for (const e of g.edges) {
    const target = g.chains.get(e.to);
    if (!target) {
      const upper = e.to.toUpperCase();
      const caseOnly = userNames.find((n) => n.toLowerCase() === e.to.toLowerCase());
      const near = caseOnly ?? closest(e.to, userNames);
      report(
        diag(
          'error',
          isHook(upper) && g.chains.has(upper) ? 'E-jump-to-builtin' : 'E-undefined-chain',
          edgeSpan(e),
          isHook(upper) && g.chains.has(upper)
            ? `\`${e.mode} ${e.to}\`: a rule cannot ${e.mode} to a built-in chain`
            : `no chain \`${e.to}\` in table ${g.table.name}`,
          isHook(upper) && g.chains.has(upper)
            ? 'move the rules into a user chain and jump to that from both places'
            : caseOnly
              ? `user chain names are case-sensitive: did you mean \`${caseOnly}\`?`
              : near
                ? `did you mean \`${near}\`? (or declare chain ${e.to} in table ${g.table.name})`
                : `declare it: chain ${e.to} { … } inside table ${g.table.name}`,
        ),
      );
      continue;
    }
    if (target.hook) {
      report(diag('error', 'E-jump-to-builtin', edgeSpan(e), `\`${e.mode} ${e.to}\`: a rule cannot ${e.mode} to a built-in chain`, 'move the rules into a user chain and jump to that from both places'));
    }
  }

  for (const loop of g.loops) {
    const names = [...loop.map((e) => e.from.name), loop[loop.length - 1].to];
    const closing = loop[loop.length - 1];
    // The kernel looks for loops from the built-in chains only (checked with iptables-restore):
    // a loop no packet can enter loads, but is still a mistake.
    const entered = (g.hooks.get(closing.from.name) ?? []).length > 0;
    report(
      diag(
        entered ? 'error' : 'warning',
        entered ? 'E-jump-loop' : 'W-jump-loop',
        edgeSpan(closing),
        loop.length === 1 ? `chain ${closing.from.name} jumps to itself` : `jump loop: ${names.join(' → ')}`,
        entered
          ? 'iptables-restore refuses loops between chains (too many levels of links); break the cycle'
          : 'no built-in chain reaches this loop, so the kernel loads it; jumping into it from a built-in chain would be refused',
        loop.slice(0, -1).map((e) => ({ span: edgeSpan(e), message: `${e.from.name} ${e.mode}s to ${e.to} here` })),
      ),
    );
  }

  for (const c of g.chains.values()) {
    if (c.hook) continue;
    if ((g.hooks.get(c.name) ?? []).length > 0 || reachedElsewhere(c)) continue;
    const callers = g.edges.filter((e) => e.to === c.name);
    report(
      diag(
        'warning',
        'W-unreachable-chain',
        c.span,
        callers.length === 0 ? `chain ${c.name} is never jumped to` : `chain ${c.name} is only reached from chains no packet enters`,
        callers.length === 0 ? `add \`jump ${c.name}\` to a built-in chain, or remove it` : 'the chains that jump here are not reached from any built-in chain',
      ),
    );
  }
}
