import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import type { TargetKind } from '../kind.js';

/**
 * `jump CHAIN` (-j): run a user chain, come back on RETURN or at its end.
 * `goto CHAIN` (-g): run it and do not come back here; its RETURN returns to our caller.
 */
export interface JumpTarget {
  readonly kind: 'jump';
  readonly mode: 'jump' | 'goto';
  readonly chain: string;
  readonly span: Span;
}

/** iptables chain names: up to 28 characters (XT_EXTENSION_MAXNAMELEN - 1), no blanks, not starting with '-' or '!'. */
export const CHAIN_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.+:@%=-]{0,27}$/;

export const jumpKind: TargetKind<JumpTarget> = {
  kind: 'jump',
  doc: 'Continue in a user chain: jump returns here afterwards, goto does not.',
  syntax: ['jump CHAIN', 'goto CHAIN'],
  keywords: ['jump', 'goto'],

  parse(cur, ctx) {
    const kw = cur.next() as { text: 'jump' | 'goto'; span: Span };
    const w = cur.next();
    if (w?.type !== 'atom' || !CHAIN_NAME_RE.test(w.text)) {
      ctx.report(diag('error', 'E-bad-chain-name', w?.span ?? cur.endSpan, `\`${kw.text}\` needs a user chain name`, 'letters, digits, _ . - ; at most 28 characters'));
      return undefined;
    }
    return { kind: 'jump', mode: kw.text, chain: w.text, span: { ...kw.span, end: w.span.end } };
  },

  print(t) {
    return `${t.mode} ${t.chain}`;
  },

  effect(t) {
    return t.mode === 'jump' ? { type: 'jump', chain: t.chain } : { type: 'goto', chain: t.chain };
  },

  iptables: {
    // Any name that is not a known target is a user chain; the importer checks it exists.
    names: [],
    emit(t) {
      return [t.mode === 'jump' ? '-j' : '-g', t.chain];
    },
    fromIptables(name, options, ctx) {
      if (options.length > 0) {
        ctx.report(diag('error', 'E-import-target', options[0].span, `a jump to chain ${name} takes no options`));
      }
      return { kind: 'jump', mode: ctx.isGoto ? 'goto' : 'jump', chain: name, span: ctx.span };
    },
  },
};
