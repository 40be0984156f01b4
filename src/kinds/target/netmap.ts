import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import { type IpPrefix, formatPrefix, parsePrefix, prefixToInterval } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { TargetKind } from '../kind.js';

/**
 * `netmap to PREFIX` (-j NETMAP --to): map a whole network onto another one of the same size,
 * keeping the host part — the destination in PREROUTING/OUTPUT, the source in
 * POSTROUTING/INPUT. iptables keeps only the network part of the prefix (`10.0.0.5/24` is
 * saved as `10.0.0.0/24`).
 */
export interface NetmapTarget {
  readonly kind: 'netmap';
  readonly to: IpPrefix;
  readonly span: Span;
}

export const netmapKind: TargetKind<NetmapTarget> = {
  kind: 'netmap',
  doc: 'Map a network onto another of the same size, 1:1, keeping host bits (NETMAP).',
  syntax: ['netmap to PREFIX'],
  keywords: ['netmap'],
  tables: ['nat'],

  parse(cur, ctx) {
    const kw = cur.next()!;
    const w = cur.accept('to') ? cur.next() : undefined;
    const p = w?.type === 'atom' ? parsePrefix(w.text) : undefined;
    if (!p) {
      ctx.report(diag('error', 'E-netmap', w?.span ?? cur.here(), '`netmap` needs `to PREFIX`', 'e.g. netmap to 10.1.0.0/24'));
      return undefined;
    }
    return { kind: 'netmap', to: { family: p.family, addr: p.addr, len: p.len }, span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    return `netmap to ${formatPrefix(t.to)}`;
  },

  effect(t) {
    const [lo, hi] = prefixToInterval(t.to);
    return { type: 'nat', nat: { type: 'netmap', addr: [lo, hi], random: false, fullyRandom: false, persistent: false } };
  },

  hooks(): readonly Hook[] {
    return ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'];
  },

  forFamily(t, family) {
    return t.to.family === family ? t : 'never';
  },

  iptables: {
    names: ['NETMAP'],
    emit(t) {
      return ['-j', 'NETMAP', '--to', formatPrefix(t.to)];
    },
    fromIptables(_name, options, ctx) {
      const o = options.find((x) => x.name === '--to');
      const p = o ? parsePrefix(o.args[0] ?? '') : undefined;
      if (!p || p.family !== ctx.family) {
        ctx.report(diag('error', 'E-import-nat', o?.span ?? ctx.span, 'NETMAP needs --to PREFIX'));
        return undefined;
      }
      return { kind: 'netmap', to: { family: p.family, addr: p.addr, len: p.len }, span: ctx.span };
    },
  },
};
