import type { Hook } from '../../ir/netfilter.js';
import type { Span } from '../../util/span.js';
import type { TargetKind } from '../kind.js';

/**
 * `notrack` (-j NOTRACK): leave the packet untracked (its state is UNTRACKED, no NAT). The same
 * as `ct notrack` (-j CT --notrack); iptables-save keeps the two spellings apart, so does nfproof.
 * raw table only.
 */
export interface NotrackTarget {
  readonly kind: 'notrack';
  readonly span: Span;
}

export const notrackKind: TargetKind<NotrackTarget> = {
  kind: 'notrack',
  doc: 'Exempt the packet from connection tracking (raw table): its state becomes untracked.',
  syntax: ['notrack'],
  keywords: ['notrack'],
  tables: ['raw'],

  parse(cur) {
    return { kind: 'notrack', span: cur.next()!.span };
  },

  print() {
    return 'notrack';
  },

  effect() {
    return { type: 'continue', actions: [{ type: 'notrack' }] };
  },

  hooks(): readonly Hook[] {
    return ['PREROUTING', 'OUTPUT'];
  },

  iptables: {
    names: ['NOTRACK'],
    emit() {
      return ['-j', 'NOTRACK'];
    },
    fromIptables(_name, _options, ctx) {
      return { kind: 'notrack', span: ctx.span };
    },
  },
};
