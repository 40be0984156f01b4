import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { TargetKind } from '../kind.js';
import { type NatRange, formatNatRange, natAction, parseNatRange } from '../nat-range.js';
import { natFlagOptions, natFlagWords, readMapping, readNatFlags, validateNatPorts } from './nat-common.js';

/**
 * `dnat to ADDR[-ADDR][:PORT[-PORT]] [random] [persistent]` (-j DNAT --to-destination):
 * rewrite the destination of a new connection (port forwarding); replies are translated back.
 * `dnat to :8080` keeps the address and changes the port. nat table, PREROUTING and OUTPUT.
 */
export interface DnatTarget {
  readonly kind: 'dnat';
  readonly to: NatRange;
  readonly random: boolean;
  readonly persistent: boolean;
  readonly span: Span;
}

export const dnatKind: TargetKind<DnatTarget> = {
  kind: 'dnat',
  doc: 'Destination NAT (port forwarding) to an address (range) and/or port range; replies are translated back.',
  syntax: ['dnat to ADDR[-ADDR][:PORT[-PORT]] | :PORT[-PORT] [random] [persistent]'],
  keywords: ['dnat'],
  tables: ['nat'],

  parse(cur, ctx) {
    const kw = cur.next()!;
    const to = readMapping(cur, ctx, 'dnat', { example: 'dnat to 192.168.18.10:8080' });
    if (to === 'error' || to === undefined) return undefined;
    const { flags } = readNatFlags(cur, ['random', 'persistent']);
    return { kind: 'dnat', to, random: flags.random, persistent: flags.persistent, span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    return ['dnat to', formatNatRange(t.to), ...natFlagWords({ ...t, fullyRandom: false })].join(' ');
  },

  effect(t) {
    return { type: 'nat', nat: natAction('dnat', t.to, t) };
  },

  hooks(): readonly Hook[] {
    return ['PREROUTING', 'OUTPUT'];
  },

  forFamily(t, family) {
    return t.to.family === undefined || t.to.family === family ? t : 'never';
  },

  validate(t, rule, report) {
    validateNatPorts(t.to, t.span, rule, report);
  },

  iptables: {
    names: ['DNAT'],
    emit(t) {
      return ['-j', 'DNAT', '--to-destination', formatNatRange(t.to), ...natFlagOptions({ ...t, fullyRandom: false })];
    },
    fromIptables(_name, options, ctx) {
      let to: NatRange | undefined;
      const flags = { random: false, persistent: false };
      for (const o of options) {
        if (o.name === '--to-destination' || o.name === '--to') {
          const r = parseNatRange(o.args[0] ?? '');
          if (typeof r === 'string') ctx.report(diag('error', 'E-import-nat', o.span, r));
          else to = r;
        } else if (o.name === '--random') flags.random = true;
        else if (o.name === '--persistent') flags.persistent = true;
        else ctx.report(diag('error', 'E-import-target', o.span, `DNAT does not take ${o.name}`));
      }
      if (!to) {
        ctx.report(diag('error', 'E-import-nat', ctx.span, 'DNAT needs --to-destination'));
        return undefined;
      }
      return { kind: 'dnat', to, ...flags, span: ctx.span };
    },
  },
};
