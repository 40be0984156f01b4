import { type Constraint, and, not, opaque, present } from '../../ir/constraint.js';
import { PROTO } from '../../ir/fields.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import type { DslContext, WordCursor } from '../dsl.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind, RuleView } from '../kind.js';

/**
 * SCTP chunk types and DCCP packet types / options, the parts of `-m sctp` and `-m dccp` beyond
 * ports (ports are the port kind's):
 *
 *   sctp chunks [!=] any|all|only CHUNK[:FLAGS][,…]    --chunk-types any DATA,INIT
 *   dccp types [!=] TYPE[,…]                           --dccp-types REQUEST,RESPONSE
 *   dccp option [!=] N                                 --dccp-option N
 *
 * Chunk and packet types are not in nfproof's packet model: opaque constraints (keyed by the
 * test, since the answer depends only on the packet). Like ports, a non-first fragment never
 * matches.
 */
export type SctpDccpMatch =
  | { readonly kind: 'sctp-dccp'; readonly test: 'chunks'; readonly negated: boolean; readonly mode: 'any' | 'all' | 'only'; readonly chunks: readonly string[]; readonly span: Span }
  | { readonly kind: 'sctp-dccp'; readonly test: 'dccp-types'; readonly negated: boolean; readonly types: readonly string[]; readonly span: Span }
  | { readonly kind: 'sctp-dccp'; readonly test: 'dccp-option'; readonly negated: boolean; readonly option: number; readonly span: Span };

/** SCTP chunk type names in type-number order (iptables prints them so). */
const CHUNKS = ['DATA', 'INIT', 'INIT_ACK', 'SACK', 'HEARTBEAT', 'HEARTBEAT_ACK', 'ABORT', 'SHUTDOWN', 'SHUTDOWN_ACK', 'ERROR', 'COOKIE_ECHO', 'COOKIE_ACK', 'ECN_ECNE', 'ECN_CWR', 'SHUTDOWN_COMPLETE', 'I_DATA', 'ASCONF', 'ASCONF_ACK', 'FORWARD_TSN', 'I_FORWARD_TSN'];
const DCCP_TYPES = ['REQUEST', 'RESPONSE', 'DATA', 'ACK', 'DATAACK', 'CLOSEREQ', 'CLOSE', 'RESET', 'SYNC', 'SYNCACK', 'INVALID'];

function chunkOk(c: string): boolean {
  const [name, flags] = c.split(':');
  return CHUNKS.includes(name.toUpperCase()) && (flags === undefined || /^[A-Za-z]{1,3}$/.test(flags));
}

function sortChunks(list: readonly string[]): string[] {
  const norm = list.map((c) => {
    const [n, f] = c.split(':');
    return f === undefined ? n.toUpperCase() : `${n.toUpperCase()}:${f}`;
  });
  return norm.sort((a, b) => CHUNKS.indexOf(a.split(':')[0]) - CHUNKS.indexOf(b.split(':')[0]));
}

function readCommaList(cur: WordCursor): string[] {
  const w = cur.next();
  const out = w?.type === 'atom' ? w.text.split(',') : [];
  while (cur.peek()?.type === 'comma' && cur.peek(1)?.type === 'atom') {
    cur.next();
    out.push(...(cur.next() as { text: string }).text.split(','));
  }
  return out.filter((x) => x !== '');
}

function lastProto(ctx: DslContext): number | undefined {
  for (let i = ctx.previous.length - 1; i >= 0; i--) {
    const p = ctx.previous[i];
    if (p.kind === 'proto' && !p.negated && p.protos.length === 1) return p.protos[0];
  }
  return undefined;
}

function requireProto(rule: RuleView, proto: number, m: { span: Span }, name: string, report: (code: string, span: Span, message: string, hint?: string) => void): void {
  if (!rule.matches.some((x) => x.kind === 'proto' && !x.negated && x.protos.length === 1 && x.protos[0] === proto)) {
    report('E-needs-protocol', m.span, `this test needs the rule to match ${name}`, `add \`${name}\` before it`);
  }
}

export const sctpDccpKind: MatchKind<SctpDccpMatch> = {
  kind: 'sctp-dccp',
  doc: 'SCTP chunk types, DCCP packet types and DCCP options (after sctp / dccp).',
  syntax: ['chunks [!=] any|all|only CHUNK[:FLAGS][,…]   (after sctp)', 'types [!=] TYPE[,…]   (after dccp)', 'option [!=] N   (after dccp)'],
  keywords: ['chunks', 'types', 'option'],
  inFlows: false,

  accepts(cur, ctx) {
    // `option` is TCP's unless the rule is about dccp.
    return cur.peekAtom() !== 'option' || lastProto(ctx) === PROTO.dccp;
  },

  parse(cur, ctx) {
    const kw = cur.next() as { text: string; span: Span };
    const negated = cur.acceptNegation();
    const fail = (message: string, hint?: string) => {
      ctx.report(diag('error', 'E-sctp-dccp', cur.here(), message, hint));
      return undefined;
    };
    if (kw.text === 'chunks') {
      const mode = cur.accept('any', 'all', 'only');
      if (!mode) return fail('`chunks` needs any, all or only', 'e.g. sctp chunks any INIT,INIT_ACK');
      const list = readCommaList(cur);
      if (list.length === 0 || !list.every(chunkOk)) return fail('expected SCTP chunk types', CHUNKS.join(', '));
      return { kind: 'sctp-dccp', test: 'chunks', negated, mode: mode.text as 'any' | 'all' | 'only', chunks: sortChunks(list), span: clauseSpan(kw.span, cur) };
    }
    if (kw.text === 'types') {
      const list = readCommaList(cur).map((t) => t.toUpperCase());
      if (list.length === 0 || !list.every((t) => DCCP_TYPES.includes(t))) return fail('expected DCCP packet types', DCCP_TYPES.join(', '));
      return { kind: 'sctp-dccp', test: 'dccp-types', negated, types: DCCP_TYPES.filter((t) => list.includes(t)), span: clauseSpan(kw.span, cur) };
    }
    const w = cur.next();
    const n = w?.type === 'atom' && /^\d+$/.test(w.text) ? Number(w.text) : undefined;
    if (n === undefined || n > 255) return fail('`option` needs a DCCP option number 0-255');
    return { kind: 'sctp-dccp', test: 'dccp-option', negated, option: n, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    const neg = m.negated ? '!= ' : '';
    if (m.test === 'chunks') return `chunks ${neg}${m.mode} ${m.chunks.join(',')}`;
    if (m.test === 'dccp-types') return `types ${neg}${m.types.join(',')}`;
    return `option ${neg}${m.option}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const text = sctpDccpKind.print(m).replace('!= ', '');
    const proto = m.test === 'chunks' ? 'SCTP chunk types' : m.test === 'dccp-types' ? 'DCCP packet types' : 'DCCP options';
    const c = opaque(`${m.test === 'chunks' ? 'sctp' : 'dccp'} ${text}`, `${proto} are not part of nfproof's packet model`);
    // A packet with ports (not a later fragment) is needed, negated or not.
    return and(present('sport'), m.negated ? not(c) : c);
  },

  validate(m, rule, report) {
    if (m.test === 'chunks') requireProto(rule, PROTO.sctp, m, 'sctp', report);
    else requireProto(rule, PROTO.dccp, m, 'dccp', report);
  },

  iptables: {
    emit(m) {
      const neg = m.negated ? ['!'] : [];
      if (m.test === 'chunks') return [{ module: 'sctp', args: [...neg, '--chunk-types', m.mode, m.chunks.join(',')], order: 2 }];
      if (m.test === 'dccp-types') return [{ module: 'dccp', args: [...neg, '--dccp-types', m.types.join(',')], order: 2 }];
      return [{ module: 'dccp', args: [...neg, '--dccp-option', String(m.option)], order: 3 }];
    },
    claims: [
      { module: 'sctp', options: ['--chunk-types'] },
      { module: 'dccp', options: ['--dccp-types', '--dccp-option'] },
    ],
    fromIptables(_module, options, ctx) {
      const out: SctpDccpMatch[] = [];
      for (const o of options) {
        const a = o.args[0] ?? '';
        if (o.name === '--chunk-types' && (a === 'any' || a === 'all' || a === 'only') && (o.args[1] ?? '').split(',').every(chunkOk)) {
          out.push({ kind: 'sctp-dccp', test: 'chunks', negated: o.negated, mode: a, chunks: sortChunks((o.args[1] ?? '').split(',')), span: o.span });
        } else if (o.name === '--dccp-types' && a.split(',').every((t) => DCCP_TYPES.includes(t))) {
          out.push({ kind: 'sctp-dccp', test: 'dccp-types', negated: o.negated, types: DCCP_TYPES.filter((t) => a.split(',').includes(t)), span: o.span });
        } else if (o.name === '--dccp-option' && /^\d+$/.test(a)) {
          out.push({ kind: 'sctp-dccp', test: 'dccp-option', negated: o.negated, option: Number(a), span: o.span });
        } else ctx.report(diag('error', 'E-import-option', o.span, `\`${o.name} ${o.args.join(' ')}\` is not understood`));
      }
      return out;
    },
  },
};
