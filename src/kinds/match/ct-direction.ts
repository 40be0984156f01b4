import { type Constraint, eq } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import type { DslContext, WordCursor } from '../dsl.js';
import { clauseSpan } from '../helpers.js';
import type { ImportContext, ImportedOption } from '../iptables.js';
import type { MatchKind } from '../kind.js';
import { CONNTRACK_ORDER } from './ct-status.js';

/**
 * Direction of the packet within its connection: `ct direction original|reply`.
 * iptables: `-m conntrack --ctdir ORIGINAL|REPLY`, which cannot be negated. Packets without a
 * conntrack entry match neither direction.
 */
export interface CtDirectionMatch {
  readonly kind: 'ct-direction';
  readonly dir: 'original' | 'reply';
  readonly span: Span;
}

/** The test after `ct` or `with` (the cursor is on `direction`). */
export function parseCtDirection(cur: WordCursor, ctx: DslContext, first: Span): CtDirectionMatch | undefined {
  cur.next(); // `direction`
  if (cur.peek()?.type === 'neq' || cur.peek()?.type === 'bang') {
    ctx.report(diag('error', 'E-ct-direction-negated', cur.here(), 'iptables cannot negate --ctdir', 'write the other direction: `ct direction reply` instead of `!= original`'));
    return undefined;
  }
  const w = cur.accept('original', 'reply');
  if (!w) {
    ctx.report(diag('error', 'E-bad-keyword', cur.here(), '`ct direction` needs `original` or `reply`'));
    return undefined;
  }
  return { kind: 'ct-direction', dir: w.text as 'original' | 'reply', span: clauseSpan(first, cur) };
}

export function buildCtDirection(o: ImportedOption, ctx: ImportContext): CtDirectionMatch | undefined {
  const v = o.args[0];
  if ((v !== 'ORIGINAL' && v !== 'REPLY') || o.negated) {
    ctx.report(diag('error', 'E-import-ctdir', o.span, `\`--ctdir ${v ?? ''}\` is not ORIGINAL or REPLY`));
    return undefined;
  }
  return { kind: 'ct-direction', dir: v === 'ORIGINAL' ? 'original' : 'reply', span: o.span };
}

export const ctDirectionKind: MatchKind<CtDirectionMatch> = {
  kind: 'ct-direction',
  doc: "The packet's direction in its connection: original (as the first packet) or reply.",
  syntax: ['ct direction original|reply'],
  keywords: ['ct'],
  inFlows: true,

  accepts(cur) {
    return cur.peekAtom(1) === 'direction';
  },

  parse(cur, ctx) {
    const kw = cur.next()!;
    return parseCtDirection(cur, ctx, kw.span);
  },

  print(m) {
    return `ct direction ${m.dir}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    return eq('ctdir', m.dir === 'original' ? 0 : 1);
  },

  iptables: {
    emit(m) {
      return [{ module: 'conntrack', args: ['--ctdir', m.dir.toUpperCase()], order: CONNTRACK_ORDER['--ctdir'] }];
    },
    claims: [],
    fromIptables() {
      return [];
    },
  },
};
