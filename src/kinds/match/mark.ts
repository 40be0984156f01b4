import { type Constraint, and, masked, not, present } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan, hex } from '../helpers.js';
import type { MatchKind } from '../kind.js';
import { parseValueMask } from '../values.js';

/**
 * Packet mark and connection mark: `mark 0x1`, `mark != 0x10/0xf0`, `ct mark 0x2/0xff`.
 * iptables: `-m mark --mark V[/M]`, `-m connmark --mark V[/M]`. The kernel tests
 * (mark & M) == V, so a V with bits outside M never matches. The connection mark needs a
 * conntrack entry: invalid and untracked packets never match `ct mark`, negated or not.
 */
export interface MarkMatch {
  readonly kind: 'mark';
  /** `mark` = skb->mark (-m mark), `ctmark` = the connection's mark (-m connmark). */
  readonly field: 'mark' | 'ctmark';
  readonly negated: boolean;
  readonly value: bigint;
  readonly mask: bigint;
  readonly span: Span;
}

const ALL = 0xffffffffn;
/** Words after `mark` / `ct mark` that make it a target (mark set …, ct mark save …). */
export const MARK_TARGET_WORDS = ['set', 'and', 'or', 'xor', 'save', 'restore'];

export function formatValueMask(value: bigint, mask: bigint): string {
  return mask === ALL ? hex(value) : `${hex(value)}/${hex(mask)}`;
}

export const markKind: MatchKind<MarkMatch> = {
  kind: 'mark',
  doc: 'Packet mark (mark) or connection mark (ct mark), optionally under a mask: (mark & MASK) == VALUE.',
  syntax: ['mark [!=] VALUE[/MASK]   (meta mark … is the same)', 'ct mark [!=] VALUE[/MASK]'],
  keywords: ['mark', 'ct', 'meta'],
  inFlows: true,

  accepts(cur) {
    // `ct mark …` and nftables' `meta mark …` have one word before `mark`.
    const first = cur.peekAtom();
    const two = first === 'ct' || first === 'meta';
    if (two && cur.peekAtom(1) !== 'mark') return false;
    const next = cur.peekAtom(two ? 2 : 1);
    return !(next !== undefined && MARK_TARGET_WORDS.includes(next));
  },

  parse(cur, ctx) {
    const kw = cur.next()!;
    const first = kw.type === 'atom' ? kw.text : '';
    const field = first === 'ct' ? 'ctmark' : 'mark';
    if (first === 'ct' || first === 'meta') cur.next();
    const negated = cur.acceptNegation();
    const w = cur.next();
    const vm = w?.type === 'atom' ? parseValueMask(w.text, ALL) : undefined;
    if (!vm) {
      ctx.report(diag('error', 'E-bad-mark', w?.span ?? cur.endSpan, 'expected a mark VALUE or VALUE/MASK', 'numbers up to 0xffffffff, decimal or hex: 0x1, 0x10/0xf0'));
      return undefined;
    }
    return { kind: 'mark', field, negated, value: vm.value, mask: vm.mask, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    return `${m.field === 'ctmark' ? 'ct mark' : 'mark'} ${m.negated ? '!= ' : ''}${formatValueMask(m.value, m.mask)}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const test = masked(m.field, m.mask, m.value);
    if (!m.negated) return test;
    return m.field === 'ctmark' ? and(present('ctmark'), not(test)) : not(test);
  },

  iptables: {
    emit(m) {
      return [{ module: m.field === 'ctmark' ? 'connmark' : 'mark', args: [...(m.negated ? ['!'] : []), '--mark', formatValueMask(m.value, m.mask)], order: 0 }];
    },
    claims: [
      { module: 'mark', options: ['--mark'] },
      { module: 'connmark', options: ['--mark'] },
    ],
    fromIptables(module, options, ctx) {
      const out: MarkMatch[] = [];
      for (const o of options) {
        const vm = parseValueMask(o.args[0] ?? '', ALL);
        if (!vm) {
          ctx.report(diag('error', 'E-import-option', o.span, `\`--mark ${o.args[0] ?? ''}\` is not VALUE[/MASK]`));
          continue;
        }
        out.push({ kind: 'mark', field: module === 'connmark' ? 'ctmark' : 'mark', negated: o.negated, value: vm.value, mask: vm.mask, span: o.span });
      }
      return out;
    },
  },
};
