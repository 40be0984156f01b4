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

/** The DSL name of a protocol: nfproof's short names, else the iptables name, else the number. */
export function protoName(n: number): string {
  return SHORT_NAME.get(n) ?? IPTABLES_PROTO_NAMES[n] ?? String(n);
}

const SHORT_NAME: ReadonlyMap<number, string> = new Map(Object.entries(PROTO).map(([name, n]) => [n, name]));

/**
 * How iptables-save and ip6tables-save print a protocol number: a few names of their own
 * (tcp, udp, udplite, icmp, ipv6-icmp, esp, ah, sctp, dccp), else the name the system's
 * /etc/protocols gives the number (getprotobynumber), else the number. The table below is the
 * IANA keyword list as Debian's netbase ships it, so output does not depend on the machine
 * nfproof runs on; checked on the kernel for a sample (test/kinds/cases/proto.ts).
 */
export const IPTABLES_PROTO_NAMES: Readonly<Record<number, string>> = {
  1: 'icmp', 2: 'igmp', 3: 'ggp', 4: 'ipencap', 5: 'st', 6: 'tcp', 8: 'egp', 9: 'igp', 12: 'pup', 17: 'udp',
  20: 'hmp', 22: 'xns-idp', 27: 'rdp', 29: 'iso-tp4', 33: 'dccp', 36: 'xtp', 37: 'ddp', 38: 'idpr-cmtp', 41: 'ipv6',
  43: 'ipv6-route', 44: 'ipv6-frag', 45: 'idrp', 46: 'rsvp', 47: 'gre', 50: 'esp', 51: 'ah', 57: 'skip',
  58: 'ipv6-icmp', 59: 'ipv6-nonxt', 60: 'ipv6-opts', 73: 'rspf', 81: 'vmtp', 88: 'eigrp', 89: 'ospf', 93: 'ax.25',
  94: 'ipip', 97: 'etherip', 98: 'encap', 103: 'pim', 108: 'ipcomp', 112: 'vrrp', 115: 'l2tp', 124: 'isis',
  132: 'sctp', 133: 'fc', 135: 'mobility-header', 136: 'udplite', 137: 'mpls-in-ip', 138: 'manet', 139: 'hip',
  140: 'shim6', 141: 'wesp', 142: 'rohc', 143: 'ethernet',
};

const NAME_TO_PROTO: ReadonlyMap<string, number> = new Map([
  ...Object.entries(IPTABLES_PROTO_NAMES).map(([n, name]) => [name, Number(n)] as const),
  // Aliases iptables and nftables users write.
  ['icmpv6', PROTO.icmpv6],
  ['icmp6', PROTO.icmpv6],
  ['mh', 135],
  ['ipv6-mh', 135],
]);

export function iptablesProtoName(n: number): string {
  return IPTABLES_PROTO_NAMES[n] ?? String(n);
}

export function parseProtoName(text: string): number | undefined {
  const t = text.toLowerCase();
  const named = NAME_TO_PROTO.get(t);
  if (named !== undefined) return named;
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
      if (n === 0) {
        ctx.report(diag('error', 'E-bad-protocol', x!.span, 'protocol 0 means "any protocol" to iptables', 'leave the proto clause out to match every protocol'));
        return undefined;
      }
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
        const n = o.args[0] === 'all' ? 0 : parseProtoName(o.args[0] ?? '');
        if (n === undefined || n === 0) {
          // `-p all` / `-p 0` is no test at all (iptables-save prints nothing for it).
          if (n === undefined) ctx.report(diag('error', 'E-import-protocol', o.span, `unknown protocol \`${o.args[0] ?? ''}\``));
          continue;
        }
        out.push({ kind: 'proto', negated: o.negated, protos: [n], span: o.span });
      }
      return out;
    },
  },
};
