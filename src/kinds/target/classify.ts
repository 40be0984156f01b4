import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { TargetKind } from '../kind.js';

/**
 * `classify set MAJOR:MINOR` (-j CLASSIFY --set-class, hex): choose the traffic-control class
 * (skb->priority), then continue. FORWARD, OUTPUT and POSTROUTING only.
 */
export interface ClassifyTarget {
  readonly kind: 'classify';
  readonly major: number;
  readonly minor: number;
  readonly span: Span;
}

function parseClass(text: string): { major: number; minor: number } | undefined {
  const m = /^([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,4})$/.exec(text);
  return m ? { major: parseInt(m[1], 16), minor: parseInt(m[2], 16) } : undefined;
}

const hex4 = (v: number) => v.toString(16).padStart(4, '0');

export const classifyKind: TargetKind<ClassifyTarget> = {
  kind: 'classify',
  doc: 'Set the traffic-control class (tc qdisc class MAJOR:MINOR, hex), then continue.',
  syntax: ['classify set MAJOR:MINOR'],
  keywords: ['classify'],

  parse(cur, ctx) {
    const kw = cur.next()!;
    const w = cur.accept('set') ? cur.next() : undefined;
    const c = w?.type === 'atom' ? parseClass(w.text) : undefined;
    if (!c) {
      ctx.report(diag('error', 'E-classify', w?.span ?? cur.here(), '`classify` needs `set MAJOR:MINOR` (hex)', 'e.g. classify set 1:10'));
      return undefined;
    }
    return { kind: 'classify', ...c, span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    return `classify set ${t.major.toString(16)}:${t.minor.toString(16)}`;
  },

  effect() {
    return { type: 'continue', actions: [{ type: 'unmodelled', name: 'CLASSIFY' }] };
  },

  hooks(): readonly Hook[] {
    return ['FORWARD', 'OUTPUT', 'POSTROUTING'];
  },

  iptables: {
    names: ['CLASSIFY'],
    emit(t) {
      return ['-j', 'CLASSIFY', '--set-class', `${hex4(t.major)}:${hex4(t.minor)}`];
    },
    fromIptables(_name, options, ctx) {
      const c = parseClass(options.find((o) => o.name === '--set-class')?.args[0] ?? '');
      if (!c) {
        ctx.report(diag('error', 'E-import-target', ctx.span, 'CLASSIFY needs --set-class MAJOR:MINOR'));
        return undefined;
      }
      return { kind: 'classify', ...c, span: ctx.span };
    },
  },
};
