import { TCP_FLAG } from '../../ir/fields.js';
import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { TargetKind } from '../kind.js';

/**
 * `tcpmss set N` / `tcpmss clamp-to-pmtu` (-j TCPMSS --set-mss / --clamp-mss-to-pmtu): rewrite
 * the MSS option of TCP SYN packets, then continue. The kernel wants the rule to match tcp with a
 * flags test that requires SYN (`tcp flags syn / syn,rst`); clamping works only on FORWARD,
 * OUTPUT and POSTROUTING. No field a rule reads changes.
 */
export interface TcpmssTarget {
  readonly kind: 'tcpmss';
  /** A fixed MSS, or absent: clamp to the path MTU. */
  readonly mss?: number;
  readonly span: Span;
}

export const tcpmssKind: TargetKind<TcpmssTarget> = {
  kind: 'tcpmss',
  doc: 'Rewrite the MSS option of TCP SYN packets: a fixed value or clamped to the path MTU.',
  syntax: ['tcpmss set MSS', 'tcpmss clamp-to-pmtu'],
  keywords: ['tcpmss'],

  parse(cur, ctx) {
    const kw = cur.next()!;
    if (cur.accept('clamp-to-pmtu')) return { kind: 'tcpmss', span: clauseSpan(kw.span, cur) };
    const n = cur.accept('set') ? cur.next() : undefined;
    const v = n?.type === 'atom' && /^\d+$/.test(n.text) ? Number(n.text) : undefined;
    if (v === undefined || v > 65535) {
      ctx.report(diag('error', 'E-tcpmss', n?.span ?? cur.here(), '`tcpmss` needs `set MSS` or `clamp-to-pmtu`', 'e.g. tcp flags syn / syn,rst tcpmss clamp-to-pmtu'));
      return undefined;
    }
    return { kind: 'tcpmss', mss: v, span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    return t.mss === undefined ? 'tcpmss clamp-to-pmtu' : `tcpmss set ${t.mss}`;
  },

  effect() {
    return { type: 'continue', actions: [{ type: 'unmodelled', name: 'TCPMSS' }] };
  },

  hooks(t): readonly Hook[] | undefined {
    return t.mss === undefined ? ['FORWARD', 'OUTPUT', 'POSTROUTING'] : undefined;
  },

  validate(t, rule, report) {
    // xt_TCPMSS checkentry: a tcp match whose flags test requires SYN, not inverted.
    const syn = rule.matches.some((m) => m.kind === 'tcp-flags' && !m.negated && (m.flags & TCP_FLAG.SYN) !== 0);
    if (!syn) report('E-tcpmss-syn', t.span, '`tcpmss` only works on TCP SYN packets', 'add `tcp flags syn / syn,rst` to the rule (the kernel refuses TCPMSS otherwise)');
  },

  iptables: {
    names: ['TCPMSS'],
    emit(t) {
      return t.mss === undefined ? ['-j', 'TCPMSS', '--clamp-mss-to-pmtu'] : ['-j', 'TCPMSS', '--set-mss', String(t.mss)];
    },
    fromIptables(_name, options, ctx) {
      const o = options[0];
      if (o?.name === '--clamp-mss-to-pmtu') return { kind: 'tcpmss', span: ctx.span };
      if (o?.name === '--set-mss' && /^\d+$/.test(o.args[0] ?? '')) return { kind: 'tcpmss', mss: Number(o.args[0]), span: ctx.span };
      ctx.report(diag('error', 'E-import-target', o?.span ?? ctx.span, 'TCPMSS needs --set-mss N or --clamp-mss-to-pmtu'));
      return undefined;
    },
  },
};
