import { type Constraint, and, masked, not, present } from '../../ir/constraint.js';
import { PROTO, TCP_FLAG } from '../../ir/fields.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import type { DslContext, WordCursor } from '../dsl.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind, RuleView } from '../kind.js';

/**
 * TCP flags: `tcp flags syn / syn,ack,rst,fin` — of the flags after `/` (the mask), exactly
 * those before it are set: (flags & MASK) == FLAGS, as iptables' `--tcp-flags MASK COMP`.
 * `--syn` is `flags syn / fin,syn,rst,ack`. iptables names only FIN SYN RST PSH ACK URG (ALL is
 * those six), so ECE and CWR cannot be tested. Non-first fragments never match (xt_tcp).
 * Needs `tcp` in the rule.
 */
export interface TcpFlagsMatch {
  readonly kind: 'tcp-flags';
  readonly negated: boolean;
  /** Bits that must be set, within mask. */
  readonly flags: number;
  readonly mask: number;
  readonly span: Span;
}

/** iptables' flag names in the order it prints them. */
const FLAG_ORDER = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG'] as const;
const ALL = 0x3f;

export function flagList(bits: number): string {
  if (bits === 0) return 'NONE';
  return FLAG_ORDER.filter((f) => bits & TCP_FLAG[f]).join(',');
}

/** Parses `SYN,ACK`, `ALL`, `NONE` (iptables) or `syn,ack`, `all`, `none` (DSL). */
export function parseFlagList(text: string): number | undefined {
  let bits = 0;
  for (const part of text.split(',')) {
    const p = part.toUpperCase();
    if (p === 'ALL') bits |= ALL;
    else if (p === 'NONE') continue;
    else if ((FLAG_ORDER as readonly string[]).includes(p)) bits |= TCP_FLAG[p as (typeof FLAG_ORDER)[number]];
    else return undefined;
  }
  return bits;
}

const dsl = (bits: number) => flagList(bits).toLowerCase();

/** Gathers `syn / syn,ack`, `syn/syn,ack`, `syn,ack / all` however the lexer split it. */
function readFlagText(cur: WordCursor): string {
  let text = '';
  for (;;) {
    const w = cur.peek();
    if (w?.type === 'comma') {
      if (cur.peek(1)?.type !== 'atom') break;
      cur.next();
      text += ',';
      continue;
    }
    if (w?.type !== 'atom' || !/^[A-Za-z/,]+$/.test(w.text)) break;
    const continues = text === '' || /[,/]$/.test(text) || /^[/,]/.test(w.text);
    if (!continues) break;
    if (w.text.split(/[/,]/).some((p) => p !== '' && parseFlagList(p) === undefined)) break;
    cur.next();
    text += w.text;
  }
  return text;
}

export function parseTcpFlags(cur: WordCursor, ctx: DslContext): TcpFlagsMatch | undefined {
  const kw = cur.next()!;
  const negated = cur.acceptNegation();
  const start = cur.here();
  const text = readFlagText(cur);
  const m = /^([a-zA-Z,]+)\/([a-zA-Z,]+)$/.exec(text);
  const flags = m ? parseFlagList(m[1]) : undefined;
  const mask = m ? parseFlagList(m[2]) : undefined;
  if (flags === undefined || mask === undefined) {
    ctx.report(
      diag('error', 'E-tcp-flags', start, `\`${text || 'flags'}\` is not FLAGS / MASK`, 'write the flags that must be set, `/`, then the flags looked at: flags syn / syn,ack,rst,fin (names: fin syn rst psh ack urg all none)'),
    );
    return undefined;
  }
  if (mask === 0) {
    ctx.report(diag('error', 'E-tcp-flags', start, 'the mask after `/` is empty: the test would look at no flag', 'list the flags to look at after `/`'));
    return undefined;
  }
  return { kind: 'tcp-flags', negated, flags, mask, span: clauseSpan(kw.span, cur) };
}

export function requireTcp(rule: RuleView, span: Span, what: string, report: (code: string, span: Span, message: string, hint?: string) => void): void {
  const tcp = rule.matches.some((x) => x.kind === 'proto' && !x.negated && x.protos.length === 1 && x.protos[0] === PROTO.tcp);
  if (!tcp) report('E-needs-tcp', span, `\`${what}\` needs the rule to match tcp`, 'add `tcp` before it (iptables refuses TCP options without -p tcp)');
}

export const tcpFlagsKind: MatchKind<TcpFlagsMatch> = {
  kind: 'tcp-flags',
  doc: 'TCP flags: of the flags after `/`, exactly those before it are set (iptables --tcp-flags).',
  syntax: ['flags [!=] FLAGS / MASK   (after tcp; FLAGS, MASK: fin,syn,rst,psh,ack,urg | all | none)'],
  keywords: ['flags'],
  inFlows: true,

  parse: parseTcpFlags,

  print(m) {
    return `flags ${m.negated ? '!= ' : ''}${dsl(m.flags)} / ${dsl(m.mask)}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const test = masked('tcpflags', m.mask, m.flags);
    return m.negated ? and(present('tcpflags'), not(test)) : test;
  },

  validate(m, rule, report) {
    requireTcp(rule, m.span, 'flags', report);
    if ((m.flags & ~m.mask) !== 0) {
      report('W-tcp-flags-never', m.span, 'a flag before `/` is not in the mask after it: no packet can match', `add ${dsl(m.flags & ~m.mask)} to the mask`);
    }
  },

  iptables: {
    emit(m) {
      return [{ module: 'tcp', args: [...(m.negated ? ['!'] : []), '--tcp-flags', flagList(m.mask), flagList(m.flags)], order: TCP_ORDER['--tcp-flags'] }];
    },
    claims: [{ module: 'tcp', options: ['--tcp-flags', '--syn'] }],
    fromIptables(_module, options, ctx) {
      const out: TcpFlagsMatch[] = [];
      for (const o of options) {
        if (o.name === '--syn') {
          out.push({ kind: 'tcp-flags', negated: o.negated, flags: TCP_FLAG.SYN, mask: TCP_FLAG.FIN | TCP_FLAG.SYN | TCP_FLAG.RST | TCP_FLAG.ACK, span: o.span });
          continue;
        }
        const mask = parseFlagList(o.args[0] ?? '');
        const flags = parseFlagList(o.args[1] ?? '');
        if (mask === undefined || flags === undefined) {
          ctx.report(diag('error', 'E-import-option', o.span, `\`--tcp-flags ${o.args.join(' ')}\` is not MASK COMP`));
          continue;
        }
        out.push({ kind: 'tcp-flags', negated: o.negated, flags, mask, span: o.span });
      }
      return out;
    },
  },
};

/** The order in which iptables-save prints -m tcp options (checked on the kernel). */
export const TCP_ORDER: Readonly<Record<string, number>> = { '--sport': 0, '--dport': 1, '--tcp-option': 2, '--tcp-flags': 3 };
