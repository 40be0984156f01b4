import { type Constraint, eq } from '../../ir/constraint.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/**
 * IPv4 fragments: `fragment` is a second or later fragment (iptables `-f`), `fragment no` any
 * other packet (`! -f`: unfragmented or a first fragment). Later fragments carry no ports or
 * flags, so port and flag tests never match them. ip6tables has no -f: in an IPv6 ruleset
 * `fragment` never matches and `fragment no` always does (nfproof does not model IPv6
 * fragments).
 */
export interface FragmentMatch {
  readonly kind: 'fragment';
  readonly negated: boolean;
  readonly span: Span;
}

export const fragmentKind: MatchKind<FragmentMatch> = {
  kind: 'fragment',
  doc: 'A second or later IPv4 fragment (fragment), or any other packet (fragment no).',
  syntax: ['fragment', 'fragment no'],
  keywords: ['fragment'],
  inFlows: true,

  parse(cur) {
    const kw = cur.next()!;
    const negated = !!cur.accept('no');
    return { kind: 'fragment', negated, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    return m.negated ? 'fragment no' : 'fragment';
  },

  forFamily(m, family) {
    if (family === 'ipv4') return m;
    return m.negated ? 'always' : 'never';
  },

  constraint(m): Constraint {
    return eq('fragment', m.negated ? 0 : 1);
  },

  iptables: {
    emit(m) {
      return [{ module: null, args: [...(m.negated ? ['!'] : []), '-f'], order: 5 }];
    },
    claims: [{ module: null, options: ['-f'] }],
    fromIptables(_module, options) {
      return options.map((o) => ({ kind: 'fragment' as const, negated: o.negated, span: o.span }));
    },
  },
};
