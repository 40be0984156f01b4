import { diag } from '../../util/diagnostics.js';
import { quoteIptablesString, utf8Length } from '../../util/iptables-quote.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { TargetKind } from '../kind.js';

/**
 * `nflog [group N] [prefix "…"] [size N | range N] [threshold N]` (-j NFLOG): hand a copy of
 * the packet to userspace (ulogd, tcpdump -i nflog:N) and continue with the next rule.
 * `size` copies at most N bytes (--nflog-size, 0 allowed); `range` is the older --nflog-range,
 * which the kernel never applied and iptables-nft drops (kept only for legacy dumps).
 * The prefix holds at most 63 bytes.
 */
export interface NflogTarget {
  readonly kind: 'nflog';
  readonly group: number;
  readonly prefix?: string;
  readonly size?: number;
  readonly range?: number;
  readonly threshold?: number;
  readonly span: Span;
}

const PREFIX_MAX = 63;

export const nflogKind: TargetKind<NflogTarget> = {
  kind: 'nflog',
  doc: 'Pass a copy of the packet to userspace over nfnetlink_log, then continue with the next rule.',
  syntax: ['nflog [group N] [prefix "TEXT"] [size BYTES | range BYTES] [threshold N]'],
  keywords: ['nflog'],

  parse(cur, ctx) {
    const kw = cur.next()!;
    const node: { -readonly [K in keyof NflogTarget]: NflogTarget[K] } = { kind: 'nflog', group: 0, span: kw.span };
    for (;;) {
      const w = cur.peekAtom();
      if (w === 'prefix') {
        cur.next();
        const p = cur.next();
        if (p?.type !== 'string' || utf8Length(p.value) > PREFIX_MAX) {
          ctx.report(diag('error', 'E-nflog', p?.span ?? cur.endSpan, '`prefix` needs a "quoted string" of at most 63 bytes'));
          return undefined;
        }
        node.prefix = p.value;
      } else if (w === 'group' || w === 'size' || w === 'range' || w === 'threshold') {
        cur.next();
        const n = cur.next();
        const max = w === 'group' || w === 'threshold' ? 65535 : 0xffffffff;
        const v = n?.type === 'atom' && /^\d+$/.test(n.text) && Number(n.text) <= max ? Number(n.text) : undefined;
        if (v === undefined) {
          ctx.report(diag('error', 'E-nflog', n?.span ?? cur.endSpan, `\`${w}\` needs a number up to ${max}`));
          return undefined;
        }
        node[w] = v;
      } else break;
    }
    if (node.size !== undefined && node.range !== undefined) {
      ctx.report(diag('error', 'E-nflog', kw.span, '`size` and `range` are two names for the copy length: give one'));
      return undefined;
    }
    return { ...node, span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    const w = ['nflog'];
    if (t.group !== 0) w.push('group', String(t.group));
    if (t.prefix !== undefined) w.push('prefix', JSON.stringify(t.prefix));
    if (t.size !== undefined) w.push('size', String(t.size));
    if (t.range !== undefined) w.push('range', String(t.range));
    if (t.threshold !== undefined) w.push('threshold', String(t.threshold));
    return w.join(' ');
  },

  effect(t) {
    return { type: 'continue', actions: [{ type: 'log', ...(t.prefix !== undefined ? { prefix: t.prefix } : {}), group: t.group }] };
  },

  iptables: {
    names: ['NFLOG'],
    emit(t) {
      const out = ['-j', 'NFLOG'];
      if (t.prefix !== undefined) out.push('--nflog-prefix', quoteIptablesString(t.prefix));
      if (t.group !== 0) out.push('--nflog-group', String(t.group));
      if (t.size !== undefined) out.push('--nflog-size', String(t.size));
      if (t.range !== undefined && t.range !== 0) out.push('--nflog-range', String(t.range));
      if (t.threshold !== undefined && t.threshold !== 0) out.push('--nflog-threshold', String(t.threshold));
      return out;
    },
    fromIptables(_name, options, ctx) {
      const node: { -readonly [K in keyof NflogTarget]: NflogTarget[K] } = { kind: 'nflog', group: 0, span: ctx.span };
      for (const o of options) {
        const a = o.args[0] ?? '';
        const key = ({ '--nflog-group': 'group', '--nflog-size': 'size', '--nflog-range': 'range', '--nflog-threshold': 'threshold' } as const)[o.name as '--nflog-group'];
        if (o.name === '--nflog-prefix') node.prefix = a;
        else if (key && /^\d+$/.test(a)) node[key] = Number(a);
        else ctx.report(diag('error', 'E-import-target', o.span, `NFLOG does not take \`${o.name} ${a}\``));
      }
      return node;
    },
  },
};
