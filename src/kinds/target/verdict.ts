import type { Span } from '../../util/span.js';
import type { TargetKind } from '../kind.js';

/** `accept` / `drop`: the two plain verdicts (-j ACCEPT / -j DROP). */
export interface VerdictTarget {
  readonly kind: 'verdict';
  readonly verdict: 'accept' | 'drop';
  readonly span: Span;
}

export const verdictKind: TargetKind<VerdictTarget> = {
  kind: 'verdict',
  doc: 'Accept or drop the packet; ends evaluation of this hook for it.',
  syntax: ['accept', 'drop'],
  keywords: ['accept', 'drop'],

  parse(cur) {
    const w = cur.next() as { text: 'accept' | 'drop'; span: Span };
    return { kind: 'verdict', verdict: w.text, span: w.span };
  },

  print(t) {
    return t.verdict;
  },

  effect(t) {
    return { type: t.verdict };
  },

  validate(t, rule, report) {
    // iptables refuses DROP in the nat table ("not intended for filtering"): the nat table only
    // sees a connection's first packet, so a DROP there would filter inconsistently.
    if (t.verdict === 'drop' && rule.table === 'nat') {
      report('E-drop-in-nat', t.span, '`drop` is not allowed in the nat table', 'filter in the filter table (or raw/mangle); iptables refuses DROP in nat');
    }
  },

  iptables: {
    names: ['ACCEPT', 'DROP'],
    emit(t) {
      return ['-j', t.verdict.toUpperCase()];
    },
    fromIptables(name, _options, ctx) {
      return { kind: 'verdict', verdict: name === 'ACCEPT' ? 'accept' : 'drop', span: ctx.span };
    },
  },
};
