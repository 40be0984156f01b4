import { type Constraint, opaque } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import { type Family, parsePrefix, parseRange } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import { clauseSpan, instanceKey, optionsSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/** Words of `saddr type …` (addrtype), to tell it from an icmp `type` after `connlimit … daddr`. */
const ADDRTYPE_WORDS = ['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'xresolve'];

/**
 * Number of tracked connections per address group: `connlimit above 10 mask 24` (iptables
 * `-m connlimit --connlimit-above 10 --connlimit-mask 24 --connlimit-saddr`). Groups are
 * source addresses (or `daddr`) cut to the mask. The count depends on other connections, so
 * this is an opaque constraint of the rule.
 */
export interface ConnlimitMatch {
  readonly kind: 'connlimit';
  readonly above: boolean;
  readonly count: number;
  /** Prefix length; absent: the whole address. */
  readonly mask?: number;
  readonly by: 'saddr' | 'daddr';
  readonly span: Span;
}

const full = (f: Family) => (f === 'ipv4' ? 32 : 128);

export const connlimitKind: MatchKind<ConnlimitMatch> = {
  kind: 'connlimit',
  doc: 'Number of connections of the same source (or destination) address group, above or up to N.',
  syntax: ['connlimit above|upto N [mask LEN] [saddr|daddr]'],
  keywords: ['connlimit'],
  inFlows: false,

  parse(cur, ctx) {
    const kw = cur.next()!;
    const op = cur.accept('above', 'upto');
    const n = cur.next();
    const count = n?.type === 'atom' && /^\d+$/.test(n.text) ? Number(n.text) : undefined;
    if (!op || count === undefined || count > 0xffffffff) {
      ctx.report(diag('error', 'E-connlimit', n?.span ?? cur.here(), '`connlimit` needs `above N` or `upto N`', 'e.g. connlimit above 20 mask 24'));
      return undefined;
    }
    let mask: number | undefined;
    if (cur.accept('mask')) {
      const w = cur.next();
      mask = w?.type === 'atom' && /^\d+$/.test(w.text) && Number(w.text) <= 128 ? Number(w.text) : undefined;
      if (mask === undefined) {
        ctx.report(diag('error', 'E-connlimit', w?.span ?? cur.endSpan, '`mask` needs a prefix length'));
        return undefined;
      }
    }
    // A trailing `saddr`/`daddr` is ours only when it does not start an address clause of
    // its own (`saddr 10.0.0.1`, `saddr type local`, `saddr @x`, `saddr != …`), which follows
    // when the default (saddr) was left out.
    const after = cur.peek(1);
    const negation = cur.peek(2)?.type === 'neq' || cur.peek(2)?.type === 'bang';
    const typeValue = cur.peek(negation ? 3 : 2);
    // The first value after `type` (in a set too) says whose `type` it is.
    const typeWord = typeValue?.type === 'set' ? typeValue.items[0]?.[0] : typeValue;
    const addrtype =
      after?.type === 'atom' &&
      after.text === 'type' &&
      (typeWord?.type !== 'atom' || ADDRTYPE_WORDS.includes(typeWord.text.split(',')[0].toLowerCase()));
    const startsAddrClause =
      after !== undefined && (after.type !== 'atom' || addrtype || parsePrefix(after.text) !== undefined || parseRange(after.text) !== undefined);
    const by = ((startsAddrClause ? undefined : cur.accept('saddr', 'daddr')?.text) ?? 'saddr') as 'saddr' | 'daddr';
    return { kind: 'connlimit', above: op.text === 'above', count, ...(mask !== undefined ? { mask } : {}), by, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    return ['connlimit', m.above ? 'above' : 'upto', String(m.count), ...(m.mask !== undefined ? ['mask', String(m.mask)] : []), ...(m.by === 'daddr' ? ['daddr'] : [])].join(' ');
  },

  forFamily(m, family) {
    return m.mask !== undefined && m.mask > full(family) ? 'never' : m;
  },

  constraint(m): Constraint {
    const text = connlimitKind.print(m);
    return opaque(instanceKey('connlimit', m, text), `\`${text}\`: depends on the other tracked connections`);
  },

  iptables: {
    emit(m, ctx) {
      const mask = m.mask ?? full(ctx.family);
      return [{ module: 'connlimit', args: [m.above ? '--connlimit-above' : '--connlimit-upto', String(m.count), '--connlimit-mask', String(mask), m.by === 'daddr' ? '--connlimit-daddr' : '--connlimit-saddr'], order: 0 }];
    },
    claims: [{ module: 'connlimit', options: ['--connlimit-above', '--connlimit-upto', '--connlimit-mask', '--connlimit-saddr', '--connlimit-daddr'] }],
    fromIptables(_module, options, ctx) {
      let above: boolean | undefined;
      let count = 0;
      let mask: number | undefined;
      let by: 'saddr' | 'daddr' = 'saddr';
      for (const o of options) {
        const a = o.args[0] ?? '';
        if ((o.name === '--connlimit-above' || o.name === '--connlimit-upto') && /^\d+$/.test(a)) {
          // `! --connlimit-above N` is `--connlimit-upto N` and vice versa.
          above = (o.name === '--connlimit-above') !== o.negated;
          count = Number(a);
        } else if (o.name === '--connlimit-mask' && /^\d+$/.test(a)) mask = Number(a);
        else if (o.name === '--connlimit-saddr' || o.name === '--connlimit-daddr') by = o.name === '--connlimit-daddr' ? 'daddr' : 'saddr';
        else ctx.report(diag('error', 'E-import-option', o.span, `-m connlimit \`${o.name} ${a}\` is not understood`));
      }
      if (above === undefined) {
        ctx.report(diag('error', 'E-import-option', optionsSpan(options, ctx.sectionSpan), '-m connlimit needs --connlimit-above or --connlimit-upto'));
        return [];
      }
      return [{ kind: 'connlimit', above, count, ...(mask !== undefined && mask !== full(ctx.family) ? { mask } : {}), by, span: optionsSpan(options, ctx.sectionSpan) }];
    },
  },
};
