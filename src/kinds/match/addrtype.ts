import { type Constraint, and, masked, not, opaque, present } from '../../ir/constraint.js';
import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';
import { readKeywordList } from '../values.js';

/**
 * Address type by routing: `daddr type local`, `saddr type != local,broadcast`,
 * `daddr type local on iif` (iptables `-m addrtype --dst-type LOCAL [--limit-iface-in]`).
 * The type of an address is the route type the kernel's lookup gives it (RTN_*); the fields
 * srctype/dsttype hold 1 << type and the test is "one of the listed types" (xt_addrtype.c).
 * With `on iif` / `on oif` the lookup is restricted to that interface, which nfproof's fields
 * do not describe: that variant is an opaque constraint.
 *
 * IPv6 (ip6tables) knows fewer types: no broadcast, blackhole, prohibit, throw, nat, xresolve,
 * and tests them differently (xt_addrtype.c match_type6): every listed class among multicast,
 * unicast and unspec must hold, and if local, anycast or unreachable are listed, the route
 * lookup must give one of them. For IPv6 the fields therefore hold every bit that applies
 * (MULTICAST/UNICAST/UNSPEC from the address, LOCAL/ANYCAST/UNREACHABLE from the route); for
 * IPv4 exactly one bit, 1 << inet_addr_type().
 */
export const ADDRTYPE = {
  UNSPEC: 1 << 0,
  UNICAST: 1 << 1,
  LOCAL: 1 << 2,
  BROADCAST: 1 << 3,
  ANYCAST: 1 << 4,
  MULTICAST: 1 << 5,
  BLACKHOLE: 1 << 6,
  UNREACHABLE: 1 << 7,
  PROHIBIT: 1 << 8,
  THROW: 1 << 9,
  NAT: 1 << 10,
  XRESOLVE: 1 << 11,
} as const;
export type AddrTypeName = keyof typeof ADDRTYPE;

const ORDER = Object.keys(ADDRTYPE) as AddrTypeName[];

/**
 * The address-class bits of an IPv6 address for the srctype/dsttype fields, as
 * __ipv6_addr_type() classifies it: multicast (ff00::/8), unspecified (::), IPv4-mapped (no
 * class), everything else unicast. The simulator ORs in the route bits (LOCAL, ANYCAST,
 * UNREACHABLE) from its routing lookup.
 */
export function ipv6AddrClassBits(addr: bigint): number {
  if (addr >> 120n === 0xffn) return ADDRTYPE.MULTICAST;
  if (addr === 0n) return ADDRTYPE.UNSPEC;
  if (addr >> 32n === 0xffffn) return 0;
  return ADDRTYPE.UNICAST;
}
const DSL_NAMES = ORDER.map((n) => n.toLowerCase());
/** Types ip6tables' addrtype refuses (xt_addrtype checkentry). */
const NOT_IPV6: readonly AddrTypeName[] = ['BROADCAST', 'BLACKHOLE', 'PROHIBIT', 'THROW', 'NAT', 'XRESOLVE'];

export interface AddrTypeMatch {
  readonly kind: 'addrtype';
  readonly dir: 'src' | 'dst';
  readonly negated: boolean;
  readonly types: readonly AddrTypeName[];
  /** --limit-iface-in / --limit-iface-out. */
  readonly limitIface?: 'in' | 'out';
  readonly span: Span;
}

function sorted(list: readonly AddrTypeName[]): AddrTypeName[] {
  return ORDER.filter((t) => list.includes(t));
}

function maskOf(types: readonly AddrTypeName[]): number {
  return types.reduce((m, t) => m | ADDRTYPE[t], 0);
}

export const addrtypeKind: MatchKind<AddrTypeMatch> = {
  kind: 'addrtype',
  doc: 'Route type of the source or destination address (local, unicast, broadcast, multicast …).',
  syntax: ['saddr type [!=] TYPE[,TYPE…] [on iif|oif]', 'daddr type [!=] TYPE[,TYPE…] [on iif|oif]', '(fib saddr|daddr type … is the same)'],
  keywords: ['saddr', 'daddr', 'fib'],
  inFlows: true,

  accepts(cur) {
    // nftables users write `fib daddr type local`.
    if (cur.peekAtom() === 'fib') return (cur.peekAtom(1) === 'saddr' || cur.peekAtom(1) === 'daddr') && cur.peekAtom(2) === 'type';
    return cur.peekAtom(1) === 'type';
  },

  parse(cur, ctx) {
    const first = cur.peek()!;
    if (cur.peekAtom() === 'fib') cur.next();
    const kw = cur.next() as { text: string; span: Span };
    cur.next(); // `type`
    const negated = cur.acceptNegation();
    const list = readKeywordList(cur, ctx, 'address type', DSL_NAMES);
    if (!list) return undefined;
    let limitIface: 'in' | 'out' | undefined;
    if (cur.peekAtom() === 'on') {
      cur.next();
      const w = cur.accept('iif', 'oif');
      if (!w) {
        ctx.report(diag('error', 'E-addrtype', cur.here(), '`on` needs iif or oif', 'daddr type local on iif: look the address up on the input interface only'));
        return undefined;
      }
      limitIface = w.text === 'iif' ? 'in' : 'out';
    }
    return {
      kind: 'addrtype',
      dir: kw.text === 'saddr' ? 'src' : 'dst',
      negated,
      types: sorted(list.map((t) => t.toUpperCase() as AddrTypeName)),
      ...(limitIface ? { limitIface } : {}),
      span: clauseSpan(first.span, cur),
    };
  },

  print(m) {
    const on = m.limitIface ? ` on ${m.limitIface === 'in' ? 'iif' : 'oif'}` : '';
    return `${m.dir === 'src' ? 'saddr' : 'daddr'} type ${m.negated ? '!= ' : ''}${sorted(m.types)
      .map((t) => t.toLowerCase())
      .join(',')}${on}`;
  },

  forFamily(m, family) {
    if (family === 'ipv4') return m;
    // No IPv6 address has these types as ip6tables sees them: drop them from the list.
    const kept = m.types.filter((t) => !NOT_IPV6.includes(t));
    if (kept.length === m.types.length) return m;
    if (kept.length === 0) return m.negated ? 'always' : 'never';
    return { ...m, types: kept };
  },

  constraint(m, family): Constraint {
    const field = m.dir === 'src' ? 'srctype' : 'dsttype';
    if (m.limitIface) {
      const text = `${m.dir === 'src' ? 'saddr' : 'daddr'} type ${m.negated ? '!= ' : ''}${sorted(m.types).join(',').toLowerCase()} on ${m.limitIface === 'in' ? 'iif' : 'oif'}`;
      return opaque(`addrtype ${text}`, `\`${text}\`: the address type on one interface is not modelled`);
    }
    if (family === 'ipv6') {
      const classes = (['MULTICAST', 'UNICAST', 'UNSPEC'] as const).filter((t) => m.types.includes(t)).map((t) => masked(field, ADDRTYPE[t], ADDRTYPE[t]));
      const routeBits = maskOf(m.types.filter((t) => t === 'LOCAL' || t === 'ANYCAST' || t === 'UNREACHABLE'));
      const route = routeBits ? [not(masked(field, routeBits, 0))] : [];
      const test = and(present(field), ...classes, ...route);
      return m.negated ? and(present(field), not(test)) : test;
    }
    const none = masked(field, maskOf(m.types), 0);
    return m.negated ? none : and(present(field), not(none));
  },

  hooks(m): readonly Hook[] | undefined {
    if (m.limitIface === 'in') return ['PREROUTING', 'INPUT', 'FORWARD'];
    if (m.limitIface === 'out') return ['FORWARD', 'OUTPUT', 'POSTROUTING'];
    return undefined;
  },

  iptables: {
    emit(m) {
      const args = [...(m.negated ? ['!'] : []), m.dir === 'src' ? '--src-type' : '--dst-type', sorted(m.types).join(',')];
      if (m.limitIface) args.push(m.limitIface === 'in' ? '--limit-iface-in' : '--limit-iface-out');
      return [{ module: 'addrtype', args, order: m.dir === 'src' ? 0 : 1 }];
    },
    claims: [{ module: 'addrtype', options: ['--src-type', '--dst-type', '--limit-iface-in', '--limit-iface-out'] }],
    fromIptables(_module, options, ctx) {
      const limit = options.find((o) => o.name === '--limit-iface-in' || o.name === '--limit-iface-out');
      const limitIface = limit ? (limit.name === '--limit-iface-in' ? 'in' : 'out') : undefined;
      const out: AddrTypeMatch[] = [];
      for (const o of options) {
        if (o === limit) continue;
        const parts = (o.args[0] ?? '').split(',');
        if (parts.some((p) => !(p in ADDRTYPE))) {
          ctx.report(diag('error', 'E-import-option', o.span, `\`${o.name} ${o.args[0] ?? ''}\` is not an address type list`));
          continue;
        }
        out.push({
          kind: 'addrtype',
          dir: o.name === '--src-type' ? 'src' : 'dst',
          negated: o.negated,
          types: sorted(parts as AddrTypeName[]),
          ...(limitIface ? { limitIface } : {}),
          span: o.span,
        });
      }
      return out;
    },
  },
};
