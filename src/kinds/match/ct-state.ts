import { type Constraint, inSet } from '../../ir/constraint.js';
import { CT_STATE, type CtStateName } from '../../ir/fields.js';
import { diag } from '../../util/diagnostics.js';
import { complement, maxOf, normalize } from '../../util/intervals.js';
import type { Span } from '../../util/span.js';
import type { MatchKind } from '../kind.js';
import { readKeywordList } from '../values.js';

/**
 * Connection tracking state: `ct state established,related`, `ct state != new`.
 * iptables: `-m conntrack --ctstate` (or the older `-m state --state`, kept on import).
 */
export interface CtStateMatch {
  readonly kind: 'ct-state';
  readonly negated: boolean;
  readonly states: readonly CtStateName[];
  /** Imported from `-m state --state` rather than `-m conntrack --ctstate`. */
  readonly legacyState?: boolean;
  readonly span: Span;
}

const NAMES = ['new', 'established', 'related', 'invalid', 'untracked'] as const;
/** Order in which iptables prints states (xt_state/xt_conntrack print functions). */
const PRINT_ORDER: readonly CtStateName[] = ['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED'];

export const ctStateKind: MatchKind<CtStateMatch> = {
  kind: 'ct-state',
  doc: "The packet's conntrack state: new, established, related, invalid, untracked.",
  syntax: ['ct state [!=] STATE[,STATE…]'],
  keywords: ['ct'],
  inFlows: true,

  accepts(cur) {
    return cur.peekAtom(1) === 'state';
  },

  parse(cur, ctx) {
    const kw = cur.next() as { span: Span };
    cur.next(); // `state`
    const negated = cur.acceptNegation();
    const list = readKeywordList(cur, ctx, 'conntrack state', NAMES);
    if (!list) return undefined;
    const states = [...new Set(list.map((s) => s.toUpperCase() as CtStateName))];
    const end = cur.peek(-1)?.span ?? kw.span;
    return { kind: 'ct-state', negated, states, span: { ...kw.span, end: end.end } };
  },

  print(m) {
    return `ct state ${m.negated ? '!= ' : ''}${m.states.map((s) => s.toLowerCase()).join(',')}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const set = normalize(m.states.map((s) => [BigInt(CT_STATE[s]), BigInt(CT_STATE[s])] as const));
    // The field holds exactly one state bit, so negation is the complement over all values.
    return inSet('ctstate', m.negated ? complement(set, maxOf(8)) : set);
  },

  iptables: {
    emit(m) {
      const states = PRINT_ORDER.filter((s) => m.states.includes(s)).join(',');
      const neg = m.negated ? ['!'] : [];
      return m.legacyState
        ? [{ module: 'state', args: [...neg, '--state', states], order: 0 }]
        : [{ module: 'conntrack', args: [...neg, '--ctstate', states], order: 0 }];
    },
    claims: [
      { module: 'state', options: ['--state'] },
      { module: 'conntrack', options: ['--ctstate'] },
    ],
    fromIptables(module, options, ctx) {
      const out: CtStateMatch[] = [];
      for (const o of options) {
        const parts = (o.args[0] ?? '').split(',');
        const bad = parts.find((p) => !(p in CT_STATE) && p !== 'SNAT' && p !== 'DNAT');
        if (bad !== undefined) {
          ctx.report(diag('error', 'E-import-ctstate', o.span, `unknown conntrack state \`${bad}\``));
          continue;
        }
        if (parts.some((p) => p === 'SNAT' || p === 'DNAT')) {
          ctx.report(diag('error', 'E-import-ctstate', o.span, '--ctstate SNAT/DNAT is a status test; write it as ct status'));
          continue;
        }
        out.push({
          kind: 'ct-state',
          negated: o.negated,
          states: parts as CtStateName[],
          ...(module === 'state' ? { legacyState: true } : {}),
          span: o.span,
        });
      }
      return out;
    },
  },
};
