import { type Constraint, opaque } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan, instanceKey, optionsSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';
import { type Rate, formatRate, parseRate, printPeriod, ratePeriod, UNIT_SECONDS } from '../rate.js';
import { readNumber } from '../values.js';

/**
 * Rate limit: `limit rate 10/second burst 20` (iptables `-m limit --limit 10/sec --limit-burst
 * 20`). A token bucket of `burst` packets refilled at `rate`; the rule matches while tokens
 * remain. Its answer depends on the timing of earlier packets, so for the analyzer it is an
 * opaque constraint of this one rule; the simulator runs the bucket on its virtual clock.
 * iptables cannot negate it. The default burst is 5 (not printed by iptables-save).
 */
export interface LimitMatch {
  readonly kind: 'limit';
  readonly rate: Rate;
  readonly burst: number;
  readonly span: Span;
}

const SCALE = 10000n; // XT_LIMIT_SCALE
const DEFAULT_BURST = 5;

function period(m: LimitMatch): bigint {
  return ratePeriod(m.rate, SCALE);
}

export const limitKind: MatchKind<LimitMatch> = {
  kind: 'limit',
  doc: 'Rate limit (token bucket): matches at most RATE packets on average, BURST at once.',
  syntax: ['limit rate N/second|minute|hour|day [burst N]'],
  keywords: ['limit'],
  inFlows: false,

  parse(cur, ctx) {
    const kw = cur.next()!;
    if (!cur.accept('rate')) {
      ctx.report(diag('error', 'E-limit-syntax', cur.here(), '`limit` needs `rate N/UNIT`', 'e.g. limit rate 10/second burst 20'));
      return undefined;
    }
    if (cur.peekAtom() === 'over' || cur.peek()?.type === 'neq') {
      ctx.report(diag('error', 'E-limit-over', cur.here(), 'iptables -m limit cannot match above a rate', 'use `hashlimit … above RATE` for that, or put the limit rule first and act on what remains'));
      return undefined;
    }
    const w = cur.next();
    const rate = w?.type === 'atom' ? parseRate(w.text) : undefined;
    if (!rate) {
      ctx.report(diag('error', 'E-bad-rate', w?.span ?? cur.endSpan, 'expected a rate N/UNIT', 'e.g. 10/second, 30/minute, 100/hour, 1000/day'));
      return undefined;
    }
    let burst = DEFAULT_BURST;
    if (cur.accept('burst')) {
      const b = readNumber(cur, ctx, '`burst`', 10000n);
      if (b === undefined) return undefined;
      burst = Number(b);
    }
    return { kind: 'limit', rate, burst, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    return `limit rate ${formatRate(m.rate)}${m.burst !== DEFAULT_BURST ? ` burst ${m.burst}` : ''}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const text = `${formatRate(m.rate)} burst ${m.burst}`;
    return opaque(instanceKey('limit', m, text), `rate limit ${text}: depends on the timing of earlier packets (token bucket)`);
  },

  evaluate(m, _c, ctx) {
    // The kernel's bucket (xt_limit.c) in packets: it starts full, refills continuously.
    const perSecond = m.rate.count / UNIT_SECONDS[m.rate.unit];
    const b = ctx.local(() => ({ tokens: m.burst, at: ctx.now }));
    b.tokens = Math.min(m.burst, b.tokens + (ctx.now - b.at) * perSecond);
    b.at = ctx.now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    return false;
  },

  validate(m, _rule, report) {
    const p = period(m);
    if (p === 0n) report('E-limit-rate', m.span, `rate ${formatRate(m.rate)} is too fast for iptables`, 'at most 10000/second');
    // xt_limit refuses a period × burst that overflows 32 bits ("Overflow, try lower").
    else if (p * BigInt(m.burst) > 0xffffffffn) report('E-limit-rate', m.span, `rate ${formatRate(m.rate)} with burst ${m.burst} overflows the kernel's bucket`, 'use a faster rate or a smaller burst');
  },

  iptables: {
    emit(m) {
      const args = ['--limit', printPeriod(period(m), SCALE).text];
      if (m.burst !== DEFAULT_BURST) args.push('--limit-burst', String(m.burst));
      return [{ module: 'limit', args, order: 0 }];
    },
    claims: [{ module: 'limit', options: ['--limit', '--limit-burst'] }],
    fromIptables(_module, options, ctx) {
      let rate: Rate = { count: 3, unit: 'hour' }; // iptables' default average
      let burst = DEFAULT_BURST;
      for (const o of options) {
        if (o.name === '--limit') {
          const r = parseRate(o.args[0] ?? '');
          if (!r) ctx.report(diag('error', 'E-import-option', o.span, `\`--limit ${o.args[0] ?? ''}\` is not a rate`));
          else rate = r;
        } else {
          const b = Number(o.args[0]);
          if (!Number.isInteger(b) || b < 1 || b > 10000) ctx.report(diag('error', 'E-import-option', o.span, `\`--limit-burst ${o.args[0] ?? ''}\` is not 1-10000`));
          else burst = b;
        }
      }
      return [{ kind: 'limit', rate, burst, span: optionsSpan(options, ctx.sectionSpan) }];
    },
  },
};
