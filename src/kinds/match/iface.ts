import { type Constraint, iface, not } from '../../ir/constraint.js';
import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import type { MatchKind } from '../kind.js';

/**
 * Input/output interface: `iif lan`, `oif != eth1`, `iif eth+` (prefix wildcard, as iptables).
 * In a policy with a host model the name may be the logical interface name; lowering resolves
 * it to the device (kept in `device`), and the original in `alias` for printing.
 */
export interface IfaceMatch {
  readonly kind: 'iface';
  readonly dir: 'in' | 'out';
  readonly negated: boolean;
  /** Device name without the trailing `+`. */
  readonly device: string;
  readonly wildcard: boolean;
  /** The logical name written in the policy (`lan`), when it differs from the device. */
  readonly alias?: string;
  readonly span: Span;
}

const KEYWORD = { in: 'iif', out: 'oif' } as const;
/** IFNAMSIZ is 16 with the terminating NUL. */
const IFNAME_MAX = 15;
const IFNAME_RE = /^[A-Za-z0-9_.:@-][A-Za-z0-9_.:@+-]*$/;

export function parseIfaceName(text: string): { device: string; wildcard: boolean } | undefined {
  if (!IFNAME_RE.test(text) || text.length > IFNAME_MAX + 1) return undefined;
  const wildcard = text.endsWith('+');
  const device = wildcard ? text.slice(0, -1) : text;
  if (device.includes('+') || device.length > IFNAME_MAX) return undefined;
  return { device, wildcard };
}

export const ifaceKind: MatchKind<IfaceMatch> = {
  kind: 'iface',
  doc: 'Input or output interface; a trailing + matches every name with that prefix.',
  syntax: ['iif [!=] NAME|PREFIX+', 'oif [!=] NAME|PREFIX+'],
  keywords: ['iif', 'oif'],
  inFlows: true,

  parse(cur, ctx) {
    const kw = cur.next() as { text: 'iif' | 'oif'; span: Span };
    const negated = cur.acceptNegation();
    const w = cur.next();
    const parsed = w?.type === 'atom' ? parseIfaceName(w.text) : undefined;
    if (!w || !parsed) {
      ctx.report(
        diag('error', 'E-bad-interface', w?.span ?? cur.endSpan, `\`${kw.text}\` needs an interface name`, 'a host interface name (lan), a device (eth0) or a prefix wildcard (eth+), at most 15 characters'),
      );
      return undefined;
    }
    return { kind: 'iface', dir: kw.text === 'iif' ? 'in' : 'out', negated, ...parsed, span: { ...kw.span, end: w.span.end } };
  },

  print(m) {
    return `${KEYWORD[m.dir]} ${m.negated ? '!= ' : ''}${m.alias ?? m.device + (m.wildcard ? '+' : '')}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const c = iface(m.dir === 'in' ? 'iif' : 'oif', m.device, m.wildcard);
    return m.negated ? not(c) : c;
  },

  // iptables refuses -i/-o only in the built-in chains themselves (see MatchKind.hookCheck).
  hookCheck: 'builtin',

  hooks(m): readonly Hook[] {
    // iptables refuses -i on OUTPUT/POSTROUTING and -o on PREROUTING/INPUT built-in chains.
    return m.dir === 'in' ? ['PREROUTING', 'INPUT', 'FORWARD'] : ['FORWARD', 'OUTPUT', 'POSTROUTING'];
  },

  iptables: {
    emit(m) {
      const name = m.device + (m.wildcard ? '+' : '');
      return [{ module: null, args: [...(m.negated ? ['!'] : []), m.dir === 'in' ? '-i' : '-o', name], order: m.dir === 'in' ? 2 : 3 }];
    },
    claims: [{ module: null, options: ['-i', '-o'] }],
    fromIptables(_module, options, ctx) {
      const out: IfaceMatch[] = [];
      for (const o of options) {
        const parsed = parseIfaceName(o.args[0] ?? '');
        if (!parsed) {
          ctx.report(diag('error', 'E-import-interface', o.span, `\`${o.args[0] ?? ''}\` is not an interface name`));
          continue;
        }
        out.push({ kind: 'iface', dir: o.name === '-i' ? 'in' : 'out', negated: o.negated, ...parsed, span: o.span });
      }
      return out;
    },
  },
};
