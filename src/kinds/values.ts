import { diag } from '../util/diagnostics.js';
import {
  type Family,
  type IpPrefix,
  type IpRange,
  formatPrefix,
  formatRange,
  parsePrefix,
  parseRange,
} from '../util/ip.js';
import type { Span } from '../util/span.js';
import type { DslContext, Word, WordCursor } from './dsl.js';

/**
 * Value readers shared by kinds: addresses, ports, numbers, keyword lists. They read one value
 * word (atom, `{ set }` or `@ref`), report mistakes with a hint, and return undefined on error.
 */

export type AddrItem =
  | ({ readonly type: 'prefix' } & IpPrefix)
  | ({ readonly type: 'range' } & IpRange);

export interface AddrValue {
  /** Included items, in the order written. */
  readonly items: readonly AddrItem[];
  /** Items written as `!x` inside a set: subtracted from the included ones. */
  readonly excluded: readonly AddrItem[];
  /** Name of the define it came from, for printing. */
  readonly ref?: string;
}

export function formatAddrItem(i: AddrItem): string {
  if (i.type === 'range') return formatRange(i);
  const full = i.family === 'ipv4' ? 32 : 128;
  const p = formatPrefix(i);
  return i.len === full ? p.slice(0, p.lastIndexOf('/')) : p;
}

export function formatAddrValue(v: AddrValue): string {
  if (v.ref) return `@${v.ref}`;
  if (v.items.length === 1 && v.excluded.length === 0) return formatAddrItem(v.items[0]);
  return `{ ${[...v.items.map(formatAddrItem), ...v.excluded.map((i) => `!${formatAddrItem(i)}`)].join(', ')} }`;
}

export function parseAddrItem(text: string, span: Span, ctx: DslContext): AddrItem | undefined {
  if (text === 'any' || text === '0/0') {
    ctx.report(diag('error', 'E-any-in-set', span, '`any` cannot be an element of an address set', 'leave the address clause out to match any address'));
    return undefined;
  }
  if (text.includes('-') && !text.includes('/')) {
    const r = parseRange(text);
    if (r) return { type: 'range', ...r };
    ctx.report(
      diag('error', 'E-bad-address', span, `\`${text}\` is not an address range`, 'write a range as FIRST-LAST with both ends of one family, FIRST ≤ LAST, e.g. 10.0.0.1-10.0.0.9'),
    );
    return undefined;
  }
  const p = parsePrefix(text);
  if (!p) {
    ctx.report(
      diag('error', 'E-bad-address', span, `\`${text}\` is not an IPv4 or IPv6 address or prefix`, 'write e.g. 192.168.1.10, 10.0.0.0/8, fd00::/64 or a range 10.0.0.1-10.0.0.9, or @name for a define'),
    );
    return undefined;
  }
  if (p.hostBitsSet) {
    ctx.report(
      diag('warning', 'W-host-bits', span, `\`${text}\` has host bits set; it means ${formatPrefix(p)}`, `write ${formatPrefix(p)} (iptables masks the address the same way)`),
    );
  }
  return { type: 'prefix', family: p.family, addr: p.addr, len: p.len };
}

/** Resolves a `@ref` chain to its words, reporting cycles. */
function resolveRef(w: Extract<Word, { type: 'ref' }>, ctx: DslContext, seen: Set<string>): readonly Word[] | undefined {
  if (seen.has(w.name)) {
    ctx.report(diag('error', 'E-define-cycle', w.span, `define @${w.name} refers to itself`, 'break the cycle between the defines'));
    return undefined;
  }
  seen.add(w.name);
  const d = ctx.resolve(w);
  return d?.value;
}

/** Reads the items of one address value word into `into`. */
function collectAddr(
  w: Word,
  ctx: DslContext,
  into: { items: AddrItem[]; excluded: AddrItem[] },
  negate: boolean,
  seen: Set<string>,
): boolean {
  switch (w.type) {
    case 'atom': {
      const item = parseAddrItem(w.text, w.span, ctx);
      if (!item) return false;
      (negate ? into.excluded : into.items).push(item);
      return true;
    }
    case 'ref': {
      const words = resolveRef(w, ctx, seen);
      if (!words) return false;
      // A define is one value word; `!@x` inside a set excludes all of @x's items.
      const ok = words.every((x) => collectAddr(x, ctx, into, negate, seen));
      // `seen` is the path of defines being expanded: @x used twice, or through two defines, is no cycle.
      seen.delete(w.name);
      return ok;
    }
    case 'set': {
      let ok = true;
      for (const item of w.items) {
        let neg = negate;
        let words = item;
        if (words[0]?.type === 'bang') {
          neg = !neg;
          words = words.slice(1);
        }
        if (words.length !== 1) {
          ctx.report(diag('error', 'E-bad-set-item', (item[0] ?? w).span, 'each set element is one address, prefix, range or @name', 'separate elements with commas'));
          ok = false;
          continue;
        }
        ok = collectAddr(words[0], ctx, into, neg, seen) && ok;
      }
      return ok;
    }
    default:
      ctx.report(diag('error', 'E-expected-address', w.span, `expected an address, prefix, range, { set } or @name, found \`${w.type === 'string' ? 'a string' : w.type}\``));
      return false;
  }
}

export function readAddrValue(cur: WordCursor, ctx: DslContext, what: string): AddrValue | undefined {
  const w = cur.next();
  if (!w) {
    ctx.report(diag('error', 'E-missing-value', cur.endSpan, `${what} needs an address`, 'e.g. 192.168.1.0/24, { 10.0.0.1, 10.0.0.2 } or @name'));
    return undefined;
  }
  const into = { items: [] as AddrItem[], excluded: [] as AddrItem[] };
  if (!collectAddr(w, ctx, into, false, new Set())) return undefined;
  if (into.items.length === 0 && into.excluded.length === 0) {
    ctx.report(diag('error', 'E-empty-set', w.span, `${what} set is empty`, 'an empty set matches nothing; remove the rule instead'));
    return undefined;
  }
  return { ...into, ...(w.type === 'ref' ? { ref: w.name } : {}) };
}

/** Family of an address value's items (both when mixed). */
export function addrFamilies(v: AddrValue): Family[] {
  const fams = new Set<Family>([...v.items, ...v.excluded].map((i) => i.family));
  return (['ipv4', 'ipv6'] as const).filter((f) => fams.has(f));
}

export type PortItem = readonly [lo: number, hi: number];

export interface PortValue {
  readonly items: readonly PortItem[];
  readonly ref?: string;
}

export function formatPortItem([lo, hi]: PortItem): string {
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

export function formatPortValue(v: PortValue): string {
  if (v.ref) return `@${v.ref}`;
  return v.items.length === 1 ? formatPortItem(v.items[0]) : `{ ${v.items.map(formatPortItem).join(', ')} }`;
}

const PORT_RE = /^(\d{1,5})(?:[-:](\d{1,5}))?$/;

function parsePortItem(w: Word, ctx: DslContext): PortItem | undefined {
  const m = w.type === 'atom' ? PORT_RE.exec(w.text) : null;
  if (!m) {
    ctx.report(diag('error', 'E-bad-port', w.span, `\`${w.type === 'atom' ? w.text : w.type}\` is not a port or port range`, 'write a port (22), a range (1024-65535), a set { 80, 443 } or @name'));
    return undefined;
  }
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > 65535 || hi > 65535) {
    ctx.report(diag('error', 'E-bad-port', w.span, `port range \`${(w as { text: string }).text}\` goes above 65535`, 'ports are 0-65535, written LOW-HIGH'));
    return undefined;
  }
  if (lo > hi) {
    // iptables accepts a reversed range and the kernel then matches no port; keep it, but say so.
    ctx.report(diag('warning', 'W-empty-port-range', w.span, `port range \`${(w as { text: string }).text}\` is reversed: it matches no port`, `write ${hi}-${lo} if that was meant`));
  }
  return [lo, hi];
}

function collectPorts(w: Word, ctx: DslContext, into: PortItem[], seen: Set<string>): boolean {
  switch (w.type) {
    case 'atom': {
      const p = parsePortItem(w, ctx);
      if (p) into.push(p);
      return p !== undefined;
    }
    case 'ref': {
      const words = resolveRef(w, ctx, seen);
      const ok = words !== undefined && words.every((x) => collectPorts(x, ctx, into, seen));
      seen.delete(w.name);
      return ok;
    }
    case 'set': {
      let ok = true;
      for (const item of w.items) {
        if (item.length !== 1) {
          ctx.report(diag('error', 'E-bad-set-item', (item[0] ?? w).span, 'each port set element is one port, range or @name', 'port sets cannot exclude elements; use `dport != …` on the whole set'));
          ok = false;
          continue;
        }
        ok = collectPorts(item[0], ctx, into, seen) && ok;
      }
      return ok;
    }
    default:
      ctx.report(diag('error', 'E-bad-port', w.span, 'expected a port, range, { set } or @name'));
      return false;
  }
}

export function readPortValue(cur: WordCursor, ctx: DslContext, what: string): PortValue | undefined {
  const w = cur.next();
  if (!w) {
    ctx.report(diag('error', 'E-missing-value', cur.endSpan, `${what} needs a port`, 'e.g. 22, 1024-65535 or { 80, 443 }'));
    return undefined;
  }
  const items: PortItem[] = [];
  if (!collectPorts(w, ctx, items, new Set())) return undefined;
  return { items, ...(w.type === 'ref' ? { ref: w.name } : {}) };
}

/** Reads a decimal or 0x-hex number within [0, max]. */
export function readNumber(cur: WordCursor, ctx: DslContext, what: string, max: bigint): bigint | undefined {
  const w = cur.next();
  const text = w?.type === 'atom' ? w.text : undefined;
  const v = text !== undefined && /^(0x[0-9a-fA-F]+|\d+)$/.test(text) ? BigInt(text) : undefined;
  if (v === undefined || v > max) {
    ctx.report(diag('error', 'E-bad-number', w?.span ?? cur.endSpan, `${what} needs a number from 0 to ${max}`, 'write it in decimal or as 0x… hex'));
    return undefined;
  }
  return v;
}

/** Parses `value` or `value/mask` (decimal or hex), as marks are written. */
export function parseValueMask(text: string, max: bigint): { value: bigint; mask: bigint } | undefined {
  const m = /^(0x[0-9a-fA-F]+|\d+)(?:\/(0x[0-9a-fA-F]+|\d+))?$/.exec(text);
  if (!m) return undefined;
  const value = BigInt(m[1]);
  const mask = m[2] === undefined ? max : BigInt(m[2]);
  return value <= max && mask <= max ? { value, mask } : undefined;
}

/**
 * Reads a comma-separated list of keywords (`established,related` or `established, related`
 * or `{ established, related }`) where each must be one of `allowed`.
 */
export function readKeywordList<T extends string>(
  cur: WordCursor,
  ctx: DslContext,
  what: string,
  allowed: readonly T[],
): T[] | undefined {
  const out: T[] = [];
  const check = (w: Word): boolean => {
    if (w.type === 'atom') {
      const parts = w.text.split(',').filter((p) => p !== '');
      for (const p of parts) {
        const lower = p.toLowerCase() as T;
        if (!allowed.includes(lower)) {
          ctx.report(diag('error', 'E-bad-keyword', w.span, `\`${p}\` is not a valid ${what}`, `one of: ${allowed.join(', ')}`));
          return false;
        }
        out.push(lower);
      }
      return parts.length > 0;
    }
    if (w.type === 'set') return w.items.every((item) => item.length === 1 && check(item[0]));
    ctx.report(diag('error', 'E-bad-keyword', w.span, `expected a ${what}`, `one of: ${allowed.join(', ')}`));
    return false;
  };
  const first = cur.next();
  if (!first) {
    ctx.report(diag('error', 'E-missing-value', cur.endSpan, `expected a ${what}`, `one of: ${allowed.join(', ')}`));
    return undefined;
  }
  if (!check(first)) return undefined;
  // `a, b, c` written with spaces after commas arrives as atom comma atom …
  while (cur.peek()?.type === 'comma') {
    cur.next();
    const w = cur.next();
    if (!w || !check(w)) return undefined;
  }
  return out;
}
