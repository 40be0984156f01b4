import { type Constraint, inSet } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import { complement, type IntervalSet, normalize, subtract } from '../../util/intervals.js';
import {
  type Family,
  addressSetOf,
  familyMax,
  formatAddress,
  intervalToPrefixes,
  parsePrefix,
  parseRange,
} from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import type { MatchKind } from '../kind.js';
import { type AddrItem, type AddrValue, addrFamilies, formatAddrValue, readAddrValue } from '../values.js';

/**
 * Source/destination address: `saddr 10.0.0.0/8`, `daddr != { 192.168.1.1, 10.0.0.1-10.0.0.9 }`.
 * iptables: prefixes are `-s`/`-d`, ranges are `-m iprange --src-range/--dst-range`.
 */
export interface AddrMatch {
  readonly kind: 'addr';
  readonly dir: 'src' | 'dst';
  readonly negated: boolean;
  readonly value: AddrValue;
  readonly span: Span;
}

const KEYWORD = { src: 'saddr', dst: 'daddr' } as const;

/** The set of addresses of one family the value stands for (before negation). */
export function addrSet(v: AddrValue, family: Family): IntervalSet {
  const inc = v.items.filter((i) => i.family === family);
  const exc = v.excluded.filter((i) => i.family === family);
  const base = v.items.length === 0 ? [[0n, familyMax(family)] as const] : addressSetOf(inc);
  return subtract(base, addressSetOf(exc), familyMax(family));
}

function itemFits(i: AddrItem, family: Family): boolean {
  return i.family === family;
}

function isSimple(v: AddrValue): boolean {
  return v.items.length === 1 && v.excluded.length === 0;
}

function field(dir: 'src' | 'dst') {
  return dir === 'src' ? 'saddr' : 'daddr';
}

function itemsOfSet(family: Family, set: IntervalSet): AddrItem[] {
  // One item per interval: a prefix when the interval is exactly one, else a range (iprange).
  return set.map(([lo, hi]) => {
    const ps = intervalToPrefixes(family, [lo, hi]);
    return ps.length === 1
      ? ({ type: 'prefix', ...ps[0] } as const)
      : ({ type: 'range', family, first: lo, last: hi } as const);
  });
}

function emitItem(m: AddrMatch, i: AddrItem) {
  const neg = m.negated ? ['!'] : [];
  if (i.type === 'prefix') {
    return { module: null, args: [...neg, m.dir === 'src' ? '-s' : '-d', `${formatAddress(i.family, i.addr)}/${i.len}`], order: m.dir === 'src' ? 0 : 1 };
  }
  return {
    module: 'iprange',
    args: [...neg, m.dir === 'src' ? '--src-range' : '--dst-range', `${formatAddress(i.family, i.first)}-${formatAddress(i.family, i.last)}`],
    order: m.dir === 'src' ? 0 : 1,
  };
}

export const addrKind: MatchKind<AddrMatch> = {
  kind: 'addr',
  doc: 'Source or destination address: addresses, prefixes, ranges, sets, @defines; != negates.',
  syntax: ['saddr [!=] ADDRESSES', 'daddr [!=] ADDRESSES', 'from ADDRESSES   (flows only)', 'to ADDRESSES     (flows only)'],
  keywords: ['saddr', 'daddr', 'from', 'to'],
  inFlows: true,

  accepts(cur) {
    // `saddr type local` is the addrtype kind's.
    return cur.peekAtom(1) !== 'type';
  },

  parse(cur, ctx) {
    const kw = cur.next() as { text: string; span: Span };
    if ((kw.text === 'from' || kw.text === 'to') && ctx.mode !== 'flow') {
      ctx.report(diag('error', 'E-flow-keyword', kw.span, `\`${kw.text}\` is for expect/query flows`, `in a rule write ${kw.text === 'from' ? 'saddr' : 'daddr'}`));
      return undefined;
    }
    const dir = kw.text === 'saddr' || kw.text === 'from' ? 'src' : 'dst';
    const negated = cur.acceptNegation();
    if (ctx.mode === 'flow' && cur.peekAtom() === 'any') {
      // `from any`: every address of every family — written as the two default prefixes.
      const w = cur.next() as { span: Span };
      const any: AddrValue = {
        items: [
          { type: 'prefix', family: 'ipv4', addr: 0n, len: 0 },
          { type: 'prefix', family: 'ipv6', addr: 0n, len: 0 },
        ],
        excluded: [],
      };
      return { kind: 'addr', dir, negated, value: any, span: { ...kw.span, end: w.span.end } };
    }
    const value = readAddrValue(cur, ctx, KEYWORD[dir]);
    if (!value) return undefined;
    const end = cur.peek(-1)?.span ?? kw.span;
    return { kind: 'addr', dir, negated, value, span: { ...kw.span, end: end.end } };
  },

  print(m) {
    return `${KEYWORD[m.dir]} ${m.negated ? '!= ' : ''}${formatAddrValue(m.value)}`;
  },

  forFamily(m, family) {
    if (!addrFamilies(m.value).includes(family)) {
      // Nothing of this family written: a positive set is empty here, its negation is everything.
      // (A set of only exclusions of the other family is likewise "everything".)
      const emptyHere = m.value.items.length > 0;
      return emptyHere === m.negated ? 'always' : 'never';
    }
    const items = m.value.items.filter((i) => itemFits(i, family));
    const excluded = m.value.excluded.filter((i) => itemFits(i, family));
    if (m.value.items.length > 0 && items.length === 0) return m.negated ? 'always' : 'never';
    if (items.length === m.value.items.length && excluded.length === m.value.excluded.length) return m;
    return { ...m, value: { items, excluded, ...(m.value.ref ? { ref: m.value.ref } : {}) } };
  },

  constraint(m, family): Constraint {
    const set = addrSet(m.value, family);
    return inSet(field(m.dir), m.negated ? complement(set, familyMax(family)) : set);
  },

  iptables: {
    split(m, ctx) {
      const family = ctx.family;
      if (isSimple(m.value)) return [m];
      // Several values: every alternative must be a positive single prefix or range.
      const set = addrSet(m.value, family);
      const wanted = m.negated ? complement(set, familyMax(family)) : set;
      const items =
        !m.negated && m.value.excluded.length === 0 ? m.value.items.filter((i) => i.family === family) : itemsOfSet(family, normalize(wanted));
      return items.map((i) => ({ kind: 'addr', dir: m.dir, negated: false, value: { items: [i], excluded: [] }, span: m.span }) as const);
    },
    emit(m) {
      if (!isSimple(m.value)) throw new Error('addr: emit called on an unsplit set');
      return [emitItem(m, m.value.items[0])];
    },
    claims: [
      { module: null, options: ['-s', '-d'] },
      { module: 'iprange', options: ['--src-range', '--dst-range'] },
    ],
    fromIptables(module, options, ctx) {
      const out: AddrMatch[] = [];
      for (const o of options) {
        const dir = o.name === '-s' || o.name === '--src-range' ? 'src' : 'dst';
        const text = o.args[0] ?? '';
        let item: AddrItem | undefined;
        if (module === null) {
          const p = parsePrefix(text);
          if (p && p.family === ctx.family) item = { type: 'prefix', family: p.family, addr: p.addr, len: p.len };
        } else {
          const r = parseRange(text);
          if (r && r.family === ctx.family) item = { type: 'range', ...r };
        }
        if (!item) {
          ctx.report(diag('error', 'E-import-address', o.span, `\`${text}\` is not an ${ctx.family === 'ipv4' ? 'IPv4' : 'IPv6'} ${module ? 'range' : 'address/prefix'}`));
          continue;
        }
        out.push({ kind: 'addr', dir, negated: o.negated, value: { items: [item], excluded: [] }, span: o.span });
      }
      return out;
    },
  },
};
