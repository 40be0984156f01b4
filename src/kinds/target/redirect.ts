import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { TargetKind } from '../kind.js';
import { type NatRange, formatNatRange, natAction, parseNatRange } from '../nat-range.js';
import { natFlagOptions, natFlagWords, readMapping, readNatFlags, validateNatPorts } from './nat-common.js';

/**
 * `redirect [to :PORT[-PORT]] [random]` (-j REDIRECT): destination NAT to this host (the
 * incoming interface's primary address; loopback for locally generated packets), e.g. a
 * transparent proxy. nat PREROUTING and OUTPUT.
 */
export interface RedirectTarget {
  readonly kind: 'redirect';
  readonly ports?: NatRange;
  readonly random: boolean;
  readonly span: Span;
}

export const redirectKind: TargetKind<RedirectTarget> = {
  kind: 'redirect',
  doc: 'Destination NAT to this host itself, optionally to another port (transparent proxies).',
  syntax: ['redirect [to :PORT[-PORT]] [random]'],
  keywords: ['redirect'],
  tables: ['nat'],

  parse(cur, ctx) {
    const kw = cur.next()!;
    const ports = readMapping(cur, ctx, 'redirect', { portsOnly: true, optional: true, example: 'redirect to :3128' });
    if (ports === 'error') return undefined;
    const { flags } = readNatFlags(cur, ['random']);
    return { kind: 'redirect', ...(ports ? { ports } : {}), random: flags.random, span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    return ['redirect', ...(t.ports ? ['to', formatNatRange(t.ports)] : []), ...natFlagWords({ ...t, fullyRandom: false, persistent: false })].join(' ');
  },

  effect(t) {
    return { type: 'nat', nat: natAction('redirect', t.ports ?? {}, t) };
  },

  hooks(): readonly Hook[] {
    return ['PREROUTING', 'OUTPUT'];
  },

  validate(t, rule, report) {
    validateNatPorts(t.ports, t.span, rule, report);
  },

  iptables: {
    names: ['REDIRECT'],
    emit(t) {
      return ['-j', 'REDIRECT', ...(t.ports ? ['--to-ports', formatNatRange(t.ports).slice(1)] : []), ...natFlagOptions({ ...t, fullyRandom: false, persistent: false })];
    },
    fromIptables(_name, options, ctx) {
      let ports: NatRange | undefined;
      let random = false;
      for (const o of options) {
        if (o.name === '--to-ports') {
          const r = parseNatRange(o.args[0] ?? '', { portsOnly: true });
          if (typeof r === 'string') ctx.report(diag('error', 'E-import-nat', o.span, r));
          else ports = r;
        } else if (o.name === '--random') random = true;
        else ctx.report(diag('error', 'E-import-target', o.span, `REDIRECT does not take ${o.name}`));
      }
      return { kind: 'redirect', ...(ports ? { ports } : {}), random, span: ctx.span };
    },
  },
};
