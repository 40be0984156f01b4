import type { SideEffect } from '../../ir/effect.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import type { DslContext, WordCursor } from '../dsl.js';
import { clauseSpan, hex } from '../helpers.js';
import type { ImportedOption, ImportContext } from '../iptables.js';
import type { TargetKind } from '../kind.js';
import { parseValueMask } from '../values.js';

/**
 * Set the packet mark (-j MARK) or the connection mark (-j CONNMARK), then continue:
 *
 *   mark set V[/M]          clear the bits of M, then xor V: (mark & ~M) ^ V — iptables'
 *                           --set-xmark; with V inside M it sets the bits of M to V (--set-mark)
 *   mark and V | or V | xor V   shorthands, stored as the same (M, V) pair
 *   ct mark set V[/M]  …    the same on the connection mark (CONNMARK --set-xmark)
 *   ct mark save [nfmask M] [ctmask M]      ctmark = (ctmark & ~ctmask) ^ (mark & nfmask)
 *   ct mark restore [nfmask M] [ctmask M]   mark = (mark & ~nfmask) ^ (ctmark & ctmask)
 *
 * iptables-save always prints the xmark form (`--set-xmark 0x1/0xffffffff`).
 */
export interface MarkTarget {
  readonly kind: 'mark-set';
  readonly field: 'mark' | 'ctmark';
  /** xmark: field = (field & ~mask) ^ xor. */
  readonly op: { readonly type: 'xmark'; readonly mask: bigint; readonly xor: bigint } | { readonly type: 'save' | 'restore'; readonly nfmask: bigint; readonly ctmask: bigint };
  readonly span: Span;
}

const ALL = 0xffffffffn;

function readXmark(cur: WordCursor, ctx: DslContext): { mask: bigint; xor: bigint } | undefined {
  const op = cur.accept('set', 'and', 'or', 'xor');
  const w = cur.next();
  const text = w?.type === 'atom' ? w.text : '';
  const vm = op?.text === 'set' ? parseValueMask(text, ALL) : /\//.test(text) ? undefined : parseValueMask(text, ALL);
  if (!op || !vm) {
    ctx.report(diag('error', 'E-bad-mark', w?.span ?? cur.here(), 'expected `set VALUE[/MASK]`, `and V`, `or V` or `xor V`', 'marks are 32-bit numbers, decimal or hex: mark set 0x1/0xff'));
    return undefined;
  }
  switch (op.text) {
    case 'set':
      return { mask: vm.mask, xor: vm.value };
    case 'and':
      return { mask: ALL ^ vm.value, xor: 0n };
    case 'or':
      return { mask: vm.value, xor: vm.value };
    default:
      return { mask: 0n, xor: vm.value };
  }
}

function printXmark(mask: bigint, xor: bigint): string {
  if (mask === 0n) return `xor ${hex(xor)}`;
  return mask === ALL ? `set ${hex(xor)}` : `set ${hex(xor)}/${hex(mask)}`;
}

export const markTargetKind: TargetKind<MarkTarget> = {
  kind: 'mark-set',
  doc: 'Set the packet mark (mark set) or the connection mark (ct mark set/save/restore) and continue.',
  syntax: [
    'mark set VALUE[/MASK] | mark and|or|xor VALUE   (meta mark set … is the same)',
    'ct mark set VALUE[/MASK] | ct mark and|or|xor VALUE',
    'ct mark save|restore [nfmask MASK] [ctmask MASK]',
  ],
  keywords: ['mark', 'ct', 'meta'],

  accepts(cur) {
    const first = cur.peekAtom();
    const ct = first === 'ct';
    const two = ct || first === 'meta';
    if (two && cur.peekAtom(1) !== 'mark') return false;
    const w = cur.peekAtom(two ? 2 : 1);
    return w === 'set' || w === 'and' || w === 'or' || w === 'xor' || (ct && (w === 'save' || w === 'restore'));
  },

  parse(cur, ctx) {
    const kw = cur.next() as { text: string; span: Span };
    const field = kw.text === 'ct' ? 'ctmark' : 'mark';
    if (kw.text === 'ct' || kw.text === 'meta') cur.next(); // `mark`
    const sr = field === 'ctmark' ? cur.accept('save', 'restore') : undefined;
    if (sr) {
      let nfmask = ALL;
      let ctmask = ALL;
      for (let w = cur.accept('nfmask', 'ctmask'); w; w = cur.accept('nfmask', 'ctmask')) {
        const v = cur.next();
        const n = v?.type === 'atom' ? parseValueMask(v.text, ALL) : undefined;
        if (!n || /\//.test((v as { text: string }).text)) {
          ctx.report(diag('error', 'E-bad-mark', v?.span ?? cur.endSpan, `\`${w.text}\` needs a 32-bit mask`));
          return undefined;
        }
        if (w.text === 'nfmask') nfmask = n.value;
        else ctmask = n.value;
      }
      return { kind: 'mark-set', field, op: { type: sr.text as 'save' | 'restore', nfmask, ctmask }, span: clauseSpan(kw.span, cur) };
    }
    const x = readXmark(cur, ctx);
    if (!x) return undefined;
    return { kind: 'mark-set', field, op: { type: 'xmark', ...x }, span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    const head = t.field === 'ctmark' ? 'ct mark' : 'mark';
    if (t.op.type === 'xmark') return `${head} ${printXmark(t.op.mask, t.op.xor)}`;
    const masks = [...(t.op.nfmask !== ALL ? [`nfmask ${hex(t.op.nfmask)}`] : []), ...(t.op.ctmask !== ALL ? [`ctmask ${hex(t.op.ctmask)}`] : [])];
    return [head, t.op.type, ...masks].join(' ');
  },

  effect(t) {
    let action: SideEffect;
    if (t.op.type === 'xmark') action = { type: 'xmark', field: t.field, mask: t.op.mask, xor: t.op.xor };
    else if (t.op.type === 'save') action = { type: 'copy-mark', from: 'mark', to: 'ctmark', fromMask: t.op.nfmask, toMask: t.op.ctmask };
    else action = { type: 'copy-mark', from: 'ctmark', to: 'mark', fromMask: t.op.ctmask, toMask: t.op.nfmask };
    return { type: 'continue', actions: [action] };
  },

  iptables: {
    names: ['MARK', 'CONNMARK'],
    emit(t) {
      const name = t.field === 'ctmark' ? 'CONNMARK' : 'MARK';
      if (t.op.type === 'xmark') return ['-j', name, '--set-xmark', `${hex(t.op.xor)}/${hex(t.op.mask)}`];
      return ['-j', name, t.op.type === 'save' ? '--save-mark' : '--restore-mark', '--nfmask', hex(t.op.nfmask), '--ctmask', hex(t.op.ctmask)];
    },
    fromIptables(name, options, ctx) {
      return importMark(name === 'CONNMARK' ? 'ctmark' : 'mark', options, ctx);
    },
  },
};

function importMark(field: 'mark' | 'ctmark', options: readonly ImportedOption[], ctx: ImportContext & { span: Span }): MarkTarget | undefined {
  let op: MarkTarget['op'] | undefined;
  let nfmask = ALL;
  let ctmask = ALL;
  const bad = (o: ImportedOption) => ctx.report(diag('error', 'E-import-target', o.span, `${field === 'ctmark' ? 'CONNMARK' : 'MARK'} option \`${o.name} ${o.args.join(' ')}\` is not supported`));
  for (const o of options) {
    const vm = parseValueMask(o.args[0] ?? '', ALL);
    switch (o.name) {
      case '--set-xmark':
      case '--set-mark':
        if (!vm) bad(o);
        // --set-mark V/M clears M|V before or-ing V (libxt_MARK stores mask M|V).
        else op = { type: 'xmark', xor: vm.value, mask: o.name === '--set-mark' ? vm.mask | vm.value : vm.mask };
        break;
      case '--and-mark':
      case '--or-mark':
      case '--xor-mark':
        if (!vm) bad(o);
        else op = o.name === '--and-mark' ? { type: 'xmark', mask: ALL ^ vm.value, xor: 0n } : o.name === '--or-mark' ? { type: 'xmark', mask: vm.value, xor: vm.value } : { type: 'xmark', mask: 0n, xor: vm.value };
        break;
      case '--save-mark':
      case '--restore-mark':
        if (field !== 'ctmark') bad(o);
        else op = { type: o.name === '--save-mark' ? 'save' : 'restore', nfmask: ALL, ctmask: ALL };
        break;
      case '--nfmask':
      case '--ctmask':
      case '--mask':
        if (!vm) bad(o);
        else {
          if (o.name !== '--ctmask') nfmask = vm.value;
          if (o.name !== '--nfmask') ctmask = vm.value;
        }
        break;
      default:
        bad(o);
    }
  }
  if (!op) {
    ctx.report(diag('error', 'E-import-target', ctx.span, `${field === 'ctmark' ? 'CONNMARK' : 'MARK'} without an operation`));
    return undefined;
  }
  if (op.type !== 'xmark') op = { ...op, nfmask, ctmask };
  return { kind: 'mark-set', field, op, span: ctx.span };
}
