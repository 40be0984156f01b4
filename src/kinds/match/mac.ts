import { type Constraint, inSet } from '../../ir/constraint.js';
import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import { complement, maxOf } from '../../util/intervals.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/**
 * Source MAC address: `ether saddr 00:11:22:33:44:55`, `ether saddr != …`
 * (iptables `-m mac --mac-source`). Only packets that came in from an Ethernet device have one
 * (xt_mac: not loopback, not locally generated), and those without never match, negated or
 * not. The kernel accepts it on PREROUTING, INPUT and FORWARD only.
 */
export interface MacMatch {
  readonly kind: 'mac';
  readonly negated: boolean;
  /** 48-bit address. */
  readonly addr: bigint;
  readonly span: Span;
}

export function parseMac(text: string): bigint | undefined {
  const m = /^([0-9a-fA-F]{1,2})(?::([0-9a-fA-F]{1,2})){5}$/.test(text) ? text.split(':') : undefined;
  if (!m) return undefined;
  return m.reduce((v, b) => (v << 8n) | BigInt(parseInt(b, 16)), 0n);
}

export function formatMac(v: bigint): string {
  const out: string[] = [];
  for (let i = 5; i >= 0; i--) out.push(((v >> BigInt(i * 8)) & 0xffn).toString(16).padStart(2, '0'));
  return out.join(':');
}

export const macKind: MatchKind<MacMatch> = {
  kind: 'mac',
  doc: 'Source MAC address of a packet received from an Ethernet device.',
  syntax: ['ether saddr [!=] MAC'],
  keywords: ['ether'],
  inFlows: true,

  parse(cur, ctx) {
    const kw = cur.next()!;
    if (!cur.accept('saddr')) {
      ctx.report(diag('error', 'E-ether', cur.here(), 'only `ether saddr` can be tested (iptables -m mac --mac-source)', 'e.g. ether saddr 00:11:22:33:44:55'));
      return undefined;
    }
    const negated = cur.acceptNegation();
    const w = cur.next();
    const addr = w?.type === 'atom' ? parseMac(w.text) : undefined;
    if (addr === undefined) {
      ctx.report(diag('error', 'E-bad-mac', w?.span ?? cur.endSpan, 'expected a MAC address', 'six hex bytes separated by colons, e.g. 00:11:22:33:44:55'));
      return undefined;
    }
    return { kind: 'mac', negated, addr, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    return `ether saddr ${m.negated ? '!= ' : ''}${formatMac(m.addr)}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const set = [[m.addr, m.addr] as const];
    return inSet('macsrc', m.negated ? complement(set, maxOf(48)) : set);
  },

  hooks(): readonly Hook[] {
    return ['PREROUTING', 'INPUT', 'FORWARD'];
  },

  iptables: {
    emit(m) {
      return [{ module: 'mac', args: [...(m.negated ? ['!'] : []), '--mac-source', formatMac(m.addr)], order: 0 }];
    },
    claims: [{ module: 'mac', options: ['--mac-source'] }],
    fromIptables(_module, options, ctx) {
      const out: MacMatch[] = [];
      for (const o of options) {
        const addr = parseMac(o.args[0] ?? '');
        if (addr === undefined) {
          ctx.report(diag('error', 'E-import-option', o.span, `\`${o.args[0] ?? ''}\` is not a MAC address`));
          continue;
        }
        out.push({ kind: 'mac', negated: o.negated, addr, span: o.span });
      }
      return out;
    },
  },
};
