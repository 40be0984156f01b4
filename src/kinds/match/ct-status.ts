import { type Constraint, and, masked, not, present } from '../../ir/constraint.js';
import { CT_STATUS } from '../../ir/fields.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';
import { readKeywordList } from '../values.js';

/**
 * Conntrack status bits: `ct status assured`, `ct status != seen-reply,confirmed`.
 * iptables: `-m conntrack --ctstatus ASSURED`. The test is "any listed bit is set"
 * (xt_conntrack: !!(status & mask)); `none` is the empty mask, which never matches (and its
 * negation matches every tracked packet). SNAT/DNAT are not status names in iptables: they are
 * `--ctstate` virtual states, written `ct state snat` (or `ct status snat`, the ct-state kind).
 * Packets without a conntrack entry (invalid, untracked) never match, negated or not.
 */
export type CtStatusWord = 'NONE' | 'EXPECTED' | 'SEEN_REPLY' | 'ASSURED' | 'CONFIRMED';

export interface CtStatusMatch {
  readonly kind: 'ct-status';
  readonly negated: boolean;
  readonly statuses: readonly CtStatusWord[];
  readonly span: Span;
}

const ORDER: readonly CtStatusWord[] = ['NONE', 'EXPECTED', 'SEEN_REPLY', 'ASSURED', 'CONFIRMED'];
const NAMES = ['none', 'expected', 'seen-reply', 'assured', 'confirmed'] as const;

const dslName = (s: CtStatusWord) => s.toLowerCase().replace('_', '-');

function sorted(list: readonly CtStatusWord[]): CtStatusWord[] {
  return ORDER.filter((s) => list.includes(s));
}

function mask(list: readonly CtStatusWord[]): number {
  return list.reduce((m, s) => m | (s === 'NONE' ? 0 : CT_STATUS[s]), 0);
}

/** The test after `ct` or `with`: `status [!=] LIST` (the cursor is on `status`). */
export function parseCtStatus(cur: import('../dsl.js').WordCursor, ctx: import('../dsl.js').DslContext, first: Span): CtStatusMatch | undefined {
  cur.next(); // `status`
  const negated = cur.acceptNegation();
  const list = readKeywordList(cur, ctx, 'conntrack status', NAMES);
  if (!list) return undefined;
  const statuses = sorted(list.map((s) => s.toUpperCase().replace('-', '_') as CtStatusWord));
  if (statuses.includes('NONE') && statuses.length > 1) {
    ctx.report(diag('error', 'E-ct-status-none', first, '`none` cannot be combined with other statuses', 'it stands for the empty set of status bits'));
    return undefined;
  }
  return { kind: 'ct-status', negated, statuses, span: clauseSpan(first, cur) };
}

export function printCtStatusTest(m: CtStatusMatch): string {
  return `status ${m.negated ? '!= ' : ''}${sorted(m.statuses).map(dslName).join(',')}`;
}

export const CT_STATUS_IMPORT = {
  build(o: import('../iptables.js').ImportedOption, ctx: import('../iptables.js').ImportContext): CtStatusMatch | undefined {
    const parts = (o.args[0] ?? '').split(',');
    if (parts.some((p) => !ORDER.includes(p as CtStatusWord)) || (parts.includes('NONE') && parts.length > 1)) {
      ctx.report(diag('error', 'E-import-ctstatus', o.span, `\`${o.args[0] ?? ''}\` is not a --ctstatus list`, `names: ${ORDER.join(', ')}`));
      return undefined;
    }
    return { kind: 'ct-status', negated: o.negated, statuses: sorted(parts as CtStatusWord[]), span: o.span };
  },
};

export const ctStatusKind: MatchKind<CtStatusMatch> = {
  kind: 'ct-status',
  doc: 'Conntrack status bits (expected, seen-reply, assured, confirmed): any listed bit set.',
  syntax: ['ct status [!=] expected|seen-reply|assured|confirmed|none[,…]'],
  keywords: ['ct'],
  inFlows: true,

  accepts(cur) {
    // `ct status snat|dnat` belongs to ct-state (virtual states); it accepts first.
    if (cur.peekAtom(1) !== 'status') return false;
    const i = cur.peek(2)?.type === 'neq' ? 3 : 2;
    const w = cur.peekAtom(i);
    return !(w !== undefined && /^(snat|dnat)(,(snat|dnat))*,?$/.test(w) && cur.peek(i + 1)?.type !== 'comma');
  },

  parse(cur, ctx) {
    const kw = cur.next()!;
    return parseCtStatus(cur, ctx, kw.span);
  },

  print(m) {
    return `ct ${printCtStatusTest(m)}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const bits = mask(m.statuses);
    // No bit of the mask set: (status & mask) == 0.
    const noneSet = masked('ctstatus', bits, 0);
    return m.negated ? noneSet : and(present('ctstatus'), not(noneSet));
  },

  iptables: {
    emit(m) {
      return [{ module: 'conntrack', args: [...(m.negated ? ['!'] : []), '--ctstatus', sorted(m.statuses).join(',')], order: CONNTRACK_ORDER['--ctstatus'] }];
    },
    // Imported by ct-state, which reads a whole -m conntrack section (see ct-state.ts).
    claims: [],
    fromIptables() {
      return [];
    },
  },
};

/** The order in which iptables-save prints -m conntrack options (checked on the kernel). */
export const CONNTRACK_ORDER: Readonly<Record<string, number>> = {
  '--ctstate': 0,
  '--ctproto': 1,
  '--ctorigsrc': 2,
  '--ctorigdst': 3,
  '--ctreplsrc': 4,
  '--ctrepldst': 5,
  '--ctorigsrcport': 6,
  '--ctorigdstport': 7,
  '--ctreplsrcport': 8,
  '--ctrepldstport': 9,
  '--ctstatus': 10,
  '--ctexpire': 11,
  '--ctdir': 12,
};
