import { type Constraint, opaque } from '../../ir/constraint.js';
import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan, optionsSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';
import { parseIfaceName } from './iface.js';

/**
 * Bridge ports of bridged traffic (iptables `-m physdev`, with br_netfilter):
 *
 *   physdev in [!=] NAME | out [!=] NAME | is-in | is-out | is-bridged
 *
 * and `not-in`, `not-out`, `not-bridged` for the negated flags (`! --physdev-is-bridged` …).
 * nfproof does not model bridges: an opaque constraint (one key per test set, as the answer
 * depends only on the packet's path).
 */
export interface PhysdevMatch {
  readonly kind: 'physdev';
  readonly in?: { readonly negated: boolean; readonly name: string };
  readonly out?: { readonly negated: boolean; readonly name: string };
  readonly isIn?: boolean;
  readonly isOut?: boolean;
  readonly isBridged?: boolean;
  readonly span: Span;
}

const FLAG_WORDS: Readonly<Record<string, ['isIn' | 'isOut' | 'isBridged', boolean]>> = {
  'is-in': ['isIn', true],
  'not-in': ['isIn', false],
  'is-out': ['isOut', true],
  'not-out': ['isOut', false],
  'is-bridged': ['isBridged', true],
  'not-bridged': ['isBridged', false],
};

function flagWord(key: 'isIn' | 'isOut' | 'isBridged', v: boolean): string {
  return Object.entries(FLAG_WORDS).find(([, [k, x]]) => k === key && x === v)![0];
}

export const physdevKind: MatchKind<PhysdevMatch> = {
  kind: 'physdev',
  doc: 'Bridge port a bridged packet came in on or goes out of (br_netfilter); opaque to the analyzer.',
  syntax: ['physdev [in [!=] NAME] [out [!=] NAME] [is-in|not-in] [is-out|not-out] [is-bridged|not-bridged]'],
  keywords: ['physdev'],
  inFlows: false,

  parse(cur, ctx) {
    const kw = cur.next()!;
    const node: { -readonly [K in keyof PhysdevMatch]: PhysdevMatch[K] } = { kind: 'physdev', span: kw.span };
    let any = false;
    for (let w = cur.peekAtom(); w !== undefined; w = cur.peekAtom()) {
      if (w === 'in' || w === 'out') {
        cur.next();
        const negated = cur.acceptNegation();
        const n = cur.next();
        const p = n?.type === 'atom' ? parseIfaceName(n.text) : undefined;
        if (!p) {
          ctx.report(diag('error', 'E-physdev', n?.span ?? cur.endSpan, `\`physdev ${w}\` needs a bridge port name`));
          return undefined;
        }
        node[w] = { negated, name: n!.type === 'atom' ? n!.text : '' };
      } else if (w in FLAG_WORDS) {
        cur.next();
        const [k, v] = FLAG_WORDS[w];
        node[k] = v;
      } else break;
      any = true;
    }
    if (!any) {
      ctx.report(diag('error', 'E-physdev', cur.here(), '`physdev` needs a test', 'e.g. physdev is-bridged, physdev in eth0'));
      return undefined;
    }
    return { ...node, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    const w = ['physdev'];
    if (m.in) w.push('in', ...(m.in.negated ? ['!='] : []), m.in.name);
    if (m.out) w.push('out', ...(m.out.negated ? ['!='] : []), m.out.name);
    if (m.isIn !== undefined) w.push(flagWord('isIn', m.isIn));
    if (m.isOut !== undefined) w.push(flagWord('isOut', m.isOut));
    if (m.isBridged !== undefined) w.push(flagWord('isBridged', m.isBridged));
    return w.join(' ');
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const text = physdevKind.print(m);
    return opaque(text, `\`${text}\`: bridge ports (br_netfilter) are not modelled`);
  },

  hooks(m): readonly Hook[] | undefined {
    // xt_physdev refuses --physdev-out/--physdev-is-out on OUTPUT unless the rule requires bridged traffic.
    if ((m.out || m.isOut !== undefined) && m.isBridged !== true) return ['PREROUTING', 'INPUT', 'FORWARD', 'POSTROUTING'];
    return undefined;
  },

  iptables: {
    emit(m) {
      const args: string[] = [];
      const flag = (v: boolean | undefined, opt: string) => {
        if (v !== undefined) args.push(...(v ? [] : ['!']), opt);
      };
      flag(m.isIn, '--physdev-is-in');
      if (m.in) args.push(...(m.in.negated ? ['!'] : []), '--physdev-in', m.in.name);
      flag(m.isOut, '--physdev-is-out');
      if (m.out) args.push(...(m.out.negated ? ['!'] : []), '--physdev-out', m.out.name);
      flag(m.isBridged, '--physdev-is-bridged');
      return [{ module: 'physdev', args, order: 0 }];
    },
    claims: [{ module: 'physdev', options: ['--physdev-in', '--physdev-out', '--physdev-is-in', '--physdev-is-out', '--physdev-is-bridged'] }],
    fromIptables(_module, options, ctx) {
      const node: { -readonly [K in keyof PhysdevMatch]: PhysdevMatch[K] } = { kind: 'physdev', span: optionsSpan(options, ctx.sectionSpan) };
      for (const o of options) {
        if (o.name === '--physdev-in' || o.name === '--physdev-out') node[o.name === '--physdev-in' ? 'in' : 'out'] = { negated: o.negated, name: o.args[0] ?? '' };
        else node[o.name === '--physdev-is-in' ? 'isIn' : o.name === '--physdev-is-out' ? 'isOut' : 'isBridged'] = !o.negated;
      }
      return [node];
    },
  },
};
