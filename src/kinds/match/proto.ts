import { type Constraint, inSet } from '../../ir/constraint.js';
import { PROTO } from '../../ir/fields.js';
import { diag } from '../../util/diagnostics.js';
import { complement, maxOf, normalize } from '../../util/intervals.js';
import type { Family } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import type { MatchKind } from '../kind.js';

/**
 * Layer-4 protocol: `proto tcp`, `proto != udp`, `proto { tcp, udp }`, or the shorthand
 * `tcp` / `udp` / `icmp` … at the start of a clause, as in nftables.
 */
export interface ProtoMatch {
  readonly kind: 'proto';
  readonly negated: boolean;
  /** Protocol numbers, in the order written. */
  readonly protos: readonly number[];
  readonly span: Span;
}

/** DSL names; iptables-save prints the same except icmpv6, which it calls ipv6-icmp. */
export const PROTO_NAMES: Readonly<Record<string, number>> = PROTO;
const SHORTHANDS = ['tcp', 'udp', 'icmp', 'icmpv6', 'sctp', 'udplite', 'dccp', 'esp', 'ah', 'gre'] as const;

export function protoName(n: number): string {
  return Object.entries(PROTO_NAMES).find(([, v]) => v === n)?.[0] ?? String(n);
}

/** How iptables-save/ip6tables-save print a protocol (iptables 1.8 xtables_chain_protos). */
export function iptablesProtoName(n: number): string {
  switch (n) {
    case PROTO.tcp:
      return 'tcp';
    case PROTO.udp:
      return 'udp';
    case PROTO.udplite:
      return 'udplite';
    case PROTO.icmp:
      return 'icmp';
    case PROTO.icmpv6:
      return 'ipv6-icmp';
    case PROTO.esp:
      return 'esp';
    case PROTO.ah:
      return 'ah';
    case PROTO.sctp:
      return 'sctp';
    case PROTO.dccp:
      return 'dccp';
    default:
      return String(n);
  }
}

export function parseProtoName(text: string): number | undefined {
  const t = text.toLowerCase();
  if (t === 'ipv6-icmp' || t === 'icmp6') return PROTO.icmpv6;
  if (t in PROTO_NAMES) return PROTO_NAMES[t];
  if (/^\d{1,3}$/.test(t) && Number(t) <= 255) return Number(t);
  return undefined;
}

function protoFamily(n: number): Family | undefined {
  return n === PROTO.icmp ? 'ipv4' : n === PROTO.icmpv6 ? 'ipv6' : undefined;
}

export const protoKind: MatchKind<ProtoMatch> = {
  kind: 'proto',
  doc: 'IP protocol (IPv6: upper-layer protocol); `tcp`, `udp`, `icmp`… alone are shorthands.',
  syntax: ['proto [!=] PROTO | { PROTO, … }', 'tcp | udp | icmp | icmpv6 | sctp | udplite | dccp | esp | ah | gre'],
  keywords: ['proto', ...SHORTHANDS],
  inFlows: true,

  parse(cur, ctx) {
    const kw = cur.next() as { text: string; span: Span };
    if (kw.text !== 'proto') {
      return { kind: 'proto', negated: false, protos: [PROTO_NAMES[kw.text]], span: kw.span };
    }
    const negated = cur.acceptNegation();
    const w = cur.next();
    const words = w?.type === 'set' ? w.items.map((i) => i[0]) : w ? [w] : [];
    const protos: number[] = [];
    for (const x of words) {
      const n = x?.type === 'atom' ? parseProtoName(x.text) : undefined;
      if (n === undefined) {
        ctx.report(diag('error', 'E-bad-protocol', x?.span ?? cur.endSpan, 'expected a protocol name or number', `e.g. tcp, udp, icmp, icmpv6, sctp, gre or 0-255`));
        return undefined;
      }
      protos.push(n);
    }
    if (protos.length === 0) {
      ctx.report(diag('error', 'E-missing-value', cur.endSpan, '`proto` needs a protocol', 'e.g. proto tcp'));
      return undefined;
    }
    return { kind: 'proto', negated, protos, span: { ...kw.span, end: (w ?? kw).span.end } };
  },

  print(m) {
    if (!m.negated && m.protos.length === 1 && (SHORTHANDS as readonly string[]).includes(protoName(m.protos[0]))) {
      return protoName(m.protos[0]);
    }
    const list = m.protos.map(protoName);
    return `proto ${m.negated ? '!= ' : ''}${list.length === 1 ? list[0] : `{ ${list.join(', ')} }`}`;
  },

  forFamily(m, family) {
    // icmp only exists on IPv4 and icmpv6 only on IPv6 (nfproof's reading; ip6tables would
    // accept `-p icmp` but no IPv6 packet carries protocol 1 as its upper layer in practice).
    const kept = m.protos.filter((p) => (protoFamily(p) ?? family) === family);
    if (kept.length === m.protos.length) return m;
    if (kept.length === 0) return m.negated ? 'always' : 'never';
    return { ...m, protos: kept };
  },

  constraint(m): Constraint {
    const set = normalize(m.protos.map((p) => [BigInt(p), BigInt(p)] as const));
    return inSet('proto', m.negated ? complement(set, maxOf(8)) : set);
  },

  iptables: {
    split(m) {
      if (m.protos.length <= 1 || m.negated) {
        if (m.negated && m.protos.length > 1) {
          // `! -p` takes one protocol; several negated protocols become the positive complement.
          const set = complement(normalize(m.protos.map((p) => [BigInt(p), BigInt(p)] as const)), maxOf(8));
          return set.flatMap(([lo, hi]) => {
            const out: ProtoMatch[] = [];
            for (let p = Number(lo); p <= Number(hi); p++) out.push({ ...m, negated: false, protos: [p] });
            return out;
          });
        }
        return [m];
      }
      return m.protos.map((p) => ({ ...m, protos: [p] }));
    },
    emit(m) {
      return [{ module: null, args: [...(m.negated ? ['!'] : []), '-p', iptablesProtoName(m.protos[0])], order: 4 }];
    },
    claims: [{ module: null, options: ['-p'] }],
    fromIptables(_module, options, ctx) {
      const out: ProtoMatch[] = [];
      for (const o of options) {
        const n = parseProtoName(o.args[0] ?? '');
        if (n === undefined || o.args[0] === 'all') {
          if (o.args[0] !== 'all') ctx.report(diag('error', 'E-import-protocol', o.span, `unknown protocol \`${o.args[0] ?? ''}\``));
          continue;
        }
        out.push({ kind: 'proto', negated: o.negated, protos: [n], span: o.span });
      }
      return out;
    },
  },
};
