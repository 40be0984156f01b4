import { type Constraint, opaque } from '../../ir/constraint.js';
import { diag } from '../../util/diagnostics.js';
import { type Family, familyMax, formatAddress, parseAddress } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import { clauseSpan, instanceKey, optionsSpan, printName, readName } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/**
 * Lists of recently seen addresses (iptables `-m recent`):
 *
 *   recent set name ssh                     add the source address, always matches
 *   recent check name ssh seconds 60 hitcount 4   (--rcheck) seen ≥ 4 times in 60 s
 *   recent update …                          like check, and refresh the entry when it matches
 *   recent remove name ssh                   drop the address, matches if it was there
 *
 * Options: `seconds N`, `reap` (with seconds: forget older stamps), `hitcount N`, `same-ttl`
 * (--rttl), `mask ADDR`, `dest` (--rdest; default the source). `recent != check …` inverts.
 * The answer depends on earlier packets, so for the analyzer it is an opaque constraint; the
 * simulator keeps the lists (evaluate), following xt_recent.c's recent_mt.
 */
export type RecentOp = 'set' | 'check' | 'update' | 'remove';

export interface RecentMatch {
  readonly kind: 'recent';
  readonly negated: boolean;
  readonly op: RecentOp;
  readonly name: string;
  readonly seconds?: number;
  readonly reap?: boolean;
  readonly hitcount?: number;
  readonly sameTtl?: boolean;
  /** Address mask; absent: all ones (the whole address). */
  readonly mask?: { readonly family: Family; readonly value: bigint };
  readonly side: 'source' | 'dest';
  readonly span: Span;
}

const OPTION_OF: Readonly<Record<RecentOp, string>> = { set: '--set', check: '--rcheck', update: '--update', remove: '--remove' };
/** xt_recent takes any non-empty name shorter than 200 bytes (`%CURRENTTIME` is in the corpus). */
const NAME_RE = /^[^\s"'\\]{1,199}$/;
/** ip_pkt_list_tot: stamps kept per address. */
const MAX_STAMPS = 20;

export const recentKind: MatchKind<RecentMatch> = {
  kind: 'recent',
  doc: 'Lists of recently seen addresses: add (set), test (check, update) or remove the packet\'s address.',
  syntax: ['recent [!=] set|check|update|remove [name NAME] [seconds N [reap]] [hitcount N] [same-ttl] [mask ADDR] [source|dest]'],
  keywords: ['recent'],
  inFlows: false,

  parse(cur, ctx) {
    const kw = cur.next()!;
    const negated = cur.acceptNegation();
    const opW = cur.accept('set', 'check', 'update', 'remove');
    if (!opW) {
      ctx.report(diag('error', 'E-recent', cur.here(), '`recent` needs set, check, update or remove', 'e.g. recent update name ssh seconds 60 hitcount 4'));
      return undefined;
    }
    const node: { -readonly [K in keyof RecentMatch]: RecentMatch[K] } = { kind: 'recent', negated, op: opW.text as RecentOp, name: 'DEFAULT', side: 'source', span: kw.span };
    const fail = (message: string, hint?: string) => {
      ctx.report(diag('error', 'E-recent', cur.here(), message, hint));
      return undefined;
    };
    for (;;) {
      const w = cur.peekAtom();
      if (w === 'name') {
        cur.next();
        const n = readName(cur);
        if (!n || !NAME_RE.test(n.text)) return fail('`name` needs a list name', 'a word or a "string", without blanks');
        node.name = n.text;
      } else if (w === 'seconds' || w === 'hitcount') {
        cur.next();
        const n = cur.next();
        const v = n?.type === 'atom' && /^\d+$/.test(n.text) ? Number(n.text) : undefined;
        if (v === undefined || v === 0 || v > 0xffffffff) return fail(`\`${w}\` needs a positive number`);
        if (w === 'seconds') node.seconds = v;
        else node.hitcount = v;
      } else if (w === 'reap' || w === 'same-ttl') {
        cur.next();
        if (w === 'reap') node.reap = true;
        else node.sameTtl = true;
      } else if (w === 'mask') {
        cur.next();
        const n = cur.next();
        const a = n?.type === 'atom' ? parseAddress(n.text) : undefined;
        if (!a) return fail('`mask` needs an address mask', 'e.g. mask 255.255.255.0');
        node.mask = { family: a.family, value: a.value };
      } else if (w === 'source' || w === 'dest') {
        cur.next();
        node.side = w;
      } else break;
    }
    if (node.reap && node.seconds === undefined) return fail('`reap` needs `seconds`', 'iptables: --reap is only valid with --seconds');
    if ((node.op === 'set' || node.op === 'remove') && (node.seconds !== undefined || node.hitcount !== undefined)) {
      return fail(`\`seconds\` and \`hitcount\` go with check or update, not ${node.op}`);
    }
    return { ...node, span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    const w = ['recent', ...(m.negated ? ['!='] : []), m.op];
    if (m.name !== 'DEFAULT') w.push('name', printName(m.name));
    if (m.seconds !== undefined) w.push('seconds', String(m.seconds));
    if (m.reap) w.push('reap');
    if (m.hitcount !== undefined) w.push('hitcount', String(m.hitcount));
    if (m.sameTtl) w.push('same-ttl');
    if (m.mask && m.mask.value !== familyMax(m.mask.family)) w.push('mask', formatAddress(m.mask.family, m.mask.value));
    if (m.side === 'dest') w.push('dest');
    return w.join(' ');
  },

  forFamily(m, family) {
    return m.mask && m.mask.family !== family ? 'never' : m;
  },

  constraint(m): Constraint {
    return opaque(instanceKey('recent', m, `${m.op} ${m.name}`), `recent list ${m.name} (${m.op}): depends on earlier packets`);
  },

  evaluate(m, _c, ctx) {
    const p = ctx.packet;
    const addr = p.num(m.side === 'source' ? 'saddr' : 'daddr');
    if (addr === undefined) return undefined;
    const mask = m.mask?.value ?? familyMax(p.family);
    const key = `${p.family} ${addr & mask}`;
    const list = ctx.shared(`recent:${p.family}:${m.name}`, () => new Map<string, { stamps: number[]; ttl: number }>());
    const ttl = Number(p.num('ttl') ?? 0n);
    let ret = m.negated;
    const e = list.get(key);
    const touch = (entry: { stamps: number[]; ttl: number }) => {
      entry.stamps.push(ctx.now);
      if (entry.stamps.length > MAX_STAMPS) entry.stamps.shift();
      entry.ttl = ttl;
    };
    if (!e || (m.sameTtl && e.ttl !== ttl)) {
      if (m.op !== 'set') return ret;
      list.set(key, { stamps: [ctx.now], ttl });
      return !ret;
    }
    if (m.op === 'set') ret = !ret;
    else if (m.op === 'remove') {
      list.delete(key);
      ret = !ret;
    } else if (m.seconds !== undefined || m.hitcount !== undefined) {
      const since = m.seconds !== undefined ? ctx.now - m.seconds : -Infinity;
      let hits = 0;
      for (const t of e.stamps) {
        if (t < since) continue;
        if (m.hitcount === undefined || ++hits >= m.hitcount) {
          ret = !ret;
          break;
        }
      }
      if (m.reap) e.stamps = e.stamps.filter((t) => t >= since);
    } else ret = !ret;
    if (m.op === 'set' || (m.op === 'update' && ret)) touch(e);
    return ret;
  },

  iptables: {
    emit(m, ctx) {
      const args = [...(m.negated ? ['!'] : []), OPTION_OF[m.op]];
      if (m.seconds !== undefined) args.push('--seconds', String(m.seconds));
      if (m.reap) args.push('--reap');
      if (m.hitcount !== undefined) args.push('--hitcount', String(m.hitcount));
      if (m.sameTtl) args.push('--rttl');
      args.push('--name', m.name, '--mask', formatAddress(ctx.family, m.mask?.value ?? familyMax(ctx.family)), m.side === 'dest' ? '--rdest' : '--rsource');
      return [{ module: 'recent', args, order: 0 }];
    },
    claims: [{ module: 'recent', options: ['--set', '--rcheck', '--update', '--remove', '--seconds', '--reap', '--hitcount', '--rttl', '--name', '--mask', '--rsource', '--rdest'] }],
    fromIptables(_module, options, ctx) {
      const node: { -readonly [K in keyof RecentMatch]?: RecentMatch[K] } = { negated: false, name: 'DEFAULT', side: 'source' };
      for (const o of options) {
        const a = o.args[0] ?? '';
        switch (o.name) {
          case '--set':
          case '--rcheck':
          case '--update':
          case '--remove':
            node.op = (Object.entries(OPTION_OF).find(([, v]) => v === o.name)?.[0] ?? 'check') as RecentOp;
            node.negated = o.negated;
            break;
          case '--seconds':
          case '--hitcount':
            if (!/^\d+$/.test(a)) ctx.report(diag('error', 'E-import-option', o.span, `\`${o.name} ${a}\` is not a number`));
            else if (o.name === '--seconds') node.seconds = Number(a);
            else node.hitcount = Number(a);
            break;
          case '--reap':
            node.reap = true;
            break;
          case '--rttl':
            node.sameTtl = true;
            break;
          case '--name':
            node.name = a;
            break;
          case '--mask': {
            const v = parseAddress(a);
            if (!v || v.family !== ctx.family) ctx.report(diag('error', 'E-import-option', o.span, `\`--mask ${a}\` is not an address mask`));
            else if (v.value !== familyMax(ctx.family)) node.mask = { family: v.family, value: v.value };
            break;
          }
          case '--rsource':
          case '--rdest':
            node.side = o.name === '--rdest' ? 'dest' : 'source';
            break;
        }
      }
      if (!node.op) {
        ctx.report(diag('error', 'E-import-option', optionsSpan(options, ctx.sectionSpan), '-m recent needs --set, --rcheck, --update or --remove'));
        return [];
      }
      return [{ kind: 'recent', ...node, span: optionsSpan(options, ctx.sectionSpan) } as RecentMatch];
    },
  },
};
