import { type Constraint, inSet, opaque } from '../../ir/constraint.js';
import type { NumericField } from '../../ir/fields.js';
import { diag } from '../../util/diagnostics.js';
import { complement, type IntervalSet, maxOf } from '../../util/intervals.js';
import { type Family, familyBits, familyMax, formatAddress, parseAddress, prefixMask } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import type { DslContext, WordCursor } from '../dsl.js';
import { clauseSpan } from '../helpers.js';
import type { ImportContext, ImportedOption } from '../iptables.js';
import type { MatchKind } from '../kind.js';
import { CONNTRACK_ORDER } from './ct-status.js';
import { parseProtoName, protoName } from './proto.js';

/**
 * Fields of the connection's tuples and entry, as `-m conntrack` tests them:
 *
 *   ct proto [!=] PROTO                          --ctproto N
 *   ct original|reply saddr|daddr [!=] ADDR[/LEN]  --ctorigsrc/--ctorigdst/--ctreplsrc/--ctrepldst
 *   ct original|reply sport|dport [!=] PORT[-PORT] --ctorigsrcport … --ctrepldstport
 *   ct expire [!=] SECONDS[-SECONDS]             --ctexpire (remaining timeout)
 *
 * Addresses keep the host bits as written (iptables-save prints `10.0.0.1/8` back; the kernel
 * masks both sides when comparing). Ports compare the tuple's port word, which for ICMP is the
 * echo id (source) or type/code (destination). Packets without a conntrack entry never match,
 * negated or not (xt_conntrack returns false before these tests). The remaining timeout is not
 * something the analyzer knows, so `ct expire` is an opaque constraint.
 */
export type CtTupleDir = 'original' | 'reply';

export type CtTupleMatch =
  | { readonly kind: 'ct-tuple'; readonly field: 'proto'; readonly negated: boolean; readonly proto: number; readonly span: Span }
  | {
      readonly kind: 'ct-tuple';
      readonly field: 'saddr' | 'daddr';
      readonly tuple: CtTupleDir;
      readonly negated: boolean;
      readonly family: Family;
      /** The address as written (host bits kept). */
      readonly addr: bigint;
      readonly len: number;
      readonly span: Span;
    }
  | {
      readonly kind: 'ct-tuple';
      readonly field: 'sport' | 'dport';
      readonly tuple: CtTupleDir;
      readonly negated: boolean;
      readonly range: readonly [number, number];
      readonly span: Span;
    }
  | { readonly kind: 'ct-tuple'; readonly field: 'expire'; readonly negated: boolean; readonly range: readonly [number, number]; readonly span: Span };

const OPTION: Readonly<Record<string, string>> = {
  'original saddr': '--ctorigsrc',
  'original daddr': '--ctorigdst',
  'reply saddr': '--ctreplsrc',
  'reply daddr': '--ctrepldst',
  'original sport': '--ctorigsrcport',
  'original dport': '--ctorigdstport',
  'reply sport': '--ctreplsrcport',
  'reply dport': '--ctrepldstport',
};

const FIELD: Readonly<Record<string, NumericField>> = {
  '--ctorigsrc': 'ctorigsrc',
  '--ctorigdst': 'ctorigdst',
  '--ctreplsrc': 'ctreplsrc',
  '--ctrepldst': 'ctrepldst',
  '--ctorigsrcport': 'ctorigsrcport',
  '--ctorigdstport': 'ctorigdstport',
  '--ctreplsrcport': 'ctreplsrcport',
  '--ctrepldstport': 'ctrepldstport',
};

function optionOf(m: CtTupleMatch): string {
  switch (m.field) {
    case 'proto':
      return '--ctproto';
    case 'expire':
      return '--ctexpire';
    default:
      return OPTION[`${m.tuple} ${m.field}`];
  }
}

function parseAddrLen(text: string): { family: Family; addr: bigint; len: number } | undefined {
  const slash = text.indexOf('/');
  const a = parseAddress(slash < 0 ? text : text.slice(0, slash));
  if (!a) return undefined;
  const bits = familyBits(a.family);
  if (slash < 0) return { family: a.family, addr: a.value, len: bits };
  const l = text.slice(slash + 1);
  if (/^\d{1,3}$/.test(l) && Number(l) <= bits) return { family: a.family, addr: a.value, len: Number(l) };
  const mask = parseAddress(l);
  if (!mask || mask.family !== a.family) return undefined;
  for (let len = 0; len <= bits; len++) if (prefixMask(a.family, len) === mask.value) return { family: a.family, addr: a.value, len };
  return undefined;
}

function parseRange(text: string, sep: RegExp, max: number): readonly [number, number] | undefined {
  const parts = text.split(sep);
  if (parts.length > 2 || parts.some((p) => !/^\d+$/.test(p) && p !== '')) return undefined;
  const lo = parts[0] === '' ? 0 : Number(parts[0]);
  const hi = parts.length === 1 ? lo : parts[1] === '' ? max : Number(parts[1]);
  return lo <= hi && hi <= max ? [lo, hi] : undefined;
}

const fmtRange = ([lo, hi]: readonly [number, number], sep: string) => (lo === hi ? String(lo) : `${lo}${sep}${hi}`);

/** The test after `ct` or `with` (the cursor is on proto / original / reply / expire). */
export function parseCtTuple(cur: WordCursor, ctx: DslContext, first: Span): CtTupleMatch | undefined {
  const w = cur.next() as { text: string; span: Span };
  if (w.text === 'proto' || w.text === 'expire') {
    const negated = cur.acceptNegation();
    const v = cur.next();
    const text = v?.type === 'atom' ? v.text : '';
    if (w.text === 'proto') {
      const proto = parseProtoName(text);
      if (proto === undefined || proto === 0) {
        ctx.report(diag('error', 'E-bad-protocol', v?.span ?? cur.endSpan, '`ct proto` needs a protocol name or number 1-255', 'e.g. ct proto tcp'));
        return undefined;
      }
      return { kind: 'ct-tuple', field: 'proto', negated, proto, span: clauseSpan(first, cur) };
    }
    const range = parseRange(text, /-/, 0xffffffff);
    if (!range) {
      ctx.report(diag('error', 'E-bad-number', v?.span ?? cur.endSpan, '`ct expire` needs seconds or a range of seconds', 'e.g. ct expire 0-60'));
      return undefined;
    }
    return { kind: 'ct-tuple', field: 'expire', negated, range, span: clauseSpan(first, cur) };
  }
  const tuple = w.text as CtTupleDir;
  const f = cur.accept('saddr', 'daddr', 'sport', 'dport');
  if (!f) {
    ctx.report(diag('error', 'E-bad-keyword', cur.here(), `\`ct ${tuple}\` needs saddr, daddr, sport or dport`, `e.g. ct ${tuple} daddr 192.168.1.10`));
    return undefined;
  }
  const negated = cur.acceptNegation();
  const v = cur.next();
  const text = v?.type === 'atom' ? v.text : '';
  if (f.text === 'saddr' || f.text === 'daddr') {
    const a = parseAddrLen(text);
    if (!a) {
      ctx.report(diag('error', 'E-bad-address', v?.span ?? cur.endSpan, `\`ct ${tuple} ${f.text}\` needs one address or prefix`, 'e.g. 10.0.0.0/8 or fd00::1 (iptables takes a single prefix here)'));
      return undefined;
    }
    return { kind: 'ct-tuple', field: f.text, tuple, negated, ...a, span: clauseSpan(first, cur) };
  }
  const range = parseRange(text, /-/, 65535);
  if (!range) {
    ctx.report(diag('error', 'E-bad-port', v?.span ?? cur.endSpan, `\`ct ${tuple} ${f.text}\` needs a port or a port range`, 'e.g. 67 or 1024-65535'));
    return undefined;
  }
  return { kind: 'ct-tuple', field: f.text as 'sport' | 'dport', tuple, negated, range, span: clauseSpan(first, cur) };
}

export function printCtTupleTest(m: CtTupleMatch): string {
  const neg = m.negated ? '!= ' : '';
  switch (m.field) {
    case 'proto':
      return `proto ${neg}${protoName(m.proto)}`;
    case 'expire':
      return `expire ${neg}${fmtRange(m.range, '-')}`;
    case 'saddr':
    case 'daddr':
      return `${m.tuple} ${m.field} ${neg}${formatAddress(m.family, m.addr)}${m.len === familyBits(m.family) ? '' : `/${m.len}`}`;
    case 'sport':
    case 'dport':
      return `${m.tuple} ${m.field} ${neg}${fmtRange(m.range, '-')}`;
  }
}

const TUPLE_OPTIONS = ['--ctproto', '--ctexpire', ...Object.keys(FIELD)];

/** Builds the node of one imported -m conntrack tuple option (ct-state imports the section). */
export function buildCtTuple(o: ImportedOption, ctx: ImportContext): CtTupleMatch | undefined {
  const text = o.args[0] ?? '';
  const bad = (what: string) => {
    ctx.report(diag('error', 'E-import-option', o.span, `\`${o.name} ${text}\` is not ${what}`));
    return undefined;
  };
  if (o.name === '--ctproto') {
    const proto = parseProtoName(text);
    return proto === undefined ? bad('a protocol') : { kind: 'ct-tuple', field: 'proto', negated: o.negated, proto, span: o.span };
  }
  if (o.name === '--ctexpire') {
    const range = parseRange(text, /:/, 0xffffffff);
    return range ? { kind: 'ct-tuple', field: 'expire', negated: o.negated, range, span: o.span } : bad('a range of seconds');
  }
  const tuple: CtTupleDir = o.name.startsWith('--ctorig') ? 'original' : 'reply';
  const src = /src/.test(o.name);
  if (o.name.endsWith('port')) {
    const range = parseRange(text, /:/, 65535);
    return range ? { kind: 'ct-tuple', field: src ? 'sport' : 'dport', tuple, negated: o.negated, range, span: o.span } : bad('a port range');
  }
  const a = parseAddrLen(text);
  if (!a || a.family !== ctx.family) return bad(`an ${ctx.family === 'ipv4' ? 'IPv4' : 'IPv6'} address`);
  return { kind: 'ct-tuple', field: src ? 'saddr' : 'daddr', tuple, negated: o.negated, ...a, span: o.span };
}

export function isCtTupleOption(name: string): boolean {
  return TUPLE_OPTIONS.includes(name);
}

export const ctTupleKind: MatchKind<CtTupleMatch> = {
  kind: 'ct-tuple',
  doc: "The connection's protocol, original/reply tuple addresses and ports, or remaining timeout.",
  syntax: [
    'ct proto [!=] PROTO',
    'ct original|reply saddr|daddr [!=] ADDRESS[/LEN]',
    'ct original|reply sport|dport [!=] PORT[-PORT]',
    'ct expire [!=] SECONDS[-SECONDS]',
  ],
  keywords: ['ct'],
  inFlows: true,

  accepts(cur) {
    const w = cur.peekAtom(1);
    return w === 'proto' || w === 'original' || w === 'reply' || w === 'expire';
  },

  parse(cur, ctx) {
    const kw = cur.next()!;
    return parseCtTuple(cur, ctx, kw.span);
  },

  print(m) {
    return `ct ${printCtTupleTest(m)}`;
  },

  forFamily(m, family) {
    // An address of the other family: no connection of this family has it (negated: all do).
    if ('addr' in m && m.family !== family) return m.negated ? 'always' : 'never';
    return m;
  },

  constraint(m, family): Constraint {
    if (m.field === 'expire') {
      return opaque(`ctexpire ${m.negated ? '!' : ''}${m.range[0]}-${m.range[1]}`, "the connection's remaining timeout (--ctexpire) is not modelled");
    }
    let field: NumericField;
    let set: IntervalSet;
    let max: bigint;
    if (m.field === 'proto') {
      field = 'ctproto';
      set = [[BigInt(m.proto), BigInt(m.proto)]];
      max = maxOf(8);
    } else if ('addr' in m) {
      field = FIELD[optionOf(m)];
      const bits = familyBits(family);
      const net = m.addr & prefixMask(family, m.len);
      set = [[net, net | (maxOf(bits - m.len) & familyMax(family))]];
      max = familyMax(family);
    } else if ('tuple' in m) {
      field = FIELD[optionOf(m)];
      set = [[BigInt(m.range[0]), BigInt(m.range[1])]];
      max = maxOf(16);
    } else {
      const never: never = m;
      throw new Error(`ct-tuple: unhandled ${JSON.stringify(never)}`);
    }
    return inSet(field, m.negated ? complement(set, max) : set);
  },

  evaluate(m, _c, ctx) {
    if (m.field !== 'expire') return undefined;
    // conntrack_mt: without a connection the match fails (a joined --ctstate decides before);
    // with one, whole seconds left within the range, `!` inverting.
    if (ctx.ctExpires === undefined) return false;
    const inRange = ctx.ctExpires >= m.range[0] && ctx.ctExpires <= m.range[1];
    return inRange !== m.negated;
  },

  iptables: {
    emit(m) {
      const opt = optionOf(m);
      let value: string;
      switch (m.field) {
        case 'proto':
          value = String(m.proto);
          break;
        case 'saddr':
        case 'daddr':
          value = `${formatAddress(m.family, m.addr)}${m.len === familyBits(m.family) ? '' : `/${m.len}`}`;
          break;
        case 'sport':
        case 'dport':
        case 'expire':
          value = fmtRange(m.range, ':');
      }
      return [{ module: 'conntrack', args: [...(m.negated ? ['!'] : []), opt, value], order: CONNTRACK_ORDER[opt] }];
    },
    claims: [],
    fromIptables() {
      return [];
    },
  },
};
