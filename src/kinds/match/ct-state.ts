import { type Constraint, and, inSet, masked, not, or } from '../../ir/constraint.js';
import { CT_STATE, CT_STATUS, type CtStateName } from '../../ir/fields.js';
import { diag } from '../../util/diagnostics.js';
import { normalize } from '../../util/intervals.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { DslContext, WordCursor } from '../dsl.js';
import type { ImportedOption } from '../iptables.js';
import type { MatchKind } from '../kind.js';
import { readKeywordList } from '../values.js';
import { buildCtDirection, type CtDirectionMatch, ctDirectionKind, parseCtDirection } from './ct-direction.js';
import { CT_STATUS_IMPORT, type CtStatusMatch, ctStatusKind, parseCtStatus, printCtStatusTest } from './ct-status.js';
import { buildCtTuple, type CtTupleMatch, ctTupleKind, isCtTupleOption, parseCtTuple, printCtTupleTest } from './ct-tuple.js';

/**
 * Connection tracking state: `ct state established,related`, `ct state != new`.
 * iptables: `-m conntrack --ctstate`; `state …` is the same test written with the older
 * `-m state --state` (kept apart so an imported ruleset comes back as it was).
 *
 * Besides the real states, `--ctstate` knows two "virtual states" (xt_conntrack.c): SNAT and
 * DNAT, set when the connection's status has IPS_SRC_NAT / IPS_DST_NAT, i.e. when a NAT
 * mapping changed its source / destination. A packet matches when any listed state applies;
 * `ct status snat` is accepted as another spelling of `ct state snat`.
 *
 * `ct state new with proto tcp with original dport 67` is ONE `-m conntrack` match with several
 * tests (`--ctstate NEW --ctproto 6 --ctorigdstport 67`), as iptables-save dumps often have.
 * It is not quite the same as separate `ct …` clauses: when the packet has no conntrack entry
 * (invalid, untracked) and the state test passes, the kernel skips the other tests of that
 * match and matches (xt_conntrack.c), where a separate clause would not match.
 */
export type CtJoinedTest = CtStatusMatch | CtDirectionMatch | CtTupleMatch;

export type CtStateWord = CtStateName | 'SNAT' | 'DNAT';

export interface CtStateMatch {
  readonly kind: 'ct-state';
  readonly negated: boolean;
  readonly states: readonly CtStateWord[];
  /** Written `state …` (`-m state --state`) rather than `ct state …` (`-m conntrack --ctstate`). */
  readonly legacyState?: boolean;
  /** Further tests of the same `-m conntrack` match (`with …`), in iptables-save order. */
  readonly also?: readonly CtJoinedTest[];
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
    const also: CtJoinedTest[] = [];
    while (!legacy && cur.peekAtom() === 'with') {
      const t = parseJoined(cur, ctx);
      if (!t) return undefined;
      if ([...also, t].filter((x) => optionOf(x) === optionOf(t)).length > 1) {
        ctx.report(diag('error', 'E-ct-duplicate', t.span, `one conntrack match can test ${optionOf(t)} only once`, 'write a separate `ct …` clause for the second test'));
        return undefined;
      }
      also.push(t);
    }
    return {
      kind: 'ct-state',
      negated,
      states,
      ...(legacy ? { legacyState: true } : {}),
      ...(also.length ? { also: sortJoined(also) } : {}),
      span: clauseSpan(kw.span, cur),
    };
  },

  print(m) {
    const base = `${m.legacyState ? 'state' : 'ct state'} ${m.negated ? '!= ' : ''}${sorted(m.states)
      .map((s) => s.toLowerCase())
      .join(',')}`;
    return [base, ...(m.also ?? []).map((t) => `with ${printJoined(t)}`)].join(' ');
  },

  forFamily(m, family) {
    if (!m.also) return m;
    // A joined address of the other family can never match: the whole match cannot.
    const parts = m.also.map((t) => (t.kind === 'ct-tuple' ? ctTupleKind.forFamily(t, family) : t));
    if (parts.includes('never')) return 'never';
    // A test that holds for every connection of this family is left out of the match here.
    const kept = parts.filter((p): p is CtJoinedTest => p !== 'always');
    if (kept.length === m.also.length) return m;
    const { also: _dropped, ...rest } = m;
    return kept.length ? { ...rest, also: kept } : rest;
  },

  constraint(m, family): Constraint {
    // xt_conntrack: the packet's state bit, plus SNAT/DNAT bits from the status, tested against
    // the listed states; `!` inverts the whole test. ctstate holds exactly one state bit.
    const bits = m.states.filter((s): s is CtStateName => s in CT_STATE).map((s) => BigInt(CT_STATE[s]));
    const parts: Constraint[] = [];
    if (bits.length) parts.push(inSet('ctstate', normalize(bits.map((b) => [b, b] as const))));
    // A status bit is set: (status & bit) == bit, false without a conntrack entry (untracked).
    if (m.states.includes('SNAT')) parts.push(masked('ctstatus', CT_STATUS.SRC_NAT, CT_STATUS.SRC_NAT));
    if (m.states.includes('DNAT')) parts.push(masked('ctstatus', CT_STATUS.DST_NAT, CT_STATUS.DST_NAT));
    const c = or(...parts);
    const stateTest = m.negated ? not(c) : c;
    if (!m.also?.length) return stateTest;
    // The other tests apply only when the packet has a conntrack entry (not INVALID/UNTRACKED).
    const noEntry = inSet('ctstate', normalize([BigInt(CT_STATE.INVALID), BigInt(CT_STATE.UNTRACKED)].map((b) => [b, b] as const)));
    return and(stateTest, or(noEntry, and(...m.also.map((t) => joinedConstraint(t, family)))));
  },

  evaluate(m, c, ctx) {
    // The only opaque part a joined test has is --ctexpire: the ct-tuple kind decides it.
    for (const t of m.also ?? []) {
      if (t.kind !== 'ct-tuple' || t.field !== 'expire') continue;
      const own = ctTupleKind.constraint(t, 'ipv4');
      if (own.op === 'opaque' && own.key === c.key) return ctTupleKind.evaluate?.(t, c, ctx);
    }
    return undefined;
  },

  iptables: {
    emit(m, ctx) {
      const states = sorted(m.states).join(',');
      const neg = m.negated ? ['!'] : [];
      return m.legacyState
        ? [{ module: 'state', args: [...neg, '--state', states], order: 0 }]
        : [{ module: 'conntrack', args: [...neg, '--ctstate', states], order: 0 }, ...(m.also ?? []).flatMap((t) => joinedEmit(t, ctx))];
    },
    // The whole -m conntrack section is read here: its tests become one ct-state match with
    // `also` when --ctstate is present (one kernel match), else one node per test.
    claims: [
      { module: 'state', options: ['--state'] },
      { module: 'conntrack', options: ['--ctstate', '--ctstatus', '--ctdir', '--ctproto', '--ctexpire', '--ctorigsrc', '--ctorigdst', '--ctreplsrc', '--ctrepldst', '--ctorigsrcport', '--ctorigdstport', '--ctreplsrcport', '--ctrepldstport'] },
    ],
    fromIptables(module, allOptions, ctx) {
      const out: (CtStateMatch | CtJoinedTest)[] = [];
      const others: CtJoinedTest[] = [];
      for (const o of allOptions.filter((x) => x.name !== '--ctstate' && x.name !== '--state')) {
        const t = buildJoined(o, ctx);
        if (t) others.push(t);
      }
      const options = allOptions.filter((x) => x.name === '--ctstate' || x.name === '--state');
      if (options.length === 0) return others as never[];
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
          ...(others.length ? { also: sortJoined(others) } : {}),
          span: o.span,
        });
      }
      // The registry's types cannot say "this kind also builds its sibling kinds' nodes".
      return out as never[];
    },
  },
};

function parseJoined(cur: WordCursor, ctx: DslContext): CtJoinedTest | undefined {
  const w = cur.next() as { span: Span }; // `with`
  switch (cur.peekAtom()) {
    case 'status':
      return parseCtStatus(cur, ctx, w.span);
    case 'direction':
      return parseCtDirection(cur, ctx, w.span);
    case 'proto':
    case 'original':
    case 'reply':
    case 'expire':
      return parseCtTuple(cur, ctx, w.span);
    default:
      ctx.report(diag('error', 'E-ct-with', cur.here(), '`with` needs another conntrack test', 'status …, direction …, proto …, original|reply saddr|daddr|sport|dport …, expire …'));
      return undefined;
  }
}

function printJoined(t: CtJoinedTest): string {
  switch (t.kind) {
    case 'ct-status':
      return printCtStatusTest(t);
    case 'ct-direction':
      return `direction ${t.dir}`;
    case 'ct-tuple':
      return printCtTupleTest(t);
  }
}

function joinedEmit(t: CtJoinedTest, ctx: import('../iptables.js').EmitContext) {
  switch (t.kind) {
    case 'ct-status':
      return ctStatusKind.iptables.emit(t, ctx);
    case 'ct-direction':
      return ctDirectionKind.iptables.emit(t, ctx);
    case 'ct-tuple':
      return ctTupleKind.iptables.emit(t, ctx);
  }
}

function joinedConstraint(t: CtJoinedTest, family: import('../../util/ip.js').Family): Constraint {
  switch (t.kind) {
    case 'ct-status':
      return ctStatusKind.constraint(t, family);
    case 'ct-direction':
      return ctDirectionKind.constraint(t, family);
    case 'ct-tuple':
      return ctTupleKind.constraint(t, family);
  }
}

function optionOf(t: CtJoinedTest): string {
  const f = joinedEmit(t, { family: 'ipv4' })[0];
  return f.args.find((a) => a !== '!') ?? '';
}

function orderOf(t: CtJoinedTest): number {
  return joinedEmit(t, { family: t.kind === 'ct-tuple' && 'family' in t ? t.family : 'ipv4' })[0].order;
}

function sortJoined(list: readonly CtJoinedTest[]): CtJoinedTest[] {
  return [...list].sort((a, b) => orderOf(a) - orderOf(b));
}

function buildJoined(o: ImportedOption, ctx: import('../iptables.js').ImportContext): CtJoinedTest | undefined {
  if (o.name === '--ctstatus') return CT_STATUS_IMPORT.build(o, ctx);
  if (o.name === '--ctdir') return buildCtDirection(o, ctx);
  if (isCtTupleOption(o.name)) return buildCtTuple(o, ctx);
  ctx.report(diag('error', 'E-import-option', o.span, `-m conntrack option ${o.name} is not known`));
  return undefined;
}
