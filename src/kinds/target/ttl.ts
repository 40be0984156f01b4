import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { TargetKind } from '../kind.js';

/**
 * `ttl set N | ttl inc N | ttl dec N` (-j TTL --ttl-set/--ttl-inc/--ttl-dec; IPv6: -j HL
 * --hl-…): rewrite the TTL / hop limit and continue. inc/dec stop at 255/0. mangle table only.
 */
export interface TtlTarget {
  readonly kind: 'ttl-set';
  readonly op: 'set' | 'inc' | 'dec';
  readonly value: number;
  readonly span: Span;
}

export const ttlTargetKind: TargetKind<TtlTarget> = {
  kind: 'ttl-set',
  doc: 'Set, increase or decrease the IPv4 TTL / IPv6 hop limit (mangle table), then continue.',
  syntax: ['ttl set|inc|dec N'],
  keywords: ['ttl', 'hoplimit'],
  tables: ['mangle'],

  accepts(cur) {
    const w = cur.peekAtom(1);
    return w === 'set' || w === 'inc' || w === 'dec';
  },

  parse(cur, ctx) {
    const kw = cur.next()!;
    const op = cur.next() as { text: 'set' | 'inc' | 'dec' };
    const w = cur.next();
    const v = w?.type === 'atom' && /^\d+$/.test(w.text) ? Number(w.text) : undefined;
    if (v === undefined || v > 255 || (op.text !== 'set' && v === 0)) {
      ctx.report(diag('error', 'E-ttl', w?.span ?? cur.endSpan, `\`ttl ${op.text}\` needs a number ${op.text === 'set' ? '0' : '1'}-255`));
      return undefined;
    }
    return { kind: 'ttl-set', op: op.text, value: v, span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    return `ttl ${t.op} ${t.value}`;
  },

  effect(t) {
    return { type: 'continue', actions: [{ type: 'rewrite-ttl', op: t.op, value: t.value }] };
  },

  iptables: {
    names: ['TTL', 'HL'],
    emit(t, ctx) {
      return ctx.family === 'ipv4' ? ['-j', 'TTL', `--ttl-${t.op}`, String(t.value)] : ['-j', 'HL', `--hl-${t.op}`, String(t.value)];
    },
    fromIptables(_name, options, ctx) {
      const o = options[0];
      const m = o ? /^--(?:ttl|hl)-(set|inc|dec)$/.exec(o.name) : null;
      if (!m || !/^\d+$/.test(o!.args[0] ?? '')) {
        ctx.report(diag('error', 'E-import-target', o?.span ?? ctx.span, 'TTL/HL needs --ttl-set, --ttl-inc or --ttl-dec N'));
        return undefined;
      }
      return { kind: 'ttl-set', op: m[1] as 'set' | 'inc' | 'dec', value: Number(o!.args[0]), span: ctx.span };
    },
  },
};
