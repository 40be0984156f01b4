import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { TargetKind } from '../kind.js';

/**
 * `queue [num N | balance FIRST-LAST] [bypass] [fanout]` (-j NFQUEUE): hand the packet to a
 * userspace program, which decides its verdict. `bypass` accepts the packet when no program
 * listens. The outcome is unknown to nfproof (an opaque, terminating effect).
 */
export interface QueueTarget {
  readonly kind: 'queue';
  readonly num: number;
  /** Last queue of a --queue-balance range (num is the first). */
  readonly balanceTo?: number;
  readonly bypass: boolean;
  readonly fanout: boolean;
  readonly span: Span;
}

export const queueKind: TargetKind<QueueTarget> = {
  kind: 'queue',
  doc: 'Queue the packet to userspace (NFQUEUE); the program decides its fate.',
  syntax: ['queue [num N | balance FIRST-LAST] [bypass] [fanout]'],
  keywords: ['queue'],

  parse(cur, ctx) {
    const kw = cur.next()!;
    let num = 0;
    let balanceTo: number | undefined;
    const which = cur.accept('num', 'balance');
    if (which) {
      const w = cur.next();
      const m = w?.type === 'atom' ? /^(\d+)(?:-(\d+))?$/.exec(w.text) : null;
      const lo = m ? Number(m[1]) : NaN;
      const hi = m?.[2] !== undefined ? Number(m[2]) : undefined;
      if (!m || lo > 65535 || (which.text === 'num') !== (hi === undefined) || (hi !== undefined && (hi <= lo || hi > 65535))) {
        ctx.report(diag('error', 'E-queue', w?.span ?? cur.endSpan, which.text === 'num' ? '`num` needs a queue number 0-65535' : '`balance` needs FIRST-LAST with FIRST < LAST'));
        return undefined;
      }
      num = lo;
      if (hi !== undefined) balanceTo = hi;
    }
    const bypass = !!cur.accept('bypass');
    const fanout = !!cur.accept('fanout');
    return { kind: 'queue', num, ...(balanceTo !== undefined ? { balanceTo } : {}), bypass, fanout, span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    return ['queue', t.balanceTo !== undefined ? `balance ${t.num}-${t.balanceTo}` : t.num !== 0 ? `num ${t.num}` : '', t.bypass ? 'bypass' : '', t.fanout ? 'fanout' : '']
      .filter((x) => x !== '')
      .join(' ');
  },

  effect(t) {
    return { type: 'opaque', name: 'NFQUEUE', reason: `queued to userspace (queue ${t.num}${t.balanceTo !== undefined ? `-${t.balanceTo}` : ''}): the verdict is the program's`, terminates: 'yes' };
  },

  iptables: {
    names: ['NFQUEUE'],
    emit(t) {
      const out = ['-j', 'NFQUEUE', ...(t.balanceTo !== undefined ? ['--queue-balance', `${t.num}:${t.balanceTo}`] : ['--queue-num', String(t.num)])];
      if (t.bypass) out.push('--queue-bypass');
      if (t.fanout) out.push('--queue-cpu-fanout');
      return out;
    },
    fromIptables(_name, options, ctx) {
      let num = 0;
      let balanceTo: number | undefined;
      let bypass = false;
      let fanout = false;
      for (const o of options) {
        const a = o.args[0] ?? '';
        if (o.name === '--queue-num' && /^\d+$/.test(a)) num = Number(a);
        else if (o.name === '--queue-balance' && /^\d+:\d+$/.test(a)) [num, balanceTo] = a.split(':').map(Number);
        else if (o.name === '--queue-bypass') bypass = true;
        else if (o.name === '--queue-cpu-fanout') fanout = true;
        else ctx.report(diag('error', 'E-import-target', o.span, `NFQUEUE does not take \`${o.name} ${a}\``));
      }
      return { kind: 'queue', num, ...(balanceTo !== undefined ? { balanceTo } : {}), bypass, fanout, span: ctx.span };
    },
  },
};
