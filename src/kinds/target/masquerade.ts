import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { TargetKind } from '../kind.js';
import { type NatRange, formatNatRange, natAction, parseNatRange } from '../nat-range.js';
import { natFlagOptions, natFlagWords, readMapping, readNatFlags, validateNatPorts } from './nat-common.js';

/**
 * `masquerade [to :PORT[-PORT]] [random] [fully-random]` (-j MASQUERADE): source NAT to the
 * primary address of the outgoing interface, whatever it is at the time. nat POSTROUTING only.
 */
export interface MasqueradeTarget {
  readonly kind: 'masquerade';
  readonly ports?: NatRange;
  readonly random: boolean;
  readonly fullyRandom: boolean;
  readonly span: Span;
}

export const masqueradeKind: TargetKind<MasqueradeTarget> = {
  kind: 'masquerade',
  doc: "Source NAT to the outgoing interface's address (dynamic addresses, home routers).",
  syntax: ['masquerade [to :PORT[-PORT]] [random] [fully-random]'],
  keywords: ['masquerade'],
  tables: ['nat'],

  parse(cur, ctx) {
    const kw = cur.next()!;
    const ports = readMapping(cur, ctx, 'masquerade', { portsOnly: true, optional: true, example: 'masquerade to :1024-65535' });
    if (ports === 'error') return undefined;
    const { flags } = readNatFlags(cur, ['random', 'fully-random']);
    return { kind: 'masquerade', ...(ports ? { ports } : {}), random: flags.random, fullyRandom: flags.fullyRandom, span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    return ['masquerade', ...(t.ports ? ['to', formatNatRange(t.ports)] : []), ...natFlagWords({ ...t, persistent: false })].join(' ');
  },

  effect(t) {
    return { type: 'nat', nat: natAction('masquerade', t.ports ?? {}, t) };
  },

  hooks(): readonly Hook[] {
    return ['POSTROUTING'];
  },

  validate(t, rule, report) {
    validateNatPorts(t.ports, t.span, rule, report);
  },

  iptables: {
    names: ['MASQUERADE'],
    emit(t) {
      return ['-j', 'MASQUERADE', ...(t.ports ? ['--to-ports', formatNatRange(t.ports).slice(1)] : []), ...natFlagOptions({ ...t, persistent: false })];
    },
    fromIptables(_name, options, ctx) {
      let ports: NatRange | undefined;
      const flags = { random: false, fullyRandom: false };
      for (const o of options) {
        if (o.name === '--to-ports') {
          const r = parseNatRange(o.args[0] ?? '', { portsOnly: true });
          if (typeof r === 'string') ctx.report(diag('error', 'E-import-nat', o.span, r));
          else ports = r;
        } else if (o.name === '--random') flags.random = true;
        else if (o.name === '--random-fully') flags.fullyRandom = true;
        else ctx.report(diag('error', 'E-import-target', o.span, `MASQUERADE does not take ${o.name}`));
      }
      return { kind: 'masquerade', ...(ports ? { ports } : {}), ...flags, span: ctx.span };
    },
  },
};
