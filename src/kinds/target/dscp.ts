import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { formatDscp, parseDscp, TOS_NAMES } from '../dscp-names.js';
import { clauseSpan, hex2 } from '../helpers.js';
import type { TargetKind } from '../kind.js';
import { parseValueMask } from '../values.js';

/**
 * Rewrite the TOS / traffic-class byte and continue (mangle table):
 *
 *   dscp set VALUE|CLASS      -j DSCP --set-dscp 0x2e (the six DSCP bits, ECN kept)
 *   tos set VALUE[/MASK]      -j TOS --set-tos V/M: tos = (tos & ~M) ^ V (mask defaults to 0xff)
 *   tos and|or|xor VALUE      shorthands, stored as the same V/M pair
 */
export type DscpTarget =
  | { readonly kind: 'dscp-set'; readonly field: 'dscp'; readonly value: number; readonly span: Span }
  | { readonly kind: 'dscp-set'; readonly field: 'tos'; readonly value: number; readonly mask: number; readonly span: Span };

export const dscpTargetKind: TargetKind<DscpTarget> = {
  kind: 'dscp-set',
  doc: 'Rewrite the DSCP bits or the TOS byte of the packet (mangle table), then continue.',
  syntax: ['dscp set VALUE|CLASS', 'tos set VALUE[/MASK] | tos and|or|xor VALUE'],
  keywords: ['dscp', 'tos'],
  tables: ['mangle'],

  accepts(cur) {
    const w = cur.peekAtom(1);
    return w === 'set' || (cur.peekAtom() === 'tos' && (w === 'and' || w === 'or' || w === 'xor'));
  },

  parse(cur, ctx) {
    const kw = cur.next() as { text: 'dscp' | 'tos'; span: Span };
    const op = cur.next() as { text: string };
    const w = cur.next();
    const text = w?.type === 'atom' ? w.text : '';
    if (kw.text === 'dscp') {
      const v = parseDscp(text);
      if (v === undefined) {
        ctx.report(diag('error', 'E-dscp', w?.span ?? cur.endSpan, '`dscp set` needs 0-63 or a class name', 'cs0-cs7, af11-af43, ef'));
        return undefined;
      }
      return { kind: 'dscp-set', field: 'dscp', value: v, span: clauseSpan(kw.span, cur) };
    }
    const named = op.text === 'set' ? TOS_NAMES[text.toLowerCase()] : undefined;
    const vm = named ? { value: BigInt(named[0]), mask: BigInt(named[1]) } : parseValueMask(text, 0xffn);
    if (!vm || (op.text !== 'set' && text.includes('/'))) {
      ctx.report(diag('error', 'E-tos', w?.span ?? cur.endSpan, '`tos` needs an 8-bit VALUE[/MASK]', 'e.g. tos set 0x10/0x3f'));
      return undefined;
    }
    const v = Number(vm.value);
    const [value, mask] = op.text === 'set' ? [v, Number(vm.mask)] : op.text === 'and' ? [0, 0xff ^ v] : op.text === 'or' ? [v, v] : [v, 0];
    return { kind: 'dscp-set', field: 'tos', value, mask, span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    if (t.field === 'dscp') return `dscp set ${formatDscp(t.value)}`;
    return t.mask === 0 ? `tos xor ${hex2(t.value)}` : `tos set ${hex2(t.value)}/${hex2(t.mask)}`;
  },

  effect(t) {
    return { type: 'continue', actions: [t.field === 'dscp' ? { type: 'rewrite-tos', mask: 0xfc, xor: t.value << 2 } : { type: 'rewrite-tos', mask: t.mask, xor: t.value }] };
  },

  iptables: {
    names: ['DSCP', 'TOS'],
    emit(t) {
      return t.field === 'dscp' ? ['-j', 'DSCP', '--set-dscp', hex2(t.value)] : ['-j', 'TOS', '--set-tos', `${hex2(t.value)}/${hex2(t.mask)}`];
    },
    fromIptables(name, options, ctx) {
      const o = options[0];
      const a = o?.args[0] ?? '';
      if (name === 'DSCP') {
        const v = parseDscp(a);
        if (v !== undefined && (o?.name === '--set-dscp' || o?.name === '--set-dscp-class')) return { kind: 'dscp-set', field: 'dscp', value: v, span: ctx.span };
      } else {
        const named = TOS_NAMES[a.toLowerCase()];
        const vm = named ? { value: BigInt(named[0]), mask: BigInt(named[1]) } : parseValueMask(a, 0xffn);
        if (vm && o) {
          const v = Number(vm.value);
          const m = Number(vm.mask);
          if (o.name === '--set-tos') return { kind: 'dscp-set', field: 'tos', value: v, mask: m, span: ctx.span };
          if (o.name === '--and-tos') return { kind: 'dscp-set', field: 'tos', value: 0, mask: 0xff ^ v, span: ctx.span };
          if (o.name === '--or-tos') return { kind: 'dscp-set', field: 'tos', value: v, mask: v, span: ctx.span };
          if (o.name === '--xor-tos') return { kind: 'dscp-set', field: 'tos', value: v, mask: 0, span: ctx.span };
        }
      }
      ctx.report(diag('error', 'E-import-target', o?.span ?? ctx.span, `${name} option \`${o?.name ?? ''} ${a}\` is not understood`));
      return undefined;
    },
  },
};
