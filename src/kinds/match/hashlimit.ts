import { type Constraint, opaque } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import type { Family } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import { clauseSpan, instanceKey, optionsSpan, printName, readName } from '../helpers.js';
import type { ImportedOption } from '../iptables.js';
import type { MatchKind } from '../kind.js';
import { type Rate, UNIT_SECONDS, formatRate, parseRate, printPeriod, ratePeriod } from '../rate.js';

/**
 * Per-flow rate limit: `hashlimit name ssh upto 10/minute burst 5 mode srcip srcmask 24`
 * (iptables `-m hashlimit`). One token bucket per group of packets (by the `mode` fields,
 * addresses cut to `srcmask`/`dstmask`); `upto` matches while the group's bucket has tokens,
 * `above` when it is empty. Rates may be packets (`10/second`) or bytes (`512kb/s`). Like
 * `limit` it is an opaque constraint of this rule for the analyzer.
 *
 * Emitting reproduces libxt_hashlimit's arithmetic: rates print in the unit that looks exact
 * (`120/minute` is saved as `2/sec`), and the idle-entry expiry, which defaults to one unit of
 * the rate as written, is printed when it differs from the printed unit.
 */
export type HashlimitMode = 'srcip' | 'srcport' | 'dstip' | 'dstport';

export type HashlimitRate = { readonly type: 'packets'; readonly rate: Rate } | { readonly type: 'bytes'; readonly amount: number; readonly unit: 'b' | 'kb' | 'mb' };

export interface HashlimitMatch {
  readonly kind: 'hashlimit';
  readonly name: string;
  readonly above: boolean;
  readonly rate: HashlimitRate;
  /** Packets; for byte rates a byte amount with unit (`burst 10mb`). Absent: iptables' default. */
  readonly burst?: number | { readonly amount: number; readonly unit: 'b' | 'kb' | 'mb' };
  readonly mode: readonly HashlimitMode[];
  readonly srcmask?: number;
  readonly dstmask?: number;
  readonly htableSize?: number;
  readonly htableMax?: number;
  readonly htableExpire?: number;
  readonly htableGcInterval?: number;
  readonly rateMatch?: boolean;
  readonly rateInterval?: number;
  readonly span: Span;
}

const MODE_ORDER: readonly HashlimitMode[] = ['srcip', 'srcport', 'dstip', 'dstport'];
const SCALE = 1000000n; // XT_HASHLIMIT_SCALE_v2
const U32 = 0xffffffffn;
const BYTE_SHIFT = 4n; // XT_HASHLIMIT_BYTE_SHIFT
const FACTOR = { b: 1n, kb: 1024n, mb: 1024n * 1024n } as const;
/** The kernel's limit is 15 bytes (XT_HASHLIMIT name, a /proc file name: no `/`). */
const NAME_RE = /^[^\s"'\\/]{1,15}$/;

function bytesToCost(bytes: bigint): bigint {
  return U32 / ((bytes >> BYTE_SHIFT) + 1n);
}

function costToBytes(cost: bigint): bigint {
  return ((cost ? U32 / cost : U32) - 1n) << BYTE_SHIFT;
}

function parseBytes(text: string): { amount: number; unit: 'b' | 'kb' | 'mb' } | undefined {
  const m = /^(\d+)(b|kb|mb)(?:\/s)?$/.exec(text);
  return m && Number(m[1]) > 0 ? { amount: Number(m[1]), unit: m[2] as 'b' | 'kb' | 'mb' } : undefined;
}

/** What iptables-save prints for the rate and burst, and the expiry it takes as implied. */
function canonical(m: HashlimitMatch): { rate: string; burst?: string; quantumMs: bigint; defaultExpireMs: bigint } {
  if (m.rate.type === 'bytes') {
    const avg = bytesToCost(BigInt(m.rate.amount) * FACTOR[m.rate.unit]);
    const r = costToBytes(avg);
    let text = `${r}b/s`;
    for (const [name, thresh] of [
      ['m', FACTOR.mb],
      ['k', FACTOR.kb],
    ] as const) {
      if (r >= thresh && bytesToCost(r & ~(thresh - 1n)) === avg) {
        text = `${r / thresh}${name}b/s`;
        break;
      }
    }
    if (m.burst === undefined || typeof m.burst === 'number') return { rate: text, quantumMs: 15000n, defaultExpireMs: 15000n };
    const per = costToBytes(avg);
    const total = BigInt(m.burst.amount) * FACTOR[m.burst.unit];
    const packets = total / per + (total % per ? 1n : 0n);
    const rb = per * packets;
    const unit = rb >= FACTOR.mb ? (['mb', FACTOR.mb] as const) : rb >= FACTOR.kb ? (['kb', FACTOR.kb] as const) : (['b', 1n] as const);
    return { rate: text, burst: `${rb / unit[1]}${unit[0]}`, quantumMs: 60000n, defaultExpireMs: 60000n };
  }
  let period = ratePeriod(m.rate.rate, SCALE);
  const unitSecs = BigInt(UNIT_SECONDS[m.rate.rate.unit]);
  // With rate-match the kernel stores the per-second average (libxt_hashlimit divides by the unit).
  if (m.rateMatch) period = period / unitSecs;
  const p = printPeriod(period, SCALE);
  return { rate: p.text, burst: String(typeof m.burst === 'number' ? m.burst : 5), quantumMs: p.unitMs, defaultExpireMs: unitSecs * 1000n };
}

function defaultMask(family: Family): number {
  return family === 'ipv4' ? 32 : 128;
}

function rateText(r: HashlimitRate): string {
  return r.type === 'packets' ? formatRate(r.rate) : `${r.amount}${r.unit}/s`;
}

const WORDS = ['burst', 'mode', 'srcmask', 'dstmask', 'size', 'max', 'expire', 'gcinterval', 'rate-match', 'interval'] as const;

export const hashlimitKind: MatchKind<HashlimitMatch> = {
  kind: 'hashlimit',
  doc: 'Per-flow rate limit: a token bucket per source/destination address/port group (iptables -m hashlimit).',
  syntax: [
    'hashlimit name NAME upto|above RATE [burst N|BYTES] [mode srcip,srcport,dstip,dstport] [srcmask LEN] [dstmask LEN]',
    '          [size N] [max N] [expire MS] [gcinterval MS] [rate-match [interval SECONDS]]',
    '  RATE: N/second|minute|hour|day or N b|kb|mb/s',
  ],
  keywords: ['hashlimit'],
  inFlows: false,

  parse(cur, ctx) {
    const kw = cur.next()!;
    const fail = (message: string, hint?: string) => {
      ctx.report(diag('error', 'E-hashlimit', cur.here(), message, hint ?? 'e.g. hashlimit name ssh upto 10/minute burst 5 mode srcip'));
      return undefined;
    };
    if (!cur.accept('name')) return fail('`hashlimit` needs `name NAME` first');
    const nameW = readName(cur);
    if (!nameW || !NAME_RE.test(nameW.text)) return fail('the hashlimit name is 1-15 characters, no blanks or `/`');
    const dir = cur.accept('upto', 'above');
    if (!dir) return fail('expected `upto RATE` or `above RATE`');
    const rw = cur.next();
    const rtext = rw?.type === 'atom' ? rw.text : '';
    const bytes = parseBytes(rtext);
    const pr = bytes ? undefined : parseRate(rtext);
    if (!bytes && !pr) return fail(`\`${rtext}\` is not a rate`, 'N/second|minute|hour|day, or bytes: 512kb/s');
    const node: { -readonly [K in keyof HashlimitMatch]: HashlimitMatch[K] } = {
      kind: 'hashlimit',
      name: nameW.text,
      above: dir.text === 'above',
      rate: bytes ? { type: 'bytes', ...bytes } : { type: 'packets', rate: pr! },
      mode: [],
      span: kw.span,
    };
    const num = (max: number): number | undefined => {
      const w = cur.next();
      const n = w?.type === 'atom' && /^\d+$/.test(w.text) ? Number(w.text) : undefined;
      return n !== undefined && n <= max ? n : undefined;
    };
    for (let w = cur.peekAtom(); w !== undefined && (WORDS as readonly string[]).includes(w); w = cur.peekAtom()) {
      cur.next();
      switch (w) {
        case 'burst': {
          const bw = cur.next();
          const t = bw?.type === 'atom' ? bw.text : '';
          if (node.rate.type === 'bytes') {
            const b = parseBytes(t);
            if (!b) return fail('a byte-rate burst is an amount of bytes: 10mb, 64kb');
            node.burst = b;
          } else {
            if (!/^\d+$/.test(t) || Number(t) < 1 || Number(t) > 1000000) return fail('burst is 1-1000000 packets');
            node.burst = Number(t);
          }
          break;
        }
        case 'mode': {
          const mw = cur.next();
          const parts = mw?.type === 'atom' ? mw.text.split(',') : [];
          while (cur.peek()?.type === 'comma' && cur.peek(1)?.type === 'atom') {
            cur.next();
            parts.push(...(cur.next() as { text: string }).text.split(','));
          }
          if (parts.length === 0 || parts.some((p) => !(MODE_ORDER as readonly string[]).includes(p))) return fail('mode is a list of srcip, srcport, dstip, dstport');
          node.mode = MODE_ORDER.filter((x) => parts.includes(x));
          break;
        }
        case 'srcmask':
        case 'dstmask': {
          const n = num(128);
          if (n === undefined) return fail(`${w} is a prefix length`);
          node[w] = n;
          break;
        }
        case 'size':
        case 'max':
        case 'expire':
        case 'gcinterval': {
          const n = num(0xffffffff);
          if (n === undefined) return fail(`${w} is a number`);
          if (w === 'size') node.htableSize = n;
          else if (w === 'max') node.htableMax = n;
          else if (w === 'expire') node.htableExpire = n;
          else node.htableGcInterval = n;
          break;
        }
        case 'rate-match':
          node.rateMatch = true;
          break;
        case 'interval': {
          const n = num(0xffffffff);
          if (n === undefined || n === 0 || !node.rateMatch) return fail('`interval SECONDS` follows `rate-match`');
          node.rateInterval = n;
          break;
        }
      }
    }
    return { ...node, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    const w = [`hashlimit name ${printName(m.name)} ${m.above ? 'above' : 'upto'} ${rateText(m.rate)}`];
    if (m.burst !== undefined) w.push(`burst ${typeof m.burst === 'number' ? m.burst : `${m.burst.amount}${m.burst.unit}`}`);
    if (m.mode.length) w.push(`mode ${m.mode.join(',')}`);
    if (m.srcmask !== undefined) w.push(`srcmask ${m.srcmask}`);
    if (m.dstmask !== undefined) w.push(`dstmask ${m.dstmask}`);
    if (m.htableSize !== undefined) w.push(`size ${m.htableSize}`);
    if (m.htableMax !== undefined) w.push(`max ${m.htableMax}`);
    if (m.htableExpire !== undefined) w.push(`expire ${m.htableExpire}`);
    if (m.htableGcInterval !== undefined) w.push(`gcinterval ${m.htableGcInterval}`);
    if (m.rateMatch) w.push('rate-match');
    if (m.rateInterval !== undefined) w.push(`interval ${m.rateInterval}`);
    return w.join(' ');
  },

  forFamily(m, family) {
    const max = family === 'ipv4' ? 32 : 128;
    return (m.srcmask ?? 0) > max || (m.dstmask ?? 0) > max ? 'never' : m;
  },

  constraint(m): Constraint {
    return opaque(instanceKey('hashlimit', m, m.name), `hashlimit ${m.name} ${m.above ? 'above' : 'up to'} ${rateText(m.rate)}: depends on earlier packets of the same flow group`);
  },

  evaluate(m, _c, ctx) {
    // One bucket per group (xt_hashlimit.c hashlimit_mt_common): credit is spent whenever
    // there is enough, in both modes; `above` matches when there was not.
    if (m.rate.type !== 'packets' || m.rateMatch) return undefined;
    const p = ctx.packet;
    const bits = p.family === 'ipv4' ? 32 : 128;
    const cut = (v: bigint | undefined, len: number | undefined) => (v === undefined ? '' : (v >> BigInt(bits - (len ?? bits))).toString(16));
    const key = [
      m.mode.includes('srcip') ? cut(p.num('saddr'), m.srcmask) : '',
      m.mode.includes('srcport') ? String(p.num('sport') ?? '') : '',
      m.mode.includes('dstip') ? cut(p.num('daddr'), m.dstmask) : '',
      m.mode.includes('dstport') ? String(p.num('dport') ?? '') : '',
    ].join('/');
    const burst = typeof m.burst === 'number' ? m.burst : 5;
    const perSecond = m.rate.rate.count / UNIT_SECONDS[m.rate.rate.unit];
    const buckets = ctx.shared(`hashlimit:${p.family}:${m.name}`, () => new Map<string, { tokens: number; at: number }>());
    const b = buckets.get(key) ?? { tokens: burst, at: ctx.now };
    b.tokens = Math.min(burst, b.tokens + (ctx.now - b.at) * perSecond);
    b.at = ctx.now;
    buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return !m.above;
    }
    return m.above;
  },

  iptables: {
    emit(m, ctx) {
      const c = canonical(m);
      const args = [m.above ? '--hashlimit-above' : '--hashlimit-upto', c.rate];
      if (c.burst !== undefined) args.push('--hashlimit-burst', c.burst);
      if (m.mode.length) args.push('--hashlimit-mode', m.mode.join(','));
      args.push('--hashlimit-name', m.name);
      if (m.htableSize) args.push('--hashlimit-htable-size', String(m.htableSize));
      if (m.htableMax) args.push('--hashlimit-htable-max', String(m.htableMax));
      if (m.htableGcInterval !== undefined && m.htableGcInterval !== 1000) args.push('--hashlimit-htable-gcinterval', String(m.htableGcInterval));
      const expire = m.htableExpire !== undefined ? BigInt(m.htableExpire) : c.defaultExpireMs;
      if (expire !== c.quantumMs) args.push('--hashlimit-htable-expire', String(expire));
      const dmask = defaultMask(ctx.family);
      if (m.srcmask !== undefined && m.srcmask !== dmask) args.push('--hashlimit-srcmask', String(m.srcmask));
      if (m.dstmask !== undefined && m.dstmask !== dmask) args.push('--hashlimit-dstmask', String(m.dstmask));
      if (m.rateMatch) {
        args.push('--hashlimit-rate-match');
        const interval = m.rateInterval ?? (m.rate.type === 'bytes' ? 1 : UNIT_SECONDS[m.rate.rate.unit]);
        if (interval !== 1) args.push('--hashlimit-rate-interval', String(interval));
      }
      return [{ module: 'hashlimit', args, order: 0 }];
    },
    claims: [
      {
        module: 'hashlimit',
        options: [
          '--hashlimit-upto',
          '--hashlimit-above',
          '--hashlimit',
          '--hashlimit-burst',
          '--hashlimit-mode',
          '--hashlimit-srcmask',
          '--hashlimit-dstmask',
          '--hashlimit-name',
          '--hashlimit-htable-size',
          '--hashlimit-htable-max',
          '--hashlimit-htable-expire',
          '--hashlimit-htable-gcinterval',
          '--hashlimit-rate-match',
          '--hashlimit-rate-interval',
        ],
      },
    ],
    fromIptables(_module, options, ctx) {
      const bad = (o: ImportedOption) => ctx.report(diag('error', 'E-import-option', o.span, `\`${o.name} ${o.args.join(' ')}\` is not understood`));
      let name: string | undefined;
      let above = false;
      let rate: HashlimitRate | undefined;
      let burstText: string | undefined;
      const node: { -readonly [K in keyof HashlimitMatch]?: HashlimitMatch[K] } = { mode: [] };
      for (const o of options) {
        const a = o.args[0] ?? '';
        const n = /^\d+$/.test(a) ? Number(a) : undefined;
        switch (o.name) {
          case '--hashlimit-upto':
          case '--hashlimit-above':
          case '--hashlimit': {
            // `! --hashlimit-above` is `--hashlimit-upto` and vice versa.
            above = (o.name === '--hashlimit-above') !== o.negated;
            const b = /b\/s$/.test(a) ? parseBytes(a) : undefined;
            const r = b ? undefined : parseRate(a);
            if (b) rate = { type: 'bytes', ...b };
            else if (r) rate = { type: 'packets', rate: r };
            else bad(o);
            break;
          }
          case '--hashlimit-burst':
            burstText = a;
            break;
          case '--hashlimit-mode':
            node.mode = MODE_ORDER.filter((x) => a.split(/[,|]/).includes(x));
            break;
          case '--hashlimit-name':
            name = a;
            break;
          case '--hashlimit-rate-match':
            node.rateMatch = true;
            break;
          default: {
            if (n === undefined) {
              bad(o);
              break;
            }
            const key = {
              '--hashlimit-srcmask': 'srcmask',
              '--hashlimit-dstmask': 'dstmask',
              '--hashlimit-htable-size': 'htableSize',
              '--hashlimit-htable-max': 'htableMax',
              '--hashlimit-htable-expire': 'htableExpire',
              '--hashlimit-htable-gcinterval': 'htableGcInterval',
              '--hashlimit-rate-interval': 'rateInterval',
            }[o.name] as 'srcmask' | 'dstmask' | 'htableSize' | 'htableMax' | 'htableExpire' | 'htableGcInterval' | 'rateInterval' | undefined;
            if (key) node[key] = n;
            else bad(o);
          }
        }
      }
      if (!name || !rate) {
        ctx.report(diag('error', 'E-import-option', optionsSpan(options, ctx.sectionSpan), '-m hashlimit needs --hashlimit-name and a rate'));
        return [];
      }
      let burst: HashlimitMatch['burst'];
      if (burstText !== undefined) {
        const b = rate.type === 'bytes' ? parseBytes(burstText) : /^\d+$/.test(burstText) ? Number(burstText) : undefined;
        // iptables-save always prints the packet burst; 5 is the default and left implicit.
        if (b === undefined) ctx.report(diag('error', 'E-import-option', optionsSpan(options), `\`--hashlimit-burst ${burstText}\` is not understood`));
        else if (b !== 5) burst = b;
      }
      return [{ kind: 'hashlimit', name, above, rate, ...(burst !== undefined ? { burst } : {}), ...node, mode: node.mode ?? [], span: optionsSpan(options, ctx.sectionSpan) }];
    },
  },
};
