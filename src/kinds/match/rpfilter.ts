import { type Constraint, not, opaque } from '../../ir/constraint.js';
import type { Hook } from '../../ir/netfilter.js';
import type { Span } from '../../util/span.js';
import { clauseSpan, optionsSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/**
 * Reverse-path filter: `rpfilter` matches packets whose source is reachable back through the
 * interface they came in on; `rpfilter fail` those that are not (iptables `-m rpfilter
 * [--loose] [--validmark] [--accept-local] [--invert]`). raw and mangle PREROUTING only. The
 * routing lookup is not part of nfproof's constraints: opaque (one key per option set, since
 * the answer depends only on the packet and the routes).
 */
export interface RpfilterMatch {
  readonly kind: 'rpfilter';
  readonly fail: boolean;
  readonly loose: boolean;
  readonly validmark: boolean;
  readonly acceptLocal: boolean;
  readonly span: Span;
}

const FLAGS = ['fail', 'loose', 'validmark', 'accept-local'] as const;

export const rpfilterKind: MatchKind<RpfilterMatch> = {
  kind: 'rpfilter',
  doc: "Reverse-path check: the source address routes back through the packet's input interface (or, with fail, it does not).",
  syntax: ['rpfilter [fail] [loose] [validmark] [accept-local]'],
  keywords: ['rpfilter'],
  inFlows: false,

  parse(cur) {
    const kw = cur.next()!;
    const seen = new Set<string>();
    for (let w = cur.peekAtom(); w !== undefined && (FLAGS as readonly string[]).includes(w); w = cur.peekAtom()) {
      seen.add(w);
      cur.next();
    }
    return { kind: 'rpfilter', fail: seen.has('fail'), loose: seen.has('loose'), validmark: seen.has('validmark'), acceptLocal: seen.has('accept-local'), span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    return ['rpfilter', ...(m.fail ? ['fail'] : []), ...(m.loose ? ['loose'] : []), ...(m.validmark ? ['validmark'] : []), ...(m.acceptLocal ? ['accept-local'] : [])].join(' ');
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const opts = [m.loose && 'loose', m.validmark && 'validmark', m.acceptLocal && 'accept-local'].filter(Boolean).join(' ');
    const pass = opaque(`rpfilter ${opts}`, 'reverse-path route lookup (rpfilter) is not modelled');
    return m.fail ? not(pass) : pass;
  },

  hooks(): readonly Hook[] {
    return ['PREROUTING'];
  },

  validate(m, rule, report) {
    if (rule.table !== 'raw' && rule.table !== 'mangle') report('E-rpfilter-table', m.span, '`rpfilter` works only in the raw and mangle tables', 'move the rule to table raw, chain prerouting');
  },

  iptables: {
    emit(m) {
      const args = [...(m.loose ? ['--loose'] : []), ...(m.validmark ? ['--validmark'] : []), ...(m.acceptLocal ? ['--accept-local'] : []), ...(m.fail ? ['--invert'] : [])];
      return [{ module: 'rpfilter', args, order: 0 }];
    },
    claims: [{ module: 'rpfilter', options: ['--loose', '--validmark', '--accept-local', '--invert'] }],
    fromIptables(_module, options, ctx) {
      const has = (n: string) => options.some((o) => o.name === n);
      return [{ kind: 'rpfilter', fail: has('--invert'), loose: has('--loose'), validmark: has('--validmark'), acceptLocal: has('--accept-local'), span: optionsSpan(options, ctx.sectionSpan) }];
    },
  },
};
