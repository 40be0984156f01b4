import { type Constraint, inSet, masked, not } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import { complement, maxOf } from '../../util/intervals.js';
import type { Span } from '../../util/span.js';
import { formatDscp, parseDscp, TOS_NAMES } from '../dscp-names.js';
import { clauseSpan, hex2 } from '../helpers.js';
import type { MatchKind } from '../kind.js';
import { parseValueMask } from '../values.js';

/**
 * DSCP and TOS byte: `dscp ef`, `dscp != 10`, `tos 0x10/0x3f`, `tos minimize-delay`
 * (iptables `-m dscp --dscp 0x2e`, `-m tos --tos 0x10/0x3f`). DSCP is the top six bits of the
 * TOS / traffic-class byte; `tos V/M` tests (tos & M) == V over the whole byte, ECN included.
 */
export type DscpMatch =
  | { readonly kind: 'dscp'; readonly field: 'dscp'; readonly negated: boolean; readonly value: number; readonly span: Span }
  | { readonly kind: 'dscp'; readonly field: 'tos'; readonly negated: boolean; readonly value: number; readonly mask: number; readonly span: Span };

const TARGET_WORDS = ['set', 'and', 'or', 'xor'];

export const dscpKind: MatchKind<DscpMatch> = {
  kind: 'dscp',
  doc: 'DSCP class (top six bits of TOS / traffic class) or the whole TOS byte under a mask.',
  syntax: ['dscp [!=] VALUE|CLASS   (0-63, cs0-cs7, af11-af43, ef)', 'tos [!=] VALUE[/MASK] | minimize-delay | maximize-throughput | maximize-reliability | minimize-cost | normal-service'],
  keywords: ['dscp', 'tos'],
  inFlows: true,

  accepts(cur) {
    const w = cur.peekAtom(1);
    return !(w !== undefined && TARGET_WORDS.includes(w));
  },

  parse(cur, ctx) {
    const kw = cur.next() as { text: 'dscp' | 'tos'; span: Span };
    const negated = cur.acceptNegation();
    const w = cur.next();
    const text = w?.type === 'atom' ? w.text : '';
    if (kw.text === 'dscp') {
      const v = parseDscp(text);
      if (v === undefined) {
        ctx.report(diag('error', 'E-dscp', w?.span ?? cur.endSpan, '`dscp` needs 0-63 or a class name', 'cs0-cs7, af11-af43, ef'));
        return undefined;
      }
      return { kind: 'dscp', field: 'dscp', negated, value: v, span: clauseSpan(kw.span, cur) };
    }
    const named = TOS_NAMES[text.toLowerCase()];
    const vm = named ? { value: BigInt(named[0]), mask: BigInt(named[1]) } : parseValueMask(text, 0xffn);
    if (!vm) {
      ctx.report(diag('error', 'E-tos', w?.span ?? cur.endSpan, '`tos` needs VALUE[/MASK] (8 bits) or a TOS name', 'e.g. tos 0x10/0x3f or tos minimize-delay'));
      return undefined;
    }
    return { kind: 'dscp', field: 'tos', negated, value: Number(vm.value), mask: Number(vm.mask), span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    const neg = m.negated ? '!= ' : '';
    return m.field === 'dscp' ? `dscp ${neg}${formatDscp(m.value)}` : `tos ${neg}${hex2(m.value)}/${hex2(m.mask)}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    if (m.field === 'dscp') {
      const set = [[BigInt(m.value), BigInt(m.value)] as const];
      return inSet('dscp', m.negated ? complement(set, maxOf(6)) : set);
    }
    const test = masked('tos', m.mask, m.value);
    return m.negated ? not(test) : test;
  },

  iptables: {
    emit(m) {
      const neg = m.negated ? ['!'] : [];
      return m.field === 'dscp'
        ? [{ module: 'dscp', args: [...neg, '--dscp', hex2(m.value)], order: 0 }]
        : [{ module: 'tos', args: [...neg, '--tos', `${hex2(m.value)}/${hex2(m.mask)}`], order: 0 }];
    },
    claims: [
      { module: 'dscp', options: ['--dscp', '--dscp-class'] },
      { module: 'tos', options: ['--tos'] },
    ],
    fromIptables(module, options, ctx) {
      const out: DscpMatch[] = [];
      for (const o of options) {
        const a = o.args[0] ?? '';
        if (module === 'dscp') {
          const v = parseDscp(a);
          if (v === undefined) ctx.report(diag('error', 'E-import-option', o.span, `\`${o.name} ${a}\` is not a DSCP value`));
          else out.push({ kind: 'dscp', field: 'dscp', negated: o.negated, value: v, span: o.span });
        } else {
          const named = Object.entries(TOS_NAMES).find(([n]) => n === a.toLowerCase())?.[1];
          const vm = named ? { value: BigInt(named[0]), mask: BigInt(named[1]) } : parseValueMask(a, 0xffn);
          if (!vm) ctx.report(diag('error', 'E-import-option', o.span, `\`--tos ${a}\` is not a TOS value`));
          else out.push({ kind: 'dscp', field: 'tos', negated: o.negated, value: Number(vm.value), mask: Number(vm.mask), span: o.span });
        }
      }
      return out;
    },
  },
};
