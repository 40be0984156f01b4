import { type Constraint, inSet } from '../../ir/constraint.js';
import { PORT_PROTOS, PROTO } from '../../ir/fields.js';
import { diag } from '../../util/diagnostics.js';
import { complement, maxOf, normalize } from '../../util/intervals.js';
import type { Span } from '../../util/span.js';
import type { MatchKind } from '../kind.js';
import { clauseSpan } from '../helpers.js';
import { type PortItem, type PortValue, formatPortItem, formatPortValue, readPortValue } from '../values.js';
import { iptablesProtoName } from './proto.js';

/**
 * Source/destination port: `dport 22`, `sport 1024-65535`, `dport != { 80, 443 }`.
 * `port` (either side, multiport --ports) is also supported. Needs a port protocol in the rule.
 * iptables: one port or range is `-m tcp --dport`, lists are `-m multiport --dports`
 * (at most 15 ports, a range counting as two).
 */
export interface PortMatch {
  readonly kind: 'port';
  readonly dir: 'src' | 'dst' | 'either';
  readonly negated: boolean;
  readonly value: PortValue;
  /** One port or range written as a set `{ 53 }`: emitted with -m multiport (as imported from `--dports 53`). */
  readonly multiport?: boolean;
  readonly span: Span;
}

const KEYWORD = { src: 'sport', dst: 'dport', either: 'port' } as const;
const MULTIPORT_MAX = 15;

function portSet(v: PortValue) {
  return normalize(v.items.map(([lo, hi]) => [BigInt(lo), BigInt(hi)] as const));
}

function multiportCost(items: readonly PortItem[]): number {
  return items.reduce((n, [lo, hi]) => n + (lo === hi ? 1 : 2), 0);
}

function fmt([lo, hi]: PortItem, sep: string): string {
  return lo === hi ? String(lo) : `${lo}${sep}${hi}`;
}

/** Ports from iptables-save: `22`, `1024:65535`, `22,80,1000:2000`. */
function parseIptablesPorts(text: string): PortItem[] | undefined {
  const out: PortItem[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d+)?(?::(\d+)?)?$/.exec(part);
    if (!m || part === '') return undefined;
    const lo = m[1] === undefined ? 0 : Number(m[1]);
    const hi = part.includes(':') ? (m[2] === undefined ? 65535 : Number(m[2])) : lo;
    // A reversed range (60000:29) is accepted by iptables and matches no port: keep it as written.
    if (lo > 65535 || hi > 65535) return undefined;
    out.push([lo, hi]);
  }
  return out;
}

export const portKind: MatchKind<PortMatch> = {
  kind: 'port',
  doc: 'Source/destination port (tcp, udp, udplite, sctp, dccp); single, range, set or @define.',
  syntax: ['sport [!=] PORTS', 'dport [!=] PORTS', 'port [!=] PORTS   (either side)'],
  keywords: ['sport', 'dport', 'port'],
  inFlows: true,

  parse(cur, ctx) {
    const kw = cur.next() as { text: 'sport' | 'dport' | 'port'; span: Span };
    const dir = kw.text === 'sport' ? 'src' : kw.text === 'dport' ? 'dst' : 'either';
    const negated = cur.acceptNegation();
    // A one-element set `{ 53 }` asks for -m multiport, as iptables-save prints `--dports 53`.
    const asSet = cur.peek()?.type === 'set';
    const value = readPortValue(cur, ctx, kw.text);
    if (!value) return undefined;
    const multiport = asSet && value.items.length === 1 && dir !== 'either';
    return { kind: 'port', dir, negated, value, ...(multiport ? { multiport: true } : {}), span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    const value = m.multiport && !m.value.ref && m.value.items.length === 1 ? `{ ${formatPortItem(m.value.items[0])} }` : formatPortValue(m.value);
    return `${KEYWORD[m.dir]} ${m.negated ? '!= ' : ''}${value}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const set = portSet(m.value);
    const wanted = m.negated ? complement(set, maxOf(16)) : set;
    if (m.dir === 'either') {
      // multiport --ports: the source or the destination port is in the set (negated: neither is).
      if (m.negated) {
        return { op: 'and', of: [inSet('sport', wanted), inSet('dport', wanted)] };
      }
      return { op: 'or', of: [inSet('sport', wanted), inSet('dport', wanted)] };
    }
    return inSet(m.dir === 'src' ? 'sport' : 'dport', wanted);
  },

  validate(m, rule, report) {
    const protos = rule.matches.flatMap((x) => (x.kind === 'proto' && !x.negated ? x.protos : []));
    if (protos.length === 0 || protos.some((p) => !PORT_PROTOS.includes(p))) {
      report(
        'E-port-without-protocol',
        m.span,
        `\`${KEYWORD[m.dir]}\` needs the rule to match a port protocol`,
        'add `tcp`, `udp`, `sctp`, `udplite` or `dccp` before the port (iptables refuses --dport without -p tcp/udp)',
      );
    }
  },

  iptables: {
    split(m) {
      if (multiportCost(m.value.items) <= MULTIPORT_MAX || m.negated) {
        // A negated list longer than multiport allows is complemented into positive chunks.
        if (!m.negated || multiportCost(m.value.items) <= MULTIPORT_MAX) return [m];
        const set = complement(portSet(m.value), maxOf(16));
        const items = set.map(([lo, hi]) => [Number(lo), Number(hi)] as const);
        return chunk(items).map((c) => ({ ...m, negated: false, value: { items: c } }));
      }
      return chunk(m.value.items).map((c) => ({ ...m, value: { items: c } }));
    },
    emit(m, ctx) {
      const neg = m.negated ? ['!'] : [];
      // iptables has no `-m udplite`: UDP-Lite ports always go through multiport.
      const single = m.value.items.length === 1 && m.dir !== 'either' && !m.multiport && ctx.proto !== PROTO.udplite;
      if (single) {
        const module = iptablesProtoName(ctx.proto ?? PROTO.tcp);
        return [{ module, args: [...neg, m.dir === 'src' ? '--sport' : '--dport', fmt(m.value.items[0], ':')], order: m.dir === 'src' ? 0 : 1 }];
      }
      const opt = m.dir === 'src' ? '--sports' : m.dir === 'dst' ? '--dports' : '--ports';
      return [{ module: 'multiport', args: [...neg, opt, m.value.items.map((i) => fmt(i, ':')).join(',')], order: 0 }];
    },
    claims: [
      { module: 'tcp', options: ['--sport', '--dport', '--source-port', '--destination-port'] },
      { module: 'udp', options: ['--sport', '--dport', '--source-port', '--destination-port'] },
      { module: 'sctp', options: ['--sport', '--dport', '--source-port', '--destination-port'] },
      { module: 'dccp', options: ['--sport', '--dport', '--source-port', '--destination-port'] },
      { module: 'multiport', options: ['--sports', '--dports', '--ports', '--source-ports', '--destination-ports'] },
    ],
    fromIptables(module, options, ctx) {
      const out: PortMatch[] = [];
      for (const o of options) {
        const items = parseIptablesPorts(o.args[0] ?? '');
        if (!items) {
          ctx.report(diag('error', 'E-import-port', o.span, `\`${o.args[0] ?? ''}\` is not a port list`));
          continue;
        }
        const dir = /^--(sport|source)/.test(o.name) ? 'src' : o.name === '--ports' ? 'either' : 'dst';
        out.push({
          kind: 'port',
          dir,
          negated: o.negated,
          value: { items },
          ...(module === 'multiport' && items.length === 1 && dir !== 'either' ? { multiport: true } : {}),
          span: o.span,
        });
      }
      return out;
    },
  },
};

function chunk(items: readonly PortItem[]): PortItem[][] {
  const out: PortItem[][] = [];
  let cur: PortItem[] = [];
  let cost = 0;
  for (const it of items) {
    const c = it[0] === it[1] ? 1 : 2;
    if (cost + c > MULTIPORT_MAX) {
      out.push(cur);
      cur = [];
      cost = 0;
    }
    cur.push(it);
    cost += c;
  }
  if (cur.length) out.push(cur);
  return out;
}
