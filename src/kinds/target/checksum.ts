import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { TargetKind } from '../kind.js';

/**
 * `checksum fill` (-j CHECKSUM --checksum-fill): compute a missing checksum in the packet
 * (old DHCP clients behind virtio), then continue. mangle table only.
 */
export interface ChecksumTarget {
  readonly kind: 'checksum';
  readonly span: Span;
}

export const checksumKind: TargetKind<ChecksumTarget> = {
  kind: 'checksum',
  doc: 'Fill in a missing transport checksum (mangle table), then continue.',
  syntax: ['checksum fill'],
  keywords: ['checksum'],
  tables: ['mangle'],

  parse(cur, ctx) {
    const kw = cur.next()!;
    if (!cur.accept('fill')) {
      ctx.report(diag('error', 'E-checksum', cur.here(), 'expected `checksum fill`'));
      return undefined;
    }
    return { kind: 'checksum', span: clauseSpan(kw.span, cur) };
  },

  print() {
    return 'checksum fill';
  },

  effect() {
    return { type: 'continue', actions: [{ type: 'unmodelled', name: 'CHECKSUM' }] };
  },

  iptables: {
    names: ['CHECKSUM'],
    emit() {
      return ['-j', 'CHECKSUM', '--checksum-fill'];
    },
    fromIptables(_name, _options, ctx) {
      return { kind: 'checksum', span: ctx.span };
    },
  },
};
