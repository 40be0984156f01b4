import { type Constraint, inSet } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import { complement, maxOf } from '../../util/intervals.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/**
 * Link-layer packet type: `pkttype broadcast`, `pkttype != multicast` (iptables `-m pkttype
 * --pkt-type`). unicast = addressed to this host, otherhost = to another host (promiscuous
 * mode). Looped-back broadcast/multicast copies count as broadcast/multicast (xt_pkttype.c).
 */
export interface PktTypeMatch {
  readonly kind: 'pkttype';
  readonly negated: boolean;
  readonly type: PktType;
  readonly span: Span;
}

export type PktType = 'unicast' | 'broadcast' | 'multicast' | 'otherhost';
/** PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST. */
const VALUE: Readonly<Record<PktType, number>> = { unicast: 0, broadcast: 1, multicast: 2, otherhost: 3 };
const NAMES = Object.keys(VALUE) as PktType[];

export const pkttypeKind: MatchKind<PktTypeMatch> = {
  kind: 'pkttype',
  doc: 'Link-layer packet type: unicast (to this host), broadcast, multicast or otherhost.',
  syntax: ['pkttype [!=] unicast|broadcast|multicast|otherhost'],
  keywords: ['pkttype'],
  inFlows: true,

  parse(cur, ctx) {
    const kw = cur.next()!;
    const negated = cur.acceptNegation();
    const w = cur.next();
    const t = w?.type === 'atom' ? (w.text === 'host' ? 'unicast' : w.text) : '';
    if (!(NAMES as string[]).includes(t)) {
      ctx.report(diag('error', 'E-pkttype', w?.span ?? cur.endSpan, '`pkttype` needs a packet type', NAMES.join(', ')));
      return undefined;
    }
    return { kind: 'pkttype', negated, type: t as PktType, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    return `pkttype ${m.negated ? '!= ' : ''}${m.type}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const v = BigInt(VALUE[m.type]);
    return inSet('pkttype', m.negated ? complement([[v, v]], maxOf(2)) : [[v, v]]);
  },

  iptables: {
    emit(m) {
      return [{ module: 'pkttype', args: [...(m.negated ? ['!'] : []), '--pkt-type', m.type], order: 0 }];
    },
    claims: [{ module: 'pkttype', options: ['--pkt-type'] }],
    fromIptables(_module, options, ctx) {
      const out: PktTypeMatch[] = [];
      for (const o of options) {
        const t = o.args[0] === 'host' ? 'unicast' : (o.args[0] ?? '');
        if (!(NAMES as string[]).includes(t)) ctx.report(diag('error', 'E-import-option', o.span, `\`--pkt-type ${o.args[0] ?? ''}\` is not supported`));
        else out.push({ kind: 'pkttype', negated: o.negated, type: t as PktType, span: o.span });
      }
      return out;
    },
  },
};
