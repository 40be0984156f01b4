import type { RejectReply } from '../../ir/effect.js';
import { PROTO } from '../../ir/fields.js';
import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import type { Family } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { TargetKind } from '../kind.js';

/**
 * `reject [with TYPE]` (-j REJECT --reject-with TYPE): drop and answer. Types are iptables' own
 * (`icmp-host-prohibited`, `icmp6-adm-prohibited`, `tcp-reset` …), each for one family, or
 * family-neutral ones for tables of both families: `port-unreachable`, `host-unreachable`,
 * `admin-prohibited`, `no-route`. Without a type: port-unreachable, as iptables. Only in the
 * filter table, on INPUT, FORWARD and OUTPUT; `tcp-reset` only for tcp rules.
 */
export interface RejectTarget {
  readonly kind: 'reject';
  /** iptables or neutral type name; absent: the family's port-unreachable. */
  readonly with?: string;
  readonly span: Span;
}

type Reply = { readonly family?: Family; readonly reply: RejectReply };
const icmp = (code: number): Reply => ({ family: 'ipv4', reply: { type: 'icmp', icmpType: 3, code } });
const icmp6 = (code: number): Reply => ({ family: 'ipv6', reply: { type: 'icmpv6', icmpType: 1, code } });

/** iptables' --reject-with names (libipt_REJECT, libip6t_REJECT) and their replies. */
const TYPES: Readonly<Record<string, Reply>> = {
  'icmp-net-unreachable': icmp(0),
  'icmp-host-unreachable': icmp(1),
  'icmp-proto-unreachable': icmp(2),
  'icmp-port-unreachable': icmp(3),
  'icmp-net-prohibited': icmp(9),
  'icmp-host-prohibited': icmp(10),
  'icmp-admin-prohibited': icmp(13),
  'icmp6-no-route': icmp6(0),
  'icmp6-adm-prohibited': icmp6(1),
  'icmp6-addr-unreachable': icmp6(3),
  'icmp6-port-unreachable': icmp6(4),
  'icmp6-policy-fail': icmp6(5),
  'icmp6-reject-route': icmp6(6),
  'tcp-reset': { reply: { type: 'tcp-reset' } },
};

/** Family-neutral names: the iptables name each becomes per family. */
const NEUTRAL: Readonly<Record<string, Readonly<Record<Family, string>>>> = {
  'port-unreachable': { ipv4: 'icmp-port-unreachable', ipv6: 'icmp6-port-unreachable' },
  'host-unreachable': { ipv4: 'icmp-host-unreachable', ipv6: 'icmp6-addr-unreachable' },
  'admin-prohibited': { ipv4: 'icmp-admin-prohibited', ipv6: 'icmp6-adm-prohibited' },
  'no-route': { ipv4: 'icmp-net-unreachable', ipv6: 'icmp6-no-route' },
};

/** Aliases iptables accepts on input (net-unreach, tcp-rst …). */
const ALIASES: Readonly<Record<string, string>> = {
  'net-unreach': 'icmp-net-unreachable',
  'host-unreach': 'icmp-host-unreachable',
  'proto-unreach': 'icmp-proto-unreachable',
  'port-unreach': 'icmp-port-unreachable',
  'net-prohib': 'icmp-net-prohibited',
  'host-prohib': 'icmp-host-prohibited',
  'admin-prohib': 'icmp-admin-prohibited',
  'tcp-rst': 'tcp-reset',
  'icmp6-adm-prohib': 'icmp6-adm-prohibited',
  'adm-prohibited': 'icmp6-adm-prohibited',
  'addr-unreach': 'icmp6-addr-unreachable',
  'port-unreach6': 'icmp6-port-unreachable',
};

function iptablesName(t: RejectTarget, family: Family): string {
  if (t.with === undefined) return family === 'ipv4' ? 'icmp-port-unreachable' : 'icmp6-port-unreachable';
  return NEUTRAL[t.with]?.[family] ?? t.with;
}

export const rejectKind: TargetKind<RejectTarget> = {
  kind: 'reject',
  doc: 'Drop the packet and answer with an ICMP error or a TCP reset (default: port unreachable).',
  syntax: ['reject [with TYPE]   (tcp-reset, icmp-host-prohibited, icmp6-adm-prohibited, …; port-unreachable, host-unreachable, admin-prohibited, no-route for both families)'],
  keywords: ['reject'],
  tables: ['filter'],

  parse(cur, ctx) {
    const kw = cur.next()!;
    if (!cur.accept('with')) return { kind: 'reject', span: kw.span };
    const w = cur.next();
    const text = w?.type === 'atom' ? w.text : '';
    const name = ALIASES[text] ?? text;
    if (!(name in TYPES) && !(name in NEUTRAL)) {
      ctx.report(
        diag('error', 'E-reject-type', w?.span ?? cur.endSpan, `\`${text}\` is not a reject type`, `one of: ${[...Object.keys(NEUTRAL), ...Object.keys(TYPES)].join(', ')}`),
      );
      return undefined;
    }
    const fam = TYPES[name]?.family;
    if (fam && ctx.family && fam !== ctx.family) {
      ctx.report(diag('error', 'E-reject-family', w!.span, `\`${name}\` is an ${fam === 'ipv4' ? 'IPv4' : 'IPv6'} reject type`, `in a table of both families use ${Object.keys(NEUTRAL).join(', ')} or tcp-reset`));
      return undefined;
    }
    return { kind: 'reject', with: name, span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    return t.with === undefined ? 'reject' : `reject with ${t.with}`;
  },

  effect(t, family) {
    return { type: 'reject', reply: TYPES[iptablesName(t, family)].reply };
  },

  hooks(): readonly Hook[] {
    return ['INPUT', 'FORWARD', 'OUTPUT'];
  },

  forFamily(t, family) {
    const fam = t.with !== undefined ? TYPES[t.with]?.family : undefined;
    return fam === undefined || fam === family ? t : 'never';
  },

  validate(t, rule, report) {
    if (t.with === 'tcp-reset' && !rule.matches.some((m) => m.kind === 'proto' && !m.negated && m.protos.length === 1 && m.protos[0] === PROTO.tcp)) {
      report('E-reject-tcp-reset', t.span, '`reject with tcp-reset` needs the rule to match tcp', 'add `tcp` to the rule (the kernel refuses TCP_RESET for other protocols)');
    }
  },

  iptables: {
    names: ['REJECT'],
    emit(t, ctx) {
      return ['-j', 'REJECT', '--reject-with', iptablesName(t, ctx.family)];
    },
    fromIptables(_name, options, ctx) {
      let withName: string | undefined;
      for (const o of options) {
        const n = ALIASES[o.args[0] ?? ''] ?? o.args[0] ?? '';
        if (o.name !== '--reject-with' || !(n in TYPES)) {
          ctx.report(diag('error', 'E-import-target', o.span, `REJECT does not take \`${o.name} ${o.args.join(' ')}\``));
          continue;
        }
        withName = n;
      }
      // The family's default is what iptables-save prints for a plain REJECT: keep it implicit.
      const dflt = ctx.family === 'ipv4' ? 'icmp-port-unreachable' : 'icmp6-port-unreachable';
      return { kind: 'reject', ...(withName !== undefined && withName !== dflt ? { with: withName } : {}), span: ctx.span };
    },
  },
};
