import { type Constraint, inSet } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import { complement, maxOf } from '../../util/intervals.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/**
 * Packet length: `length 0-64`, `length != 1500` (iptables `-m length --length N[:M]`): the IPv4
 * total length, or the IPv6 payload length plus the 40-byte header (xt_length.c).
 */
export interface LengthMatch {
  readonly kind: 'length';
  readonly negated: boolean;
  readonly range: readonly [number, number];
  readonly span: Span;
}

function parseRange(text: string, sep: string): readonly [number, number] | undefined {
  const parts = text.split(sep);
  if (parts.length > 2 || parts.some((p) => !/^\d*$/.test(p))) return undefined;
  const lo = parts[0] === '' ? 0 : Number(parts[0]);
  const hi = parts.length === 1 ? lo : parts[1] === '' ? 65535 : Number(parts[1]);
  return lo <= hi && hi <= 65535 ? [lo, hi] : undefined;
}

const fmt = ([lo, hi]: readonly [number, number], sep: string) => (lo === hi ? String(lo) : `${lo}${sep}${hi}`);

export const lengthKind: MatchKind<LengthMatch> = {
  kind: 'length',
  doc: 'Packet length (IP total length; IPv6: payload length + 40) in a range.',
  syntax: ['length [!=] N[-M]'],
  keywords: ['length'],
  inFlows: true,

  parse(cur, ctx) {
    const kw = cur.next()!;
    const negated = cur.acceptNegation();
    const w = cur.next();
    const range = w?.type === 'atom' ? parseRange(w.text, '-') : undefined;
    if (!range) {
      ctx.report(diag('error', 'E-length', w?.span ?? cur.endSpan, '`length` needs N or N-M (0-65535)', 'e.g. length 0-128'));
      return undefined;
    }
    return { kind: 'length', negated, range, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    return `length ${m.negated ? '!= ' : ''}${fmt(m.range, '-')}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const set = [[BigInt(m.range[0]), BigInt(m.range[1])] as const];
    return inSet('length', m.negated ? complement(set, maxOf(16)) : set);
  },

  iptables: {
    emit(m) {
      return [{ module: 'length', args: [...(m.negated ? ['!'] : []), '--length', fmt(m.range, ':')], order: 0 }];
    },
    claims: [{ module: 'length', options: ['--length'] }],
    fromIptables(_module, options, ctx) {
      const out: LengthMatch[] = [];
      for (const o of options) {
        const range = parseRange(o.args[0] ?? '', ':');
        if (!range) ctx.report(diag('error', 'E-import-option', o.span, `\`--length ${o.args[0] ?? ''}\` is not a length range`));
        else out.push({ kind: 'length', negated: o.negated, range, span: o.span });
      }
      return out;
    },
  },
};
