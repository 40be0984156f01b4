import type { Span } from '../../util/span.js';
import type { TargetKind } from '../kind.js';

/**
 * `counter`: a rule without a target. iptables allows `-A FORWARD -s 10.0.0.1` with no -j; it
 * only counts the packets that match (accounting rules) and lets them go on to the next rule.
 * The importer uses this kind for such rules; the emitter writes no -j for it.
 */
export interface CounterTarget {
  readonly kind: 'counter';
  readonly span: Span;
}

export const counterKind: TargetKind<CounterTarget> = {
  kind: 'counter',
  doc: 'No verdict: count the matching packets and go on with the next rule (an iptables rule without -j).',
  syntax: ['counter'],
  keywords: ['counter'],

  parse(cur) {
    const w = cur.next() as { span: Span };
    return { kind: 'counter', span: w.span };
  },

  print() {
    return 'counter';
  },

  effect() {
    return { type: 'continue', actions: [] };
  },

  iptables: {
    // Never named after -j: the importer picks this kind when a rule has no target at all.
    names: [],
    emit() {
      return [];
    },
    fromIptables(_name, _options, ctx) {
      return { kind: 'counter', span: ctx.span };
    },
  },
};
