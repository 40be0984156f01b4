import { type Constraint, and, not, opaque, present } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';
import { TCP_ORDER, requireTcp } from './tcp-flags.js';

/**
 * A TCP option is present: `tcp option mss`, `tcp option != 8` (iptables `--tcp-option N`).
 * nfproof's packets do not carry every TCP option, so the test is an opaque constraint keyed by
 * the option number (the same option on the same packet gives the same answer); a non-TCP packet
 * or a non-first fragment never matches, negated or not (xt_tcp).
 */
export interface TcpOptionMatch {
  readonly kind: 'tcp-option';
  readonly negated: boolean;
  /** TCP option kind number (1-255: iptables refuses 0, the end-of-list marker — checked on the kernel). */
  readonly option: number;
  readonly span: Span;
}

/**
 * Names nfproof prints for well-known option kinds (RFC 9293 and the IANA registry). No `eol`:
 * iptables refuses option 0.
 */
const OPTION_NAMES: Readonly<Record<string, number>> = {
  nop: 1,
  mss: 2,
  wscale: 3,
  'sack-permitted': 4,
  sack: 5,
  timestamp: 8,
  md5sig: 19,
  'user-timeout': 28,
  'tcp-ao': 29,
  mptcp: 30,
  fastopen: 34,
};
const ALIASES: Readonly<Record<string, number>> = { maxseg: 2, window: 3, 'sack-perm': 4 };

function optionName(n: number): string {
  return Object.entries(OPTION_NAMES).find(([, v]) => v === n)?.[0] ?? String(n);
}

export const tcpOptionKind: MatchKind<TcpOptionMatch> = {
  kind: 'tcp-option',
  doc: 'A TCP option of the given kind is present in the header (iptables --tcp-option).',
  syntax: ['option [!=] NAME|NUMBER   (after tcp; mss, wscale, sack-permitted, sack, timestamp, … or 1-255)'],
  keywords: ['option'],
  inFlows: false,

  accepts(_cur, ctx) {
    // `dccp option N` is the sctp-dccp kind's.
    for (let i = ctx.previous.length - 1; i >= 0; i--) {
      const p = ctx.previous[i];
      if (p.kind === 'proto' && !p.negated && p.protos.length === 1) return p.protos[0] !== 33;
    }
    return true;
  },

  parse(cur, ctx) {
    const kw = cur.next()!;
    const negated = cur.acceptNegation();
    const w = cur.next();
    const text = w?.type === 'atom' ? w.text.toLowerCase() : '';
    const n = OPTION_NAMES[text] ?? ALIASES[text] ?? (/^\d{1,3}$/.test(text) && Number(text) >= 1 && Number(text) <= 255 ? Number(text) : undefined);
    if (n === undefined) {
      ctx.report(diag('error', 'E-tcp-option', w?.span ?? cur.endSpan, '`option` needs a TCP option name or number', `names: ${Object.keys(OPTION_NAMES).join(', ')}; or 1-255 (iptables refuses 0, the end-of-list marker)`));
      return undefined;
    }
    return { kind: 'tcp-option', negated, option: n, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    return `option ${m.negated ? '!= ' : ''}${optionName(m.option)}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const has = opaque(`tcp-option ${m.option}`, `TCP option ${optionName(m.option)} (${m.option}) is not part of nfproof's packet model`);
    return and(present('tcpflags'), m.negated ? not(has) : has);
  },

  validate(m, rule, report) {
    requireTcp(rule, m.span, 'option', report);
  },

  iptables: {
    emit(m) {
      return [{ module: 'tcp', args: [...(m.negated ? ['!'] : []), '--tcp-option', String(m.option)], order: TCP_ORDER['--tcp-option'] }];
    },
    claims: [{ module: 'tcp', options: ['--tcp-option'] }],
    fromIptables(_module, options, ctx) {
      const out: TcpOptionMatch[] = [];
      for (const o of options) {
        const t = o.args[0] ?? '';
        if (!/^\d{1,3}$/.test(t) || Number(t) > 255) {
          ctx.report(diag('error', 'E-import-option', o.span, `\`--tcp-option ${t}\` is not an option number`));
          continue;
        }
        out.push({ kind: 'tcp-option', negated: o.negated, option: Number(t), span: o.span });
      }
      return out;
    },
  },
};
