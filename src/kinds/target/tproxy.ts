import { PROTO } from '../../ir/fields.js';
import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import { formatAddress } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import { clauseSpan, hex } from '../helpers.js';
import type { TargetKind } from '../kind.js';
import { type NatRange, formatNatRange, parseNatRange } from '../nat-range.js';
import { parseValueMask } from '../values.js';

/**
 * `tproxy to [ADDR]:PORT [mark VALUE[/MASK]]` (-j TPROXY --on-port --on-ip --tproxy-mark):
 * deliver the packet to a local transparent-proxy socket without changing it, optionally
 * marking it for policy routing. mangle PREROUTING, tcp or udp rules only. Which socket takes
 * it is outside nfproof's model: an opaque, terminating effect.
 */
export interface TproxyTarget {
  readonly kind: 'tproxy';
  /** Port (required) and optional address. */
  readonly to: NatRange;
  readonly mark?: { readonly value: bigint; readonly mask: bigint };
  readonly span: Span;
}

const ALL = 0xffffffffn;

export const tproxyKind: TargetKind<TproxyTarget> = {
  kind: 'tproxy',
  doc: 'Hand the packet to a local transparent-proxy socket (TPROXY), optionally marking it.',
  syntax: ['tproxy to [ADDR]:PORT [mark VALUE[/MASK]]'],
  keywords: ['tproxy'],
  tables: ['mangle'],

  parse(cur, ctx) {
    const kw = cur.next()!;
    const w = cur.accept('to') ? cur.next() : undefined;
    const r = w?.type === 'atom' ? parseNatRange(w.text) : 'missing';
    if (typeof r === 'string' || !r.ports || r.ports[0] !== r.ports[1] || (r.addr && r.addr[0] !== r.addr[1])) {
      ctx.report(diag('error', 'E-tproxy', w?.span ?? cur.here(), '`tproxy` needs `to [ADDR]:PORT` (one address, one port)', 'e.g. tproxy to :3129 mark 0x1/0x1'));
      return undefined;
    }
    let mark: TproxyTarget['mark'];
    if (cur.accept('mark')) {
      const m = cur.next();
      const vm = m?.type === 'atom' ? parseValueMask(m.text, ALL) : undefined;
      if (!vm) {
        ctx.report(diag('error', 'E-tproxy', m?.span ?? cur.endSpan, '`mark` needs VALUE[/MASK]'));
        return undefined;
      }
      mark = vm;
    }
    return { kind: 'tproxy', to: r, ...(mark ? { mark } : {}), span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    return `tproxy to ${formatNatRange(t.to)}${t.mark ? ` mark ${hex(t.mark.value)}${t.mark.mask !== ALL ? `/${hex(t.mark.mask)}` : ''}` : ''}`;
  },

  effect(t) {
    return { type: 'opaque', name: 'TPROXY', reason: `transparent proxy to port ${t.to.ports?.[0]}: socket lookup is not modelled`, terminates: 'yes' };
  },

  hooks(): readonly Hook[] {
    return ['PREROUTING'];
  },

  forFamily(t, family) {
    return t.to.family === undefined || t.to.family === family ? t : 'never';
  },

  validate(t, rule, report) {
    if (!rule.matches.some((m) => m.kind === 'proto' && !m.negated && m.protos.length === 1 && (m.protos[0] === PROTO.tcp || m.protos[0] === PROTO.udp))) {
      report('E-tproxy-protocol', t.span, '`tproxy` needs the rule to match tcp or udp', 'add `tcp` or `udp` (xt_TPROXY: "Can be used only with -p tcp or -p udp")');
    }
  },

  iptables: {
    names: ['TPROXY'],
    emit(t, ctx) {
      const ip = t.to.addr ? formatAddress(ctx.family, t.to.addr[0]) : ctx.family === 'ipv4' ? '0.0.0.0' : '::';
      const mark = t.mark ?? { value: 0n, mask: 0n };
      return ['-j', 'TPROXY', '--on-port', String(t.to.ports![0]), '--on-ip', ip, '--tproxy-mark', `${hex(mark.value)}/${hex(mark.mask)}`];
    },
    fromIptables(_name, options, ctx) {
      let port: number | undefined;
      let addr: bigint | undefined;
      let mark: TproxyTarget['mark'];
      for (const o of options) {
        const a = o.args[0] ?? '';
        if (o.name === '--on-port' && /^\d+$/.test(a)) port = Number(a);
        else if (o.name === '--on-ip') {
          const r = parseNatRange(a.includes(':') && !a.startsWith('[') ? `[${a}]` : a);
          if (typeof r !== 'string' && r.addr && r.addr[0] !== 0n) addr = r.addr[0];
        } else if (o.name === '--tproxy-mark') {
          const vm = parseValueMask(a, ALL);
          if (vm && !(vm.value === 0n && vm.mask === 0n)) mark = vm;
        } else ctx.report(diag('error', 'E-import-target', o.span, `TPROXY does not take ${o.name}`));
      }
      if (port === undefined) {
        ctx.report(diag('error', 'E-import-target', ctx.span, 'TPROXY needs --on-port'));
        return undefined;
      }
      const to: NatRange = { ...(addr !== undefined ? { family: ctx.family, addr: [addr, addr] as const } : {}), ports: [port, port] };
      return { kind: 'tproxy', to, ...(mark ? { mark } : {}), span: ctx.span };
    },
  },
};
