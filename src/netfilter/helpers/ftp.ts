import { formatAddress, type Family } from '../../util/ip.js';
import { add32, after, before } from '../proto/seq32.js';
import type { Direction } from '../proto/tracker.js';
import { type FtpCommand, findFtpCommand } from './ftp-parse.js';

export type { FtpCommand, FtpCommandType, FtpSearch } from './ftp-parse.js';
export { findFtpCommand } from './ftp-parse.js';

/**
 * The FTP conntrack helper (net/netfilter/nf_conntrack_ftp.c: help) and its NAT half
 * (net/netfilter/nf_nat_ftp.c), as pure functions for the simulator. For every packet of an
 * FTP control connection that has the helper attached, the simulator calls `ftpHelp`; when it
 * reports a command, the simulator registers the expectation (and, if the connection is NATed,
 * first asks `ftpNatRewrite` for the new payload and applies the sequence-number delta).
 *
 * Kernel rules worth knowing:
 * - Only ESTABLISHED packets are looked at (not the handshake, not RELATED).
 * - A command must start a segment that begins just after a newline the helper saw in the same
 *   direction. The helper learns those positions from earlier segments ending in "\n", so the
 *   first segment with data in each direction is never parsed.
 * - A segment that begins like a command but does not parse (or is cut short) is DROPPED.
 * - PORT/EPRT/227 must announce the sender's own address, else no expectation is created
 *   (unless the helper's `loose` module parameter is set).
 */

/** TCP port the helper is registered for by default (the `ports=` module parameter changes it). */
export const FTP_PORT = 21;

/** nf_conntrack_expect_policy of the ftp helper: one pending expectation, 5 minutes. */
export const FTP_EXPECT_POLICY = { maxExpected: 1, timeoutSeconds: 300 } as const;

/** How many "just after a newline" positions the helper remembers per direction (NUM_SEQ_TO_REMEMBER). */
const NL_POSITIONS = 2;

/** struct nf_ct_ftp_master: the per-connection helper state. */
export interface FtpHelperState {
  /** Sequence numbers just after a "\n", per direction (at most two each). */
  readonly afterNewline: [number[], number[]];
}

export function newFtpHelperState(): FtpHelperState {
  return { afterNewline: [[], []] };
}

/** Addresses of the master connection's tuples, as conntrack holds them (after NAT). */
export interface FtpTuples {
  readonly family: Family;
  /** ORIGINAL tuple: the client's address and the server address it connected to. */
  readonly origSrc: bigint;
  readonly origDst: bigint;
  /** REPLY tuple: the real server address and the client address the server sees (after SNAT). */
  readonly replySrc: bigint;
  readonly replyDst: bigint;
}

function tupleSrc(t: FtpTuples, dir: Direction): bigint {
  return dir === 0 ? t.origSrc : t.replySrc;
}

function tupleDst(t: FtpTuples, dir: Direction): bigint {
  return dir === 0 ? t.origDst : t.replyDst;
}

export interface FtpPacket {
  /** Direction of the packet in the control connection. */
  readonly dir: Direction;
  /** ctinfo is ESTABLISHED or ESTABLISHED_REPLY (the helper ignores NEW and RELATED packets). */
  readonly established: boolean;
  readonly seq: number;
  readonly payload: Uint8Array;
  readonly tuples: FtpTuples;
  /** The helper's `loose` module parameter (default off). */
  readonly loose?: boolean;
}

/** The data connection the helper expects (nf_ct_expect_init), before any NAT port change. */
export interface FtpExpectation {
  readonly family: Family;
  readonly proto: 6;
  /** Source address of the data connection; its source port is not checked. */
  readonly src: bigint;
  readonly dst: bigint;
  readonly dport: number;
  /**
   * Direction, relative to the master, in which the data connection's SYN travels (exp->dir):
   * the opposite of the command's. NAT of the data connection follows the master in that sense.
   */
  readonly dir: Direction;
}

export type FtpHelpResult =
  | { readonly action: 'accept'; readonly reason?: string; readonly ignored?: FtpCommand }
  | { readonly action: 'drop'; readonly reason: string }
  | { readonly action: 'expect'; readonly command: FtpCommand; readonly expectation: FtpExpectation };

/** find_nl_seq(). */
function afterNewline(state: FtpHelperState, dir: Direction, seq: number): boolean {
  return state.afterNewline[dir].includes(seq >>> 0);
}

/** update_nl_seq(): remember `seq`, replacing the older of two remembered positions if it is newer. */
function rememberNewline(state: FtpHelperState, dir: Direction, seq: number): void {
  const seen = state.afterNewline[dir];
  if (seen.includes(seq)) return;
  if (seen.length < NL_POSITIONS) {
    seen.push(seq);
    return;
  }
  const oldest = before(seen[0], seen[1]) ? 0 : 1;
  if (after(seq, seen[oldest])) seen[oldest] = seq;
}

/**
 * help() of nf_conntrack_ftp.c for one packet of the control connection. Updates the helper's
 * newline bookkeeping (except when the packet is dropped) and says what to do: accept, drop
 * (partial command), or create the returned expectation.
 */
export function ftpHelp(state: FtpHelperState, pkt: FtpPacket): FtpHelpResult {
  if (!pkt.established) return { action: 'accept', reason: 'not ESTABLISHED: not inspected' };
  const data = pkt.payload;
  if (data.length === 0) return { action: 'accept' };
  const { dir, tuples } = pkt;
  const endsInNewline = data[data.length - 1] === 0x0a;
  const nextSeq = add32(pkt.seq >>> 0, data.length);
  const finish = (r: FtpHelpResult): FtpHelpResult => {
    if (endsInNewline) rememberNewline(state, dir, nextSeq);
    return r;
  };

  if (!afterNewline(state, dir, pkt.seq)) {
    return finish({ action: 'accept', reason: 'segment does not start a line the helper knows' });
  }

  const search = findFtpCommand(data, dir, tuples.family, tupleSrc(tuples, dir));
  if (search.kind === 'partial') {
    // The kernel drops it, and does not learn its newline either.
    return { action: 'drop', reason: `partial match of ${search.pattern}` };
  }
  if (search.kind === 'none') return finish({ action: 'accept' });

  const cmd = search.command;
  const other: Direction = dir === 0 ? 1 : 0;
  // The data connection comes from where this packet goes: the peer of the command's sender.
  let dst = tupleDst(tuples, other);
  if (cmd.addr !== tupleSrc(tuples, dir)) {
    // The command names another host (e.g. a server behind partial NAT, or an attempt to open
    // a hole towards a third party): not recorded unless `loose`.
    if (!pkt.loose) {
      return finish({
        action: 'accept',
        reason: `${cmd.type} announces ${formatAddress(cmd.family, cmd.addr)}, not the sender's ${formatAddress(tuples.family, tupleSrc(tuples, dir))}`,
        ignored: cmd,
      });
    }
    dst = cmd.addr;
  }
  return finish({
    action: 'expect',
    command: cmd,
    expectation: { family: tuples.family, proto: 6, src: tupleSrc(tuples, other), dst, dport: cmd.port, dir: other },
  });
}

/**
 * nf_nat_ftp(): the address the rewritten command must announce when the connection is NATed —
 * where this packet is going to, as the receiver sees it: the REPLY tuple's destination for a
 * client command (the client's SNAT address), the ORIGINAL tuple's destination for a server
 * reply (the address the client connected to, before DNAT).
 */
export function ftpNatAddress(dir: Direction, tuples: FtpTuples): bigint {
  return tupleDst(tuples, dir === 0 ? 1 : 0);
}

function v4Bytes(addr: bigint): number[] {
  return [Number((addr >> 24n) & 0xffn), Number((addr >> 16n) & 0xffn), Number((addr >> 8n) & 0xffn), Number(addr & 0xffn)];
}

/** %pI6: eight groups of four lower-case hex digits, no compression. */
function fullIpv6(addr: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((addr >> BigInt(i * 16)) & 0xffffn).toString(16).padStart(4, '0'));
  return groups.join(':');
}

/** nf_nat_ftp_fmt_cmd(): the text that replaces the command's address/port. */
export function ftpCommandText(cmd: FtpCommand, addr: bigint, port: number): string {
  switch (cmd.type) {
    case 'PORT':
    case 'PASV': {
      // An IPv6 connection only has its first four bytes printed (the kernel reads addr->ip).
      const b = v4Bytes(cmd.family === 'ipv4' ? addr : addr >> 96n);
      return `${b.join(',')},${port >> 8},${port & 0xff}`;
    }
    case 'EPRT':
      return cmd.family === 'ipv4' ? `|1|${formatAddress('ipv4', addr)}|${port}|` : `|2|${fullIpv6(addr)}|${port}|`;
    case 'EPSV':
      return `|||${port}|`;
    default: {
      const never: never = cmd.type;
      throw new Error(`unknown FTP command ${String(never)}`);
    }
  }
}

export interface FtpRewrite {
  readonly payload: Uint8Array;
  /** The replacement text. */
  readonly text: string;
  /**
   * Change of the payload length: the simulator records it for sequence adjustment
   * (nf_ct_seqadj_set at this packet's sequence number, in this packet's direction).
   */
  readonly delta: number;
}

/**
 * nf_nat_mangle_tcp_packet() for an FTP command: replaces the address/port text with the one
 * for `addr` and `port` (the port the NAT layer reserved for the expectation, normally the
 * announced one).
 */
export function ftpNatRewrite(payload: Uint8Array, cmd: FtpCommand, addr: bigint, port: number): FtpRewrite {
  const text = ftpCommandText(cmd, addr, port);
  const repl = new TextEncoder().encode(text);
  const out = new Uint8Array(payload.length - cmd.matchLength + repl.length);
  out.set(payload.subarray(0, cmd.matchOffset), 0);
  out.set(repl, cmd.matchOffset);
  out.set(payload.subarray(cmd.matchOffset + cmd.matchLength), cmd.matchOffset + repl.length);
  return { payload: out, text, delta: repl.length - cmd.matchLength };
}
