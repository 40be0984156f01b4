import ipaddr from 'ipaddr.js';
import type { Family } from '../../util/ip.js';
import type { Direction } from '../proto/tracker.js';

/**
 * Finding FTP data-connection commands in a control-connection segment, the way the kernel's
 * FTP conntrack helper does it (net/netfilter/nf_conntrack_ftp.c: find_pattern, try_number,
 * try_rfc959, try_rfc1123, try_eprt, try_epsv_response, get_port). The kernel only looks at
 * the very beginning of a segment, compares the command case-insensitively, and is strict
 * about the rest: a command that starts right but does not parse makes it DROP the packet
 * ("partial match"). Numbers wrap like the kernel's u32/u16 arithmetic.
 */

export type FtpCommandType = 'PORT' | 'EPRT' | 'PASV' | 'EPSV';

export interface FtpCommand {
  readonly type: FtpCommandType;
  readonly family: Family;
  /**
   * The address the command announces. EPSV carries none: it is the sender's own address.
   * PORT and 227 replies on an IPv6 connection only set the top 32 bits (the kernel writes an
   * IPv4 address into the first bytes of the sender's IPv6 address).
   */
  readonly addr: bigint;
  readonly port: number;
  /** Byte offset and length of the address/port text in the payload: what NAT replaces. */
  readonly matchOffset: number;
  readonly matchLength: number;
}

export type FtpSearch =
  | { readonly kind: 'none' }
  /** The segment starts like a command but does not parse: the kernel drops it. */
  | { readonly kind: 'partial'; readonly pattern: string }
  | { readonly kind: 'found'; readonly command: FtpCommand };

const CR = 0x0d;
const isDigit = (b: number): boolean => b >= 0x30 && b <= 0x39;

/** What a command's number parser gives back: consumed length (0 = failure) and the values. */
interface Parsed {
  len: number;
  addr?: bigint;
  port?: number;
  /** Extra offset from the start of the number text to where the match really starts (PASV). */
  skipped?: number;
}

interface Ctx {
  readonly family: Family;
  /** The sender's address in the connection tuple (cmd.u3's initial value). */
  readonly sender: bigint;
}

/**
 * try_number(): `count` decimal numbers separated by `sep`, ended by `term` (0: any other
 * byte) after the last one. Returns the length consumed, 0 on failure. Values wrap at 2^32.
 */
function tryNumber(data: Uint8Array, start: number, end: number, count: number, sep: number, term: number): { len: number; values: number[] } {
  const values = new Array<number>(count).fill(0);
  let i = 0;
  for (let p = start; p < end && i < count; p++) {
    const b = data[p];
    if (isDigit(b)) {
      values[i] = (values[i] * 10 + (b - 0x30)) >>> 0;
    } else if (b === sep) {
      i++;
    } else {
      return (b === term || term === 0) && i === count - 1 ? { len: p - start, values } : { len: 0, values };
    }
  }
  return { len: 0, values };
}

/** A u32 host-order IPv4 address as the command's address for this connection's family. */
function ipv4Into(ctx: Ctx, v4: number): bigint {
  if (ctx.family === 'ipv4') return BigInt(v4 >>> 0);
  // IPv6 connection: the first four bytes of the sender's address are overwritten.
  const low96 = ctx.sender & ((1n << 96n) - 1n);
  return (BigInt(v4 >>> 0) << 96n) | low96;
}

/** try_rfc959(): "h1,h2,h3,h4,p1,p2" (PORT and the numbers of a 227 reply). */
function tryRfc959(data: Uint8Array, start: number, end: number, term: number, ctx: Ctx): Parsed {
  const { len, values: a } = tryNumber(data, start, end, 6, 0x2c /* , */, term);
  if (len === 0) return { len: 0 };
  const v4 = ((a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]) >>> 0;
  return { len, addr: ipv4Into(ctx, v4), port: ((a[4] << 8) | a[5]) & 0xffff };
}

/** try_rfc1123(): a 227 reply: the numbers start at the first digit, wherever it is. */
function tryRfc1123(data: Uint8Array, start: number, end: number, _term: number, ctx: Ctx): Parsed {
  let i = start;
  while (i < end && !isDigit(data[i])) i++;
  if (i === end) return { len: 0 };
  const r = tryRfc959(data, i, end, 0, ctx);
  return { ...r, skipped: i - start };
}

/** get_port(): digits up to `delim` (16-bit, wrapping); returns the index after the delimiter, 0 on failure. */
function getPort(data: Uint8Array, base: number, start: number, end: number, delim: number): { next: number; port: number } {
  let port = 0;
  for (let p = base + start; p < end; p++) {
    const b = data[p];
    if (b === delim) return port === 0 ? { next: 0, port } : { next: p - base + 1, port };
    if (!isDigit(b)) break;
    port = (port * 10 + (b - 0x30)) & 0xffff;
  }
  return { next: 0, port: 0 };
}

/** A delimiter EPRT/EPSV accept: printable, not a digit (RFC 2428 suggests "|"). */
function validDelimiter(b: number): boolean {
  return !isDigit(b) && b >= 33 && b <= 126;
}

/** try_eprt(): "|1|132.235.1.2|6275|" or "|2|3ffe::1|6275|"; the family must be the connection's. */
function tryEprt(data: Uint8Array, start: number, end: number, _term: number, ctx: Ctx): Parsed {
  if (end - start <= 3) return { len: 0 };
  const delim = data[start];
  if (!validDelimiter(delim) || data[start + 2] !== delim) return { len: 0 };
  const proto = data[start + 1];
  if ((ctx.family === 'ipv4' && proto !== 0x31) || (ctx.family === 'ipv6' && proto !== 0x32)) return { len: 0 };
  let addrLen: number;
  let addr: bigint;
  if (proto === 0x31) {
    const { len, values: a } = tryNumber(data, start + 3, end, 4, 0x2e /* . */, delim);
    if (len === 0) return { len: 0 };
    addrLen = len;
    addr = BigInt(((a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]) >>> 0);
  } else {
    // in6_pton() up to the delimiter.
    let p = start + 3;
    while (p < end && data[p] !== delim) p++;
    if (p === end) return { len: 0 };
    const text = new TextDecoder('latin1').decode(data.subarray(start + 3, p));
    if (!ipaddr.IPv6.isValid(text) || text.includes('%')) return { len: 0 };
    addrLen = p - (start + 3);
    addr = ipaddr.IPv6.parse(text)
      .toByteArray()
      .reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
  }
  const { next, port } = getPort(data, start, 3 + addrLen + 1, end, delim);
  return next === 0 ? { len: 0 } : { len: next, addr, port };
}

/** try_epsv_response(): "|||6446|" — only a port; the address is the sender's. */
function tryEpsv(data: Uint8Array, start: number, end: number, _term: number, ctx: Ctx): Parsed {
  if (end - start <= 3) return { len: 0 };
  const delim = data[start];
  if (!validDelimiter(delim) || data[start + 1] !== delim || data[start + 2] !== delim) return { len: 0 };
  const { next, port } = getPort(data, start, 3, end, delim);
  return next === 0 ? { len: 0 } : { len: next, addr: ctx.sender, port };
}

interface Pattern {
  readonly text: string;
  /** Skip forward to just after this byte before the numbers (0: numbers follow the pattern). */
  readonly skip: number;
  /** Byte that must end the numbers (0: anything). */
  readonly term: number;
  readonly type: FtpCommandType;
  readonly parse: (data: Uint8Array, start: number, end: number, term: number, ctx: Ctx) => Parsed;
}

/** What each direction may announce: the client PORT/EPRT, the server 227 (PASV) / 229 (EPSV) replies. */
const PATTERNS: readonly (readonly Pattern[])[] = [
  [
    { text: 'PORT', skip: 0x20, term: CR, type: 'PORT', parse: tryRfc959 },
    { text: 'EPRT', skip: 0x20, term: CR, type: 'EPRT', parse: tryEprt },
  ],
  [
    { text: '227 ', skip: 0, term: 0, type: 'PASV', parse: tryRfc1123 },
    { text: '229 ', skip: 0x28 /* ( */, term: 0x29 /* ) */, type: 'EPSV', parse: tryEpsv },
  ],
];

const lower = (b: number): number => (b >= 0x41 && b <= 0x5a ? b + 32 : b);

/** strncasecmp(data, pattern, n) === 0 for an ASCII pattern. */
function startsWithCaseless(data: Uint8Array, pattern: string, n: number): boolean {
  for (let i = 0; i < n; i++) if (lower(data[i]) !== lower(pattern.charCodeAt(i))) return false;
  return true;
}

type PatternResult = { kind: 'none' } | { kind: 'partial' } | { kind: 'found'; command: FtpCommand };

/** find_pattern(). */
function findPattern(data: Uint8Array, pat: Pattern, ctx: Ctx): PatternResult {
  const dlen = data.length;
  const plen = pat.text.length;
  if (dlen <= plen) {
    // A segment shorter than the command: it may continue in the next one.
    return startsWithCaseless(data, pat.text, dlen) ? { kind: 'partial' } : { kind: 'none' };
  }
  if (!startsWithCaseless(data, pat.text, plen)) return { kind: 'none' };
  let i = plen;
  if (pat.skip !== 0) {
    for (i = plen; data[i] !== pat.skip; i++) if (i === dlen - 1) return { kind: 'partial' };
    i++;
  }
  const r = pat.parse(data, i, dlen, pat.term, ctx);
  if (r.len === 0 || r.addr === undefined || r.port === undefined) return { kind: 'partial' };
  return {
    kind: 'found',
    command: { type: pat.type, family: ctx.family, addr: r.addr, port: r.port, matchOffset: i + (r.skipped ?? 0), matchLength: r.len },
  };
}

/**
 * Looks for a data-connection command at the start of `payload`, sent in direction `dir` of the
 * control connection (0: client → server, 1: server → client). `sender` is the sender's address
 * as the connection tuple of that direction holds it.
 */
export function findFtpCommand(payload: Uint8Array, dir: Direction, family: Family, sender: bigint): FtpSearch {
  const ctx: Ctx = { family, sender };
  for (const pat of PATTERNS[dir]) {
    const r = findPattern(payload, pat, ctx);
    if (r.kind === 'found') return r;
    if (r.kind === 'partial') return { kind: 'partial', pattern: pat.text.trim() };
  }
  return { kind: 'none' };
}
