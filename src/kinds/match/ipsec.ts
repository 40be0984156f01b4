import { type Constraint, opaque } from '../../ir/constraint.js';
import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import { type Family, familyBits, formatAddress, parseAddress, prefixMask } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import type { WordCursor } from '../dsl.js';
import { clauseSpan, optionsSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/**
 * IPsec policy (iptables `-m policy`): `ipsec in` — the packet was decapsulated from IPsec
 * (--dir in --pol ipsec); `ipsec out none` — it will not be encapsulated; with SA details:
 *
 *   ipsec in|out [none] [strict] [reqid [!=] N] [spi [!=] N] [proto [!=] esp|ah|ipcomp]
 *         [mode [!=] tunnel|transport] [tunnel-src [!=] PREFIX] [tunnel-dst [!=] PREFIX] [next …]
 *
 * `next` starts the next element of a strict policy. nfproof does not model IPsec state (xfrm):
 * the test is an opaque constraint.
 */
export interface IpsecElement {
  readonly reqid?: Neg<number>;
  readonly spi?: Neg<number>;
  readonly proto?: Neg<'esp' | 'ah' | 'ipcomp'>;
  readonly mode?: Neg<'tunnel' | 'transport'>;
  readonly tunnelSrc?: Neg<Pfx>;
  readonly tunnelDst?: Neg<Pfx>;
}

interface Neg<T> {
  readonly negated: boolean;
  readonly value: T;
}

interface Pfx {
  readonly family: Family;
  readonly addr: bigint;
  readonly len: number;
}

export interface IpsecMatch {
  readonly kind: 'ipsec';
  readonly dir: 'in' | 'out';
  readonly policy: 'ipsec' | 'none';
  readonly strict: boolean;
  readonly elements: readonly IpsecElement[];
  readonly span: Span;
}

function parsePfx(text: string): Pfx | undefined {
  const [a, l] = text.split('/');
  const addr = parseAddress(a);
  if (!addr) return undefined;
  const bits = familyBits(addr.family);
  let len = bits;
  if (l !== undefined) {
    if (/^\d+$/.test(l)) len = Number(l);
    else {
      const mask = parseAddress(l);
      const found = mask ? [...Array(bits + 1).keys()].find((n) => prefixMask(addr.family, n) === mask.value) : undefined;
      if (found === undefined) return undefined;
      len = found;
    }
  }
  return len <= bits ? { family: addr.family, addr: addr.value & prefixMask(addr.family, len), len } : undefined;
}

const fmtPfx = (p: Pfx) => `${formatAddress(p.family, p.addr)}${p.len === familyBits(p.family) ? '' : `/${p.len}`}`;
const fmtIptPfx = fmtPfx;

const KEYS = ['reqid', 'spi', 'proto', 'mode', 'tunnel-src', 'tunnel-dst'] as const;

function readElement(cur: WordCursor): IpsecElement | string {
  const el: { -readonly [K in keyof IpsecElement]: IpsecElement[K] } = {};
  for (let k = cur.peekAtom(); k !== undefined && (KEYS as readonly string[]).includes(k); k = cur.peekAtom()) {
    cur.next();
    const negated = cur.acceptNegation();
    const w = cur.next();
    const t = w?.type === 'atom' ? w.text : '';
    if (k === 'reqid' || k === 'spi') {
      if (!/^(0x[0-9a-fA-F]+|\d+)$/.test(t) || Number(t) > 0xffffffff) return `\`${k}\` needs a number`;
      el[k] = { negated, value: Number(t) };
    } else if (k === 'proto') {
      if (t !== 'esp' && t !== 'ah' && t !== 'ipcomp') return '`proto` is esp, ah or ipcomp';
      el.proto = { negated, value: t };
    } else if (k === 'mode') {
      if (t !== 'tunnel' && t !== 'transport') return '`mode` is tunnel or transport';
      el.mode = { negated, value: t };
    } else {
      const p = parsePfx(t);
      if (!p) return `\`${k}\` needs an address or prefix`;
      el[k === 'tunnel-src' ? 'tunnelSrc' : 'tunnelDst'] = { negated, value: p };
    }
  }
  return el;
}

function printElement(e: IpsecElement): string[] {
  const w: string[] = [];
  const add = (k: string, v: Neg<unknown> | undefined, f: (x: never) => string) => {
    if (v) w.push(k, ...(v.negated ? ['!='] : []), f(v.value as never));
  };
  add('reqid', e.reqid, String);
  add('spi', e.spi, (x: number) => `0x${x.toString(16)}`);
  add('proto', e.proto, String);
  add('mode', e.mode, String);
  add('tunnel-src', e.tunnelSrc, fmtPfx);
  add('tunnel-dst', e.tunnelDst, fmtPfx);
  return w;
}

function emitElement(e: IpsecElement): string[] {
  const w: string[] = [];
  const add = (opt: string, v: Neg<unknown> | undefined, f: (x: never) => string) => {
    if (v) w.push(...(v.negated ? ['!'] : []), opt, f(v.value as never));
  };
  add('--reqid', e.reqid, String);
  add('--spi', e.spi, (x: number) => `0x${x.toString(16)}`);
  add('--proto', e.proto, String);
  add('--mode', e.mode, String);
  add('--tunnel-dst', e.tunnelDst, fmtIptPfx);
  add('--tunnel-src', e.tunnelSrc, fmtIptPfx);
  return w;
}

export const ipsecKind: MatchKind<IpsecMatch> = {
  kind: 'ipsec',
  doc: 'IPsec policy of the packet: decapsulated (in) or to be encapsulated (out), with SA details.',
  syntax: ['ipsec in|out [none] [strict] [reqid [!=] N] [spi [!=] N] [proto [!=] esp|ah|ipcomp] [mode [!=] tunnel|transport] [tunnel-src [!=] PREFIX] [tunnel-dst [!=] PREFIX] [next …]'],
  keywords: ['ipsec'],
  inFlows: false,

  parse(cur, ctx) {
    const kw = cur.next()!;
    const dir = cur.accept('in', 'out');
    const fail = (message: string) => {
      ctx.report(diag('error', 'E-ipsec', cur.here(), message, 'e.g. ipsec in, ipsec out none, ipsec in strict proto esp mode tunnel'));
      return undefined;
    };
    if (!dir) return fail('`ipsec` needs in or out');
    const policy = cur.accept('none') ? 'none' : 'ipsec';
    const strict = !!cur.accept('strict');
    const elements: IpsecElement[] = [];
    for (;;) {
      const e = readElement(cur);
      if (typeof e === 'string') return fail(e);
      if (Object.keys(e).length) elements.push(e);
      if (!cur.accept('next')) break;
    }
    for (const e of elements) if ((e.tunnelSrc || e.tunnelDst) && (e.mode?.value !== 'tunnel' || e.mode.negated)) return fail('tunnel-src/tunnel-dst need `mode tunnel`');
    return { kind: 'ipsec', dir: dir.text as 'in' | 'out', policy, strict, elements, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    const w = ['ipsec', m.dir, ...(m.policy === 'none' ? ['none'] : []), ...(m.strict ? ['strict'] : [])];
    m.elements.forEach((e, i) => w.push(...(i > 0 ? ['next'] : []), ...printElement(e)));
    return w.join(' ');
  },

  forFamily(m, family) {
    const other = m.elements.some((e) => (e.tunnelSrc && e.tunnelSrc.value.family !== family) || (e.tunnelDst && e.tunnelDst.value.family !== family));
    return other ? 'never' : m;
  },

  constraint(m): Constraint {
    const text = ipsecKind.print(m);
    return opaque(`policy ${text}`, `\`${text}\`: IPsec policies and SAs (xfrm) are not modelled`);
  },

  hooks(m): readonly Hook[] {
    return m.dir === 'in' ? ['PREROUTING', 'INPUT', 'FORWARD'] : ['FORWARD', 'OUTPUT', 'POSTROUTING'];
  },

  iptables: {
    emit(m) {
      const args = ['--dir', m.dir, '--pol', m.policy, ...(m.strict ? ['--strict'] : [])];
      m.elements.forEach((e, i) => args.push(...(i > 0 ? ['--next'] : []), ...emitElement(e)));
      return [{ module: 'policy', args, order: 0 }];
    },
    claims: [{ module: 'policy', options: ['--dir', '--pol', '--strict', '--reqid', '--spi', '--proto', '--mode', '--tunnel-src', '--tunnel-dst', '--next'] }],
    fromIptables(_module, options, ctx) {
      let dir: 'in' | 'out' | undefined;
      let policy: 'ipsec' | 'none' = 'ipsec';
      let strict = false;
      const elements: { -readonly [K in keyof IpsecElement]: IpsecElement[K] }[] = [{}];
      for (const o of options) {
        const a = o.args[0] ?? '';
        const el = elements[elements.length - 1];
        const bad = () => ctx.report(diag('error', 'E-import-option', o.span, `-m policy \`${o.name} ${a}\` is not understood`));
        switch (o.name) {
          case '--dir':
            if (a === 'in' || a === 'out') dir = a;
            else bad();
            break;
          case '--pol':
            if (a === 'ipsec' || a === 'none') policy = a;
            else bad();
            break;
          case '--strict':
            strict = true;
            break;
          case '--next':
            elements.push({});
            break;
          case '--reqid':
          case '--spi':
            if (/^(0x[0-9a-fA-F]+|\d+)$/.test(a)) el[o.name === '--reqid' ? 'reqid' : 'spi'] = { negated: o.negated, value: Number(a) };
            else bad();
            break;
          case '--proto':
            if (a === 'esp' || a === 'ah' || a === 'ipcomp') el.proto = { negated: o.negated, value: a };
            else if (a === '50' || a === '51' || a === '108') el.proto = { negated: o.negated, value: a === '50' ? 'esp' : a === '51' ? 'ah' : 'ipcomp' };
            else bad();
            break;
          case '--mode':
            if (a === 'tunnel' || a === 'transport') el.mode = { negated: o.negated, value: a };
            else bad();
            break;
          case '--tunnel-src':
          case '--tunnel-dst': {
            const p = parsePfx(a);
            if (p) el[o.name === '--tunnel-src' ? 'tunnelSrc' : 'tunnelDst'] = { negated: o.negated, value: p };
            else bad();
            break;
          }
        }
      }
      if (!dir) {
        ctx.report(diag('error', 'E-import-option', optionsSpan(options, ctx.sectionSpan), '-m policy needs --dir in|out'));
        return [];
      }
      return [{ kind: 'ipsec', dir, policy, strict, elements: elements.filter((e) => Object.keys(e).length), span: optionsSpan(options, ctx.sectionSpan) }];
    },
  },
};
