import { type Constraint, inSet } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import { complement, maxOf } from '../../util/intervals.js';
import type { Family } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/**
 * IPv4 TTL / IPv6 hop limit: `ttl 64`, `ttl != 1`, `ttl < 5`, `ttl > 200` (`lt`/`gt` also).
 * iptables: `-m ttl --ttl-eq/--ttl-lt/--ttl-gt` for IPv4 and `-m hl --hl-…` for IPv6, so one
 * DSL clause serves both families. Only equality can be negated (`! --ttl-eq`).
 */
export interface TtlMatch {
  readonly kind: 'ttl';
  readonly op: 'eq' | 'ne' | 'lt' | 'gt';
  readonly value: number;
  readonly span: Span;
}

const OPS = { '<': 'lt', lt: 'lt', '>': 'gt', gt: 'gt' } as const;
const TARGET_WORDS = ['set', 'inc', 'dec'];

function optionPrefix(family: Family): string {
  return family === 'ipv4' ? '--ttl' : '--hl';
}

export const ttlKind: MatchKind<TtlMatch> = {
  kind: 'ttl',
  doc: 'IPv4 TTL or IPv6 hop limit: equal, not equal, less or greater than a value.',
  syntax: ['ttl [!=|<|>] N   (hoplimit is the same)'],
  keywords: ['ttl', 'hoplimit'],
  inFlows: true,

  accepts(cur) {
    const w = cur.peekAtom(1);
    return !(w !== undefined && TARGET_WORDS.includes(w));
  },

  parse(cur, ctx) {
    const kw = cur.next()!;
    let op: TtlMatch['op'] = 'eq';
    if (cur.acceptNegation()) op = 'ne';
    else {
      const o = cur.accept('<', '>', 'lt', 'gt');
      if (o) op = OPS[o.text as keyof typeof OPS];
    }
    const w = cur.next();
    const v = w?.type === 'atom' && /^\d+$/.test(w.text) ? Number(w.text) : undefined;
    if (v === undefined || v > 255) {
      ctx.report(diag('error', 'E-ttl', w?.span ?? cur.endSpan, '`ttl` needs a number 0-255', 'e.g. ttl < 5, ttl != 64'));
      return undefined;
    }
    return { kind: 'ttl', op, value: v, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    return `ttl ${{ eq: '', ne: '!= ', lt: '< ', gt: '> ' }[m.op]}${m.value}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const v = BigInt(m.value);
    switch (m.op) {
      case 'eq':
        return inSet('ttl', [[v, v]]);
      case 'ne':
        return inSet('ttl', complement([[v, v]], maxOf(8)));
      case 'lt':
        return inSet('ttl', v === 0n ? [] : [[0n, v - 1n]]);
      case 'gt':
        return inSet('ttl', v === 255n ? [] : [[v + 1n, 255n]]);
    }
  },

  iptables: {
    emit(m, ctx) {
      const p = optionPrefix(ctx.family);
      const args = m.op === 'ne' ? ['!', `${p}-eq`, String(m.value)] : [`${p}-${m.op}`, String(m.value)];
      return [{ module: ctx.family === 'ipv4' ? 'ttl' : 'hl', args, order: 0 }];
    },
    claims: [
      { module: 'ttl', options: ['--ttl-eq', '--ttl-lt', '--ttl-gt'] },
      { module: 'hl', options: ['--hl-eq', '--hl-lt', '--hl-gt'] },
    ],
    fromIptables(_module, options, ctx) {
      const out: TtlMatch[] = [];
      for (const o of options) {
        const a = o.args[0] ?? '';
        const kind = o.name.slice(o.name.lastIndexOf('-') + 1) as 'eq' | 'lt' | 'gt';
        if (!/^\d+$/.test(a) || Number(a) > 255 || (o.negated && kind !== 'eq')) {
          ctx.report(diag('error', 'E-import-option', o.span, `\`${o.name} ${a}\` is not understood`));
          continue;
        }
        out.push({ kind: 'ttl', op: o.negated ? 'ne' : kind, value: Number(a), span: o.span });
      }
      return out;
    },
  },
};
