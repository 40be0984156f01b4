import type { Span } from '../../util/span.js';
import type { TargetKind } from '../kind.js';

/** `return` (-j RETURN): leave this chain; in a built-in chain, its policy decides. */
export interface ReturnTarget {
  readonly kind: 'return';
  readonly span: Span;
}

export const returnKind: TargetKind<ReturnTarget> = {
  kind: 'return',
  doc: 'Leave the current chain: continue after the jump that led here (built-in chain: apply its policy).',
  syntax: ['return'],
  keywords: ['return'],

  parse(cur) {
    return { kind: 'return', span: cur.next()!.span };
  },

  print() {
    return 'return';
  },

  effect() {
    return { type: 'return' };
  },

  iptables: {
    names: ['RETURN'],
    emit() {
      return ['-j', 'RETURN'];
    },
    fromIptables(_name, _options, ctx) {
      return { kind: 'return', span: ctx.span };
    },
  },
};
