import { type Constraint, opaque } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { instanceKey, joinRawWords, optionWords, optionsSpan, readXtClause } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/**
 * Any iptables match module nfproof does not model, kept verbatim: `xt match statistic "--mode
 * random --probability 0.5"` is `-m statistic --mode random --probability 0.5`. It is emitted
 * back unchanged, and its meaning is an opaque constraint: the simulator reports it, the analyzer
 * never proves anything through it.
 *
 * The importer gives every `-m` section (or the options of a section) that no kind claims to
 * this kind's fromIptables; `claims` is empty on purpose (see OPAQUE_MATCH_FALLBACK in index.ts).
 */
export interface OpaqueMatch {
  readonly kind: 'opaque';
  /** The `-m` module name. */
  readonly module: string;
  /** Its option words as iptables-save prints them, `!` included, unquoted. */
  readonly args: readonly string[];
  readonly span: Span;
}

const MODULE_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,28}$/;

export const opaqueMatchKind: MatchKind<OpaqueMatch> = {
  kind: 'opaque',
  doc: 'An iptables match module nfproof does not model, kept verbatim; the analyzer treats it as unknown.',
  syntax: ['xt match MODULE ["OPTIONS"]'],
  keywords: ['xt'],
  inFlows: false,

  accepts(cur) {
    return cur.peekAtom(1) === 'match';
  },

  parse(cur, ctx) {
    const xt = readXtClause(cur, ctx, 'match', MODULE_RE, 'xt match statistic "--mode random --probability 0.5"');
    return xt && { kind: 'opaque', module: xt.name, args: xt.args, span: xt.span };
  },

  print(m) {
    return `xt match ${m.module}${m.args.length ? ` ${JSON.stringify(joinRawWords(m.args))}` : ''}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const text = `-m ${m.module}${m.args.length ? ` ${joinRawWords(m.args)}` : ''}`;
    return opaque(instanceKey('xt-match', m, text), `\`${text}\` is not modelled by nfproof (iptables module ${m.module})`);
  },

  iptables: {
    emit(m) {
      return [{ module: m.module, args: m.args, order: 0 }];
    },
    claims: [],
    fromIptables(module, options, ctx) {
      if (module === null) return [];
      return [{ kind: 'opaque', module, args: options.flatMap(optionWords), span: optionsSpan(options, ctx.sectionSpan) }];
    },
  },
};
