import { type Constraint, not, opaque } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan, instanceKey, printName, readName } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/**
 * Membership in an ipset: `ipset blocklist src`, `ipset != svc src,dst` (iptables `-m set
 * --match-set NAME src,dst`). DIRS says which packet field feeds each dimension of the set.
 * Set contents live in the kernel, outside the policy: the test is an opaque constraint. Without
 * counter conditions the same set and dimensions give the same answer for a packet wherever
 * they are tested, so those share one key; counter tests depend on history and are per rule.
 *
 * Options: `return-nomatch`, `no-counters` (! --update-counters), `no-subcounters`,
 * `packets ==|!=|<|> N`, `bytes ==|!=|<|> N`.
 */
export interface IpsetMatch {
  readonly kind: 'ipset';
  readonly negated: boolean;
  readonly name: string;
  readonly dirs: readonly ('src' | 'dst')[];
  readonly returnNomatch?: boolean;
  readonly noCounters?: boolean;
  readonly noSubcounters?: boolean;
  readonly packets?: CounterTest;
  readonly bytes?: CounterTest;
  readonly span: Span;
}

export interface CounterTest {
  readonly op: '==' | '!=' | '<' | '>';
  readonly value: bigint;
}

/** IPSET_MAXNAMELEN is 32 with the NUL. */
const NAME_RE = /^[^\s"'\\]{1,31}$/;
const OPS = ['==', '!=', '<', '>'] as const;
const IPT_OP = { '==': 'eq', '!=': 'eq', '<': 'lt', '>': 'gt' } as const;

function counterWords(what: 'packets' | 'bytes', t: CounterTest): string[] {
  return [...(t.op === '!=' ? ['!'] : []), `--${what}-${IPT_OP[t.op]}`, String(t.value)];
}

export const ipsetKind: MatchKind<IpsetMatch> = {
  kind: 'ipset',
  doc: 'Membership of the packet (source/destination address, port …) in a kernel ipset.',
  syntax: ['ipset [!=] NAME src|dst[,src|dst…] [return-nomatch] [no-counters] [no-subcounters] [packets ==|!=|<|> N] [bytes ==|!=|<|> N]'],
  keywords: ['ipset'],
  inFlows: false,

  parse(cur, ctx) {
    const kw = cur.next()!;
    const negated = cur.acceptNegation();
    const n = readName(cur);
    const fail = (message: string) => {
      ctx.report(diag('error', 'E-ipset', cur.here(), message, 'e.g. ipset blocklist src, ipset svc dst,dst'));
      return undefined;
    };
    if (!n || !NAME_RE.test(n.text)) return fail('`ipset` needs a set name');
    const d = cur.next();
    const dirs: string[] = d?.type === 'atom' ? d.text.split(',') : [];
    while (cur.peek()?.type === 'comma' && (cur.peekAtom(1) === 'src' || cur.peekAtom(1) === 'dst')) {
      cur.next();
      dirs.push((cur.next() as { text: string }).text);
    }
    if (dirs.length === 0 || dirs.length > 6 || dirs.some((x) => x !== 'src' && x !== 'dst')) return fail('the set name is followed by src/dst for each dimension');
    const node: { -readonly [K in keyof IpsetMatch]: IpsetMatch[K] } = { kind: 'ipset', negated, name: n.text, dirs: dirs as ('src' | 'dst')[], span: kw.span };
    for (let w = cur.peekAtom(); w !== undefined; w = cur.peekAtom()) {
      if (w === 'return-nomatch') node.returnNomatch = true;
      else if (w === 'no-counters') node.noCounters = true;
      else if (w === 'no-subcounters') node.noSubcounters = true;
      else if (w === 'packets' || w === 'bytes') {
        cur.next();
        const op = cur.peek()?.type === 'neq' ? (cur.next(), '!=') : cur.accept(...OPS)?.text;
        const v = cur.next();
        if (!op || v?.type !== 'atom' || !/^\d+$/.test(v.text)) return fail(`\`${w}\` needs ==, !=, < or > and a number`);
        node[w] = { op: op as CounterTest['op'], value: BigInt(v.text) };
        continue;
      } else break;
      cur.next();
    }
    return { ...node, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    const w = ['ipset', ...(m.negated ? ['!='] : []), printName(m.name), m.dirs.join(',')];
    if (m.returnNomatch) w.push('return-nomatch');
    if (m.noCounters) w.push('no-counters');
    if (m.noSubcounters) w.push('no-subcounters');
    if (m.packets) w.push('packets', m.packets.op, String(m.packets.value));
    if (m.bytes) w.push('bytes', m.bytes.op, String(m.bytes.value));
    return w.join(' ');
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    const what = `${m.name} ${m.dirs.join(',')}${m.returnNomatch ? ' return-nomatch' : ''}`;
    const reason = `ipset ${m.name}: its contents are not part of the policy`;
    const c = m.packets || m.bytes ? opaque(instanceKey('ipset', m, what), `${reason} (and its counters depend on earlier packets)`) : opaque(`ipset ${what}`, reason);
    return m.negated ? not(c) : c;
  },

  iptables: {
    emit(m) {
      const args = [...(m.negated ? ['!'] : []), '--match-set', m.name, m.dirs.join(',')];
      if (m.returnNomatch) args.push('--return-nomatch');
      if (m.noCounters) args.push('!', '--update-counters');
      if (m.noSubcounters) args.push('!', '--update-subcounters');
      if (m.packets) args.push(...counterWords('packets', m.packets));
      if (m.bytes) args.push(...counterWords('bytes', m.bytes));
      return [{ module: 'set', args, order: 0 }];
    },
    claims: [
      {
        module: 'set',
        options: ['--match-set', '--set', '--return-nomatch', '--update-counters', '--update-subcounters', '--packets-eq', '--packets-lt', '--packets-gt', '--bytes-eq', '--bytes-lt', '--bytes-gt'],
      },
    ],
    fromIptables(_module, options, ctx) {
      const out: IpsetMatch[] = [];
      let cur: { -readonly [K in keyof IpsetMatch]: IpsetMatch[K] } | undefined;
      for (const o of options) {
        if (o.name === '--match-set' || o.name === '--set') {
          const [name, dirs] = o.args;
          if (!name || !dirs || dirs.split(',').some((x) => x !== 'src' && x !== 'dst')) {
            ctx.report(diag('error', 'E-import-option', o.span, `\`${o.name} ${o.args.join(' ')}\` is not NAME src|dst,…`));
            cur = undefined;
            continue;
          }
          cur = { kind: 'ipset', negated: o.negated, name, dirs: dirs.split(',') as ('src' | 'dst')[], span: o.span };
          out.push(cur);
          continue;
        }
        if (!cur) continue;
        const m = /^--(packets|bytes)-(eq|lt|gt)$/.exec(o.name);
        if (o.name === '--return-nomatch') cur.returnNomatch = true;
        else if (o.name === '--update-counters' && o.negated) cur.noCounters = true;
        else if (o.name === '--update-subcounters' && o.negated) cur.noSubcounters = true;
        else if (m && /^\d+$/.test(o.args[0] ?? '')) {
          const op = m[2] === 'eq' ? (o.negated ? '!=' : '==') : m[2] === 'lt' ? '<' : '>';
          cur[m[1] as 'packets' | 'bytes'] = { op, value: BigInt(o.args[0]!) };
        } else ctx.report(diag('error', 'E-import-option', o.span, `-m set option \`${o.name}\` is not understood`));
        cur.span = { ...cur.span, end: o.span.end };
      }
      return out;
    },
  },
};
