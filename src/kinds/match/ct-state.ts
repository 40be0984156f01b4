import { type Constraint, inSet, masked, not, or } from '../../ir/constraint.js';
import { CT_STATE, CT_STATUS, type CtStateName } from '../../ir/fields.js';
import { diag } from '../../util/diagnostics.js';
import { normalize } from '../../util/intervals.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';
import { readKeywordList } from '../values.js';

/**
 * Connection tracking state: `ct state established,related`, `ct state != new`.
 * iptables: `-m conntrack --ctstate`; `state …` is the same test written with the older
 * `-m state --state` (kept apart so an imported ruleset comes back as it was).
 *
 * Besides the real states, `--ctstate` knows two "virtual states" (xt_conntrack.c): SNAT and
 * DNAT, set when the connection's status has IPS_SRC_NAT / IPS_DST_NAT, i.e. when a NAT
 * mapping changed its source / destination. A packet matches when any listed state applies;
 * `ct status snat` is accepted as another spelling of `ct state snat`.
 */
export type CtStateWord = CtStateName | 'SNAT' | 'DNAT';

export interface CtStateMatch {
  readonly kind: 'ct-state';
  readonly negated: boolean;
  readonly states: readonly CtStateWord[];
  /** Written `state …` (`-m state --state`) rather than `ct state …` (`-m conntrack --ctstate`). */
  readonly legacyState?: boolean;
  readonly span: Span;
}

const CT_NAMES = ['new', 'established', 'related', 'invalid', 'untracked', 'snat', 'dnat'] as const;
const STATE_NAMES = ['new', 'established', 'related', 'invalid', 'untracked'] as const;
/** Order in which iptables-save prints states (checked on the kernel). */
const PRINT_ORDER: readonly CtStateWord[] = ['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED', 'SNAT', 'DNAT'];

function isNatWord(w: string | undefined): boolean {
  return w !== undefined && /^(snat|dnat)(,(snat|dnat))*,?$/.test(w);
}

function sorted(states: readonly CtStateWord[]): CtStateWord[] {
  return PRINT_ORDER.filter((s) => states.includes(s));
}

export const ctStateKind: MatchKind<CtStateMatch> = {
  kind: 'ct-state',
  doc: "The packet's conntrack state (new, established, related, invalid, untracked) or NAT virtual state (snat, dnat).",
  syntax: ['ct state [!=] STATE[,STATE…]', 'state [!=] STATE[,STATE…]   (iptables -m state)', 'ct status snat|dnat   (same as ct state snat|dnat)'],
  keywords: ['ct', 'state'],
  inFlows: true,

  accepts(cur) {
    if (cur.peekAtom() === 'state') return true;
    const sub = cur.peekAtom(1);
    if (sub === 'state') return true;
    // `ct status snat` / `ct status != dnat`: the virtual states.
    if (sub !== 'status') return false;
    const third = cur.peek(2)?.type === 'neq' ? 3 : 2;
    return isNatWord(cur.peekAtom(third)) && cur.peek(third + 1)?.type !== 'comma';
  },

  parse(cur, ctx) {
    const kw = cur.next() as { text: string; span: Span };
    const legacy = kw.text === 'state';
    if (!legacy) cur.next(); // `state` / `status`
    const negated = cur.acceptNegation();
    const list = readKeywordList(cur, ctx, legacy ? 'state (-m state)' : 'conntrack state', legacy ? STATE_NAMES : CT_NAMES);
    if (!list) return undefined;
    const states = sorted(list.map((s) => s.toUpperCase() as CtStateWord));
    return { kind: 'ct-state', negated, states, ...(legacy ? { legacyState: true } : {}), span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    return `${m.legacyState ? 'state' : 'ct state'} ${m.negated ? '!= ' : ''}${sorted(m.states)
      .map((s) => s.toLowerCase())
      .join(',')}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    // xt_conntrack: the packet's state bit, plus SNAT/DNAT bits from the status, tested against
    // the listed states; `!` inverts the whole test. ctstate holds exactly one state bit.
    const bits = m.states.filter((s): s is CtStateName => s in CT_STATE).map((s) => BigInt(CT_STATE[s]));
    const parts: Constraint[] = [];
    if (bits.length) parts.push(inSet('ctstate', normalize(bits.map((b) => [b, b] as const))));
    // A status bit is set: (status & bit) == bit, false without a conntrack entry (untracked).
    if (m.states.includes('SNAT')) parts.push(masked('ctstatus', CT_STATUS.SRC_NAT, CT_STATUS.SRC_NAT));
    if (m.states.includes('DNAT')) parts.push(masked('ctstatus', CT_STATUS.DST_NAT, CT_STATUS.DST_NAT));
    const c = or(...parts);
    return m.negated ? not(c) : c;
  },

  iptables: {
    emit(m) {
      const states = sorted(m.states).join(',');
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
        const parts = (o.args[0] ?? '').split(',').filter((p) => p !== '');
        const allowed = module === 'state' ? ['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED'] : PRINT_ORDER;
        const bad = parts.find((p) => !allowed.includes(p as CtStateWord));
        if (bad !== undefined || parts.length === 0) {
          ctx.report(diag('error', 'E-import-ctstate', o.span, `unknown conntrack state \`${bad ?? ''}\``, `one of ${allowed.join(', ')}`));
          continue;
        }
        out.push({
          kind: 'ct-state',
          negated: o.negated,
          states: sorted(parts as CtStateWord[]),
          ...(module === 'state' ? { legacyState: true } : {}),
          span: o.span,
        });
      }
      return out;
    },
  },
};
