import { type Constraint, and, eq, not, or, present } from '../../ir/constraint.js';
import { PROTO } from '../../ir/fields.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/**
 * ICMP / ICMPv6 type and code: `icmp type echo-request`, `icmpv6 type != 1 code 4`,
 * `icmp type any`. iptables: `-m icmp --icmp-type 8`, `3/3`, `any`; `-m icmp6 --icmpv6-type`.
 * Names are iptables' own (`port-unreachable` is type 3 code 3 for IPv4, 1/4 for IPv6). Without
 * a code every code matches. `!=` inverts the whole test but still needs an ICMP header: a
 * non-first fragment never matches (xt_icmp / ip6t_icmp6).
 */
/** One ICMP type, with one code or (absent) every code; `any` is every type. */
export interface IcmpTypeSpec {
  /** 0-254, or 'any'. */
  readonly type: number | 'any';
  /** Exactly this code; absent: every code. */
  readonly code?: number;
}

export interface IcmpMatch {
  readonly kind: 'icmp';
  /** ICMPv6 (ip6tables -m icmp6) rather than ICMP. */
  readonly v6: boolean;
  readonly negated: boolean;
  /**
   * The types written, in order: `type echo-request` has one, `type { echo-request, 3/4 }`
   * several (the packet matches if it has any of them). iptables takes one per `-m icmp`, so the
   * emitter writes one rule per type, or for `!=` one negated `-m icmp` section per type.
   */
  readonly types: readonly IcmpTypeSpec[];
  readonly span: Span;
}

type Named = readonly [name: string, type: number, code?: number];

/** iptables' ICMP names (libipt_icmp), first name of a pair is the one nfproof prints. */
export const ICMP_NAMES: readonly Named[] = [
  ['echo-reply', 0],
  ['destination-unreachable', 3],
  ['network-unreachable', 3, 0],
  ['host-unreachable', 3, 1],
  ['protocol-unreachable', 3, 2],
  ['port-unreachable', 3, 3],
  ['fragmentation-needed', 3, 4],
  ['source-route-failed', 3, 5],
  ['network-unknown', 3, 6],
  ['host-unknown', 3, 7],
  ['network-prohibited', 3, 9],
  ['host-prohibited', 3, 10],
  ['TOS-network-unreachable', 3, 11],
  ['TOS-host-unreachable', 3, 12],
  ['communication-prohibited', 3, 13],
  ['host-precedence-violation', 3, 14],
  ['precedence-cutoff', 3, 15],
  ['source-quench', 4],
  ['redirect', 5],
  ['network-redirect', 5, 0],
  ['host-redirect', 5, 1],
  ['TOS-network-redirect', 5, 2],
  ['TOS-host-redirect', 5, 3],
  ['echo-request', 8],
  ['router-advertisement', 9],
  ['router-solicitation', 10],
  ['time-exceeded', 11],
  ['ttl-exceeded', 11],
  ['ttl-zero-during-transit', 11, 0],
  ['ttl-zero-during-reassembly', 11, 1],
  ['parameter-problem', 12],
  ['ip-header-bad', 12, 0],
  ['required-option-missing', 12, 1],
  ['timestamp-request', 13],
  ['timestamp-reply', 14],
  ['address-mask-request', 17],
  ['address-mask-reply', 18],
];

/** ip6tables' ICMPv6 names (libip6t_icmp6). */
export const ICMPV6_NAMES: readonly Named[] = [
  ['destination-unreachable', 1],
  ['no-route', 1, 0],
  ['communication-prohibited', 1, 1],
  ['beyond-scope', 1, 2],
  ['address-unreachable', 1, 3],
  ['port-unreachable', 1, 4],
  ['failed-policy', 1, 5],
  ['reject-route', 1, 6],
  ['packet-too-big', 2],
  ['time-exceeded', 3],
  ['ttl-exceeded', 3],
  ['ttl-zero-during-transit', 3, 0],
  ['ttl-zero-during-reassembly', 3, 1],
  ['parameter-problem', 4],
  ['bad-header', 4, 0],
  ['unknown-header-type', 4, 1],
  ['unknown-option', 4, 2],
  ['echo-request', 128],
  ['ping', 128],
  ['echo-reply', 129],
  ['pong', 129],
  ['mld-listener-query', 130],
  ['mld-listener-report', 131],
  ['mld-listener-reduction', 132],
  ['router-solicitation', 133],
  ['router-advertisement', 134],
  ['neighbour-solicitation', 135],
  ['neighbor-solicitation', 135],
  ['neighbour-advertisement', 136],
  ['neighbor-advertisement', 136],
  ['redirect', 137],
];

/** One type as a set element: its name when it has one, else TYPE or TYPE/CODE. */
function specText(v6: boolean, t: IcmpTypeSpec): string {
  if (t.type === 'any') return 'any';
  return nameOf(v6, t.type, t.code) ?? (t.code === undefined ? String(t.type) : `${t.type}/${t.code}`);
}

function specConstraint(t: IcmpTypeSpec): Constraint {
  if (t.type === 'any') return present('icmptype');
  return and(eq('icmptype', t.type), ...(t.code !== undefined ? [eq('icmpcode', t.code)] : []));
}

function nameOf(v6: boolean, type: number, code: number | undefined): string | undefined {
  return (v6 ? ICMPV6_NAMES : ICMP_NAMES).find(([, t, c]) => t === type && c === code)?.[0];
}

function lookup(v6: boolean, text: string): { type: number | 'any'; code?: number } | undefined {
  // Only IPv4's xt_icmp has the wildcard type 0xff; ip6t_icmp6 compares the type exactly and
  // ip6tables refuses `--icmpv6-type any` (checked on the kernel).
  if (text === 'any') return v6 ? undefined : { type: 'any' };
  const named = (v6 ? ICMPV6_NAMES : ICMP_NAMES).find(([n]) => n.toLowerCase() === text.toLowerCase());
  if (named) return named[2] === undefined ? { type: named[1] } : { type: named[1], code: named[2] };
  const m = /^(\d{1,3})(?:\/(\d{1,3}))?$/.exec(text);
  if (!m || Number(m[1]) > 254 || (m[2] !== undefined && Number(m[2]) > 255)) return undefined;
  return m[2] === undefined ? { type: Number(m[1]) } : { type: Number(m[1]), code: Number(m[2]) };
}

/** `icmp` or `icmpv6` in the rule so far, or the family's, for `type`. */
function whichIcmp(previous: readonly { kind: string; negated?: boolean; protos?: readonly number[] }[], family?: string): boolean | undefined {
  for (let i = previous.length - 1; i >= 0; i--) {
    const p = previous[i];
    if (p.kind === 'proto' && !p.negated && p.protos?.length === 1) {
      if (p.protos[0] === PROTO.icmp) return false;
      if (p.protos[0] === PROTO.icmpv6) return true;
    }
  }
  return family === 'ipv6' ? true : family === 'ipv4' ? false : undefined;
}

export const icmpKind: MatchKind<IcmpMatch> = {
  kind: 'icmp',
  doc: 'ICMP or ICMPv6 type (and code), by iptables name or number, after `icmp` / `icmpv6`.',
  syntax: ['type [!=] NAME|TYPE|any [code CODE]   (after icmp or icmpv6)', 'type [!=] { NAME|TYPE[/CODE]|any, … }'],
  keywords: ['type'],
  inFlows: true,

  parse(cur, ctx) {
    const kw = cur.next()!;
    const v6 = whichIcmp(ctx.previous as never, ctx.family);
    if (v6 === undefined) {
      ctx.report(diag('error', 'E-icmp-type-protocol', kw.span, '`type` needs `icmp` or `icmpv6` before it', 'e.g. icmp type echo-request, icmpv6 type neighbour-solicitation'));
      return undefined;
    }
    const negated = cur.acceptNegation();
    const w = cur.next();
    const what = `${v6 ? 'ICMPv6' : 'ICMP'} type`;
    const hint = v6
      ? 'a name such as echo-request, neighbour-solicitation, packet-too-big, TYPE/CODE, a number 0-254, or a set { … } of them (ICMPv6 has no `any`: leave `type` out to match every ICMPv6 packet)'
      : 'a name such as echo-request, destination-unreachable, port-unreachable, TYPE/CODE, a number 0-254, any, or a set { … } of them';
    if (w?.type === 'set') {
      // A set: each element one type (a name, TYPE or TYPE/CODE); `code` is for single types.
      const types: IcmpTypeSpec[] = [];
      for (const item of w.items) {
        const one = item.length === 1 && item[0].type === 'atom' ? lookup(v6, item[0].text) : undefined;
        if (!one) {
          ctx.report(diag('error', 'E-icmp-type', (item[0] ?? w).span, `expected an ${what} as a set element`, hint));
          return undefined;
        }
        types.push(one);
      }
      return { kind: 'icmp', v6, negated, types, span: clauseSpan(kw.span, cur) };
    }
    const found = w?.type === 'atom' ? lookup(v6, w.text) : undefined;
    if (!found) {
      ctx.report(diag('error', 'E-icmp-type', w?.span ?? cur.endSpan, `expected an ${what}`, hint));
      return undefined;
    }
    let code = found.code;
    if (cur.peekAtom() === 'code') {
      const cw = cur.next()!;
      const c = cur.next();
      const n = c?.type === 'atom' && /^\d{1,3}$/.test(c.text) ? Number(c.text) : undefined;
      if (n === undefined || n > 255 || found.type === 'any' || found.code !== undefined) {
        ctx.report(diag('error', 'E-icmp-code', c?.span ?? cw.span, '`code` needs a number 0-255 after a type without a code', 'e.g. icmp type 3 code 1'));
        return undefined;
      }
      code = n;
    }
    return { kind: 'icmp', v6, negated, types: [{ type: found.type, ...(code !== undefined ? { code } : {}) }], span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    const neg = m.negated ? '!= ' : '';
    if (m.types.length === 1) {
      const t = m.types[0];
      if (t.type === 'any') return `type ${neg}any`;
      const name = nameOf(m.v6, t.type, t.code);
      if (name) return `type ${neg}${name}`;
      const typeName = nameOf(m.v6, t.type, undefined) ?? String(t.type);
      return `type ${neg}${typeName}${t.code !== undefined ? ` code ${t.code}` : ''}`;
    }
    return `type ${neg}{ ${m.types.map((t) => specText(m.v6, t)).join(', ')} }`;
  },

  forFamily(m, family) {
    return m.v6 === (family === 'ipv6') ? m : 'never';
  },

  constraint(m): Constraint {
    const test = or(...m.types.map(specConstraint));
    return m.negated ? and(present('icmptype'), not(test)) : test;
  },

  validate(m, rule, report) {
    const want = m.v6 ? PROTO.icmpv6 : PROTO.icmp;
    if (!rule.matches.some((x) => x.kind === 'proto' && !x.negated && x.protos.length === 1 && x.protos[0] === want)) {
      report('E-icmp-type-protocol', m.span, `\`type\` needs the rule to match ${m.v6 ? 'icmpv6' : 'icmp'}`, `add \`${m.v6 ? 'icmpv6' : 'icmp'}\` before it`);
    }
  },

  iptables: {
    split(m) {
      // Any of several types: one rule per type. `!=` a set stays one rule (see emit).
      return m.negated || m.types.length === 1 ? [m] : m.types.map((t) => ({ ...m, types: [t] }));
    },
    emit(m) {
      // A negated set is "none of these": one `! --icmp-type` section per type, all in the rule.
      return m.types.map((t, i) => {
        const value = t.type === 'any' ? 'any' : `${t.type}${t.code !== undefined ? `/${t.code}` : ''}`;
        const args = [...(m.negated ? ['!'] : []), m.v6 ? '--icmpv6-type' : '--icmp-type', value];
        return { module: m.v6 ? 'icmp6' : 'icmp', args, order: 0, ...(i > 0 ? { newSection: true } : {}) };
      });
    },
    claims: [
      { module: 'icmp', options: ['--icmp-type'] },
      { module: 'icmp6', options: ['--icmpv6-type'] },
    ],
    fromIptables(module, options, ctx) {
      const out: IcmpMatch[] = [];
      const v6 = module === 'icmp6';
      for (const o of options) {
        const found = lookup(v6, o.args[0] ?? '');
        if (!found) {
          ctx.report(diag('error', 'E-import-option', o.span, `\`${o.name} ${o.args[0] ?? ''}\` is not an ${v6 ? 'ICMPv6' : 'ICMP'} type`));
          continue;
        }
        out.push({ kind: 'icmp', v6, negated: o.negated, types: [found], span: o.span });
      }
      return out;
    },
  },
};
