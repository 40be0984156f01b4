import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import type { TargetKind } from '../kind.js';
import { type NatRange, formatNatRange, natAction, parseNatRange } from '../nat-range.js';
import { validateNatPorts } from './nat-common.js';

/**
 * `snat to ADDR[-ADDR][:PORT[-PORT]] [random] [fully-random] [persistent]` (-j SNAT --to-source).
 * Valid in the nat table on POSTROUTING and INPUT.
 */
export interface SnatTarget {
  readonly kind: 'snat';
  readonly to: NatRange;
  readonly random: boolean;
  readonly fullyRandom: boolean;
  readonly persistent: boolean;
  readonly span: Span;
}

export const FLAG_WORDS = { random: 'random', 'fully-random': 'fullyRandom', persistent: 'persistent' } as const;

export const snatKind: TargetKind<SnatTarget> = {
  kind: 'snat',
  doc: 'Source NAT to an address (range) and/or port range; replies are translated back.',
  syntax: ['snat to ADDR[-ADDR][:PORT[-PORT]] [random] [fully-random] [persistent]'],
  keywords: ['snat'],
  tables: ['nat'],

  parse(cur, ctx) {
    const kw = cur.next() as { span: Span };
    if (!cur.accept('to')) {
      ctx.report(diag('error', 'E-snat-syntax', cur.here(), '`snat` needs `to ADDRESS[:PORT]`', 'e.g. snat to 192.168.20.1:450'));
      return undefined;
    }
    const w = cur.next();
    const r = w?.type === 'atom' ? parseNatRange(w.text) : 'missing address';
    if (typeof r === 'string' || !r.addr) {
      ctx.report(diag('error', 'E-bad-nat-range', w?.span ?? cur.endSpan, typeof r === 'string' ? r : 'snat needs an address', 'e.g. snat to 192.168.20.1, 192.168.20.1-192.168.20.9:1024-2047 or [2001:db8::1]:80'));
      return undefined;
    }
    const flags = { random: false, fullyRandom: false, persistent: false };
    let end = w!.span;
    for (let f = cur.peekAtom(); f !== undefined && f in FLAG_WORDS; f = cur.peekAtom()) {
      flags[FLAG_WORDS[f as keyof typeof FLAG_WORDS]] = true;
      end = cur.next()!.span;
    }
    return { kind: 'snat', to: r, ...flags, span: { ...kw.span, end: end.end } };
  },

  print(t) {
    return ['snat to', formatNatRange(t.to), t.random && 'random', t.fullyRandom && 'fully-random', t.persistent && 'persistent']
      .filter(Boolean)
      .join(' ');
  },

  effect(t) {
    return { type: 'nat', nat: natAction('snat', t.to, t) };
  },

  hooks(): readonly Hook[] {
    return ['POSTROUTING', 'INPUT'];
  },

  forFamily(t, family) {
    return t.to.family === undefined || t.to.family === family ? t : 'never';
  },

  validate(t, rule, report) {
    validateNatPorts(t.to, t.span, rule, report);
  },

  iptables: {
    names: ['SNAT'],
    emit(t) {
      return [
        '-j',
        'SNAT',
        '--to-source',
        formatNatRange(t.to),
        ...(t.random ? ['--random'] : []),
        ...(t.fullyRandom ? ['--random-fully'] : []),
        ...(t.persistent ? ['--persistent'] : []),
      ];
    },
    fromIptables(_name, options, ctx) {
      let to: NatRange | undefined;
      const flags = { random: false, fullyRandom: false, persistent: false };
      for (const o of options) {
        if (o.name === '--to-source' || o.name === '--to') {
          const r = parseNatRange(o.args[0] ?? '');
          if (typeof r === 'string') ctx.report(diag('error', 'E-import-nat', o.span, r));
          else to = r;
        } else if (o.name === '--random') flags.random = true;
        else if (o.name === '--random-fully') flags.fullyRandom = true;
        else if (o.name === '--persistent') flags.persistent = true;
        else ctx.report(diag('error', 'E-import-target', o.span, `SNAT does not take ${o.name}`));
      }
      if (!to) {
        ctx.report(diag('error', 'E-import-nat', ctx.span, 'SNAT needs --to-source'));
        return undefined;
      }
      return { kind: 'snat', to, ...flags, span: ctx.span };
    },
  },
};
