import { type Constraint, inSet, not, opaque, present } from '../../ir/constraint.js';
import { CT_HELPER } from '../../ir/fields.js';
import { diag } from '../../util/diagnostics.js';
import { normalize } from '../../util/intervals.js';
import { quoteIptablesString } from '../../util/iptables-quote.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/**
 * Packets of connections expected by a helper: `ct helper "ftp"` (iptables `-m helper
 * --helper ftp`), e.g. the data connections of an FTP session. The kernel tests the helper of
 * the connection's *master* (xt_helper.c), comparing the helper's name with the start of the
 * rule's (`ftp-21` matches the ftp helper); `""` matches any helper. Negated, it also matches
 * packets of connections nobody expected.
 */
export interface HelperMatch {
  readonly kind: 'helper';
  readonly negated: boolean;
  readonly name: string;
  readonly span: Span;
}

export const helperKind: MatchKind<HelperMatch> = {
  kind: 'helper',
  doc: "The helper (ftp, sip, tftp …) that expected this packet's connection (RELATED data connections).",
  syntax: ['ct helper [!=] "NAME"'],
  keywords: ['ct'],
  inFlows: true,

  accepts(cur) {
    return cur.peekAtom(1) === 'helper' && cur.peekAtom(2) !== 'set';
  },

  parse(cur, ctx) {
    const kw = cur.next()!;
    cur.next(); // `helper`
    const negated = cur.acceptNegation();
    const w = cur.next();
    const name = w?.type === 'string' ? w.value : w?.type === 'atom' ? w.text : undefined;
    if (name === undefined || name.length > 29 || /\s/.test(name)) {
      ctx.report(diag('error', 'E-helper', w?.span ?? cur.endSpan, '`ct helper` needs a helper name', 'e.g. ct helper "ftp"'));
      return undefined;
    }
    return { kind: 'helper', negated, name, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    return `ct helper ${m.negated ? '!= ' : ''}${JSON.stringify(m.name)}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    let c: Constraint;
    if (m.name === '') c = present('cthelper');
    else {
      const ids = Object.entries(CT_HELPER)
        .filter(([h]) => m.name.startsWith(h))
        .map(([, id]) => BigInt(id));
      c = ids.length
        ? inSet('cthelper', normalize(ids.map((i) => [i, i] as const)))
        : opaque(`helper ${m.name}`, `conntrack helper \`${m.name}\` is not one nfproof knows`);
    }
    return m.negated ? not(c) : c;
  },

  iptables: {
    emit(m) {
      return [{ module: 'helper', args: [...(m.negated ? ['!'] : []), '--helper', quoteIptablesString(m.name)], order: 0 }];
    },
    claims: [{ module: 'helper', options: ['--helper'] }],
    fromIptables(_module, options) {
      return options.map((o) => ({ kind: 'helper' as const, negated: o.negated, name: o.args[0] ?? '', span: o.span }));
    },
  },
};
