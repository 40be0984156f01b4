import { TCP_FLAG } from '../../ir/fields.js';
import type { TcpHeader } from '../packet.js';
import { add32, after, before, sub32 } from './seq32.js';
import { SEG, type SegClass, type TcpState, TCP_STATE } from './tcp-table.js';
import type { Direction } from './tracker.js';

/**
 * Window tracking: the kernel's tcp_in_window() and its helpers (nf_conntrack_proto_tcp.c),
 * after Guido van Rooij's "Real Stateful TCP Packet Filtering". Per direction, conntrack keeps
 * how far the sender has sent (end), how far the receiver allows it to send (maxend), the
 * largest window seen (maxwin), the highest ACK sent (maxack), the window scale and flags.
 * A segment passes when its data intersects what the receiver can accept and its ACK covers
 * data that was seen; everything here works modulo 2^32 (seq32.ts).
 */

/** IP_CT_TCP_FLAG_* (per direction) and the two connection-wide last_flags bits. */
export const PEER_FLAG = {
  WINDOW_SCALE: 0x01,
  SACK_PERM: 0x02,
  /** This side sent the first FIN. */
  CLOSE_INIT: 0x04,
  /** Skip window checks for this side (mid-stream pickup, or nf_ct_set_tcp_be_liberal). */
  BE_LIBERAL: 0x08,
  /** This side has sent data the other side has not acknowledged yet. */
  DATA_UNACKNOWLEDGED: 0x10,
  MAXACK_SET: 0x20,
  /** last_flags: a SYN was let through in LAST_ACK; the next ACK may be a challenge ACK. */
  EXP_CHALLENGE_ACK: 0x40,
  /** last_flags: simultaneous open in progress. */
  SIMULTANEOUS_OPEN: 0x80,
} as const;

/** struct ip_ct_tcp_state: what conntrack knows about one direction's sender. */
export interface TcpPeer {
  end: number;
  maxend: number;
  maxwin: number;
  maxack: number;
  scale: number;
  flags: number;
}

/** struct ip_ct_tcp, in a readable working form (tcp.ts stores it compactly between packets). */
export interface TcpWork {
  state: TcpState;
  readonly seen: readonly [TcpPeer, TcpPeer];
  /** Direction and class of the last segment that changed the state (or was ignored). */
  lastDir: Direction;
  lastIndex: SegClass;
  /** Fields of the last ignored segment / last ACK, for resynchronisation and retransmission counting. */
  lastSeq: number;
  lastAck: number;
  lastEnd: number;
  lastWin: number;
  lastWscale: number;
  lastFlags: number;
  /** Retransmissions of the same ACK segment in a row (u8 in the kernel). */
  retrans: number;
}

export function newPeer(): TcpPeer {
  return { end: 0, maxend: 0, maxwin: 0, maxack: 0, scale: 0, flags: 0 };
}

export function resetWork(w: TcpWork): void {
  w.state = TCP_STATE.NONE;
  for (const p of w.seen) {
    p.end = p.maxend = p.maxwin = p.maxack = p.scale = p.flags = 0;
  }
  w.lastDir = 0;
  w.lastIndex = SEG.SYN;
  w.lastSeq = w.lastAck = w.lastEnd = w.lastWin = w.lastWscale = w.lastFlags = 0;
  w.retrans = 0;
}

/** nf_ct_tcp_state_reset(): forget a direction's window, keep only BE_LIBERAL. */
export function resetPeer(p: TcpPeer): void {
  p.end = p.maxend = p.maxwin = p.maxack = p.scale = 0;
  p.flags &= PEER_FLAG.BE_LIBERAL;
}

/** Largest window scale RFC 7323 allows (TCP_MAX_WSCALE). */
const MAX_WSCALE = 14;

/** Whether the segment carries any TCP option nfproof models (the kernel only parses when doff > 5). */
function hasOptions(th: TcpHeader): boolean {
  return th.mss !== undefined || th.wscale !== undefined || th.sackPerm === true || (th.sack?.length ?? 0) > 0;
}

/**
 * tcp_options(): window scale and SACK-permitted from a SYN or SYN/ACK. Like the kernel, a
 * segment without options leaves the direction's scale and flags as they were.
 */
export function parseOptionsInto(th: TcpHeader, p: TcpPeer): void {
  if (!hasOptions(th)) return;
  p.scale = 0;
  p.flags &= PEER_FLAG.BE_LIBERAL;
  if (th.sackPerm) p.flags |= PEER_FLAG.SACK_PERM;
  if (th.wscale !== undefined) {
    p.scale = Math.min(th.wscale, MAX_WSCALE);
    p.flags |= PEER_FLAG.WINDOW_SCALE;
  }
}

/** Sequence number just after the segment: SYN and FIN count as one byte each (segment_seq_plus_len). */
export function segmentEnd(th: TcpHeader, payloadLength: number): number {
  let end = add32(th.seq >>> 0, payloadLength);
  if (th.flags & TCP_FLAG.SYN) end = add32(end, 1);
  if (th.flags & TCP_FLAG.FIN) end = add32(end, 1);
  return end;
}

/** tcp_sack(): the highest right edge among the SACK blocks, if it is beyond `ack`. */
function highestSackEdge(th: TcpHeader, ack: number): number {
  let sack = ack;
  for (const [, right] of th.sack ?? []) {
    const r = right >>> 0;
    if (after(r, sack)) sack = r;
  }
  return sack;
}

/** An ACK may lag behind the receiver's end by at most this much (MAXACKWINDOW). */
function maxAckWindow(sender: TcpPeer): number {
  return sender.maxwin > 66000 ? sender.maxwin : 66000;
}

/**
 * tcp_init_sender(): the first SYN/ACK of a direction (or a SYN from the reply side in a
 * simultaneous open, or a SYN that restarts the handshake) defines its window. Scaling is on
 * only when both sides offered it, which is known once the reply side has spoken.
 */
function initSender(sender: TcpPeer, receiver: TcpPeer, th: TcpHeader, end: number, win: number, dir: Direction): void {
  sender.end = sender.maxend = end;
  sender.maxwin = win === 0 ? 1 : win;
  parseOptionsInto(th, sender);
  if (dir === 1 && !(sender.flags & PEER_FLAG.WINDOW_SCALE && receiver.flags & PEER_FLAG.WINDOW_SCALE)) {
    sender.scale = 0;
    receiver.scale = 0;
  }
}

export type WindowVerdict = 'accept' | 'ignore' | 'invalid';

export interface WindowResult {
  readonly verdict: WindowVerdict;
  readonly reason?: string;
}

const ACCEPT: WindowResult = { verdict: 'accept' };

/**
 * nf_tcp_log_invalid(): with be_liberal (the sysctl, or this side's BE_LIBERAL flag after a
 * pickup) a failed check lets the segment through as if it were in window.
 */
function failed(sender: TcpPeer, beLiberal: boolean, verdict: 'ignore' | 'invalid', reason: string): WindowResult {
  if (beLiberal || sender.flags & PEER_FLAG.BE_LIBERAL) return ACCEPT;
  return { verdict, reason };
}

/**
 * tcp_in_window(). `w.state` is still the state before this segment. Mutates the window data
 * even on some failures, as the kernel does (e.g. data beyond the window still moves `end`).
 * `seqOffset` is nf_ct_seq_offset(): NAT helpers that resized a payload shift the ACKs of the
 * other direction.
 */
export function tcpInWindow(
  w: TcpWork,
  th: TcpHeader,
  payloadLength: number,
  dir: Direction,
  seg: SegClass,
  beLiberal: boolean,
  seqOffset: ((dir: Direction, seq: number) => number) | undefined,
): WindowResult {
  const sender = w.seen[dir];
  const receiver = w.seen[dir === 0 ? 1 : 0];
  const syn = (th.flags & TCP_FLAG.SYN) !== 0;
  const hasAck = (th.flags & TCP_FLAG.ACK) !== 0;
  const rst = (th.flags & TCP_FLAG.RST) !== 0;

  let seq = th.seq >>> 0;
  let ack = th.ack >>> 0;
  let sack = ack;
  const winRaw = th.window & 0xffff;
  let win = winRaw;
  let end = segmentEnd(th, payloadLength);

  if (receiver.flags & PEER_FLAG.SACK_PERM) sack = highestSackEdge(th, sack);

  if (seqOffset) {
    const offset = seqOffset(dir === 0 ? 1 : 0, sub32(ack, 1));
    ack = sub32(ack, offset);
    sack = sub32(sack, offset);
  }

  if (sender.maxwin === 0) {
    // First segment from this side.
    if (syn) {
      initSender(sender, receiver, th, end, win, dir);
      if (!hasAck) return ACCEPT; // SYN from the reply side: simultaneous open
    } else {
      // Picked up mid-stream: believe what the segment says.
      sender.end = end;
      const swin = (win << sender.scale) >>> 0;
      sender.maxwin = swin === 0 ? 1 : swin;
      sender.maxend = add32(end, sender.maxwin);
      if (receiver.maxwin === 0) {
        // Nothing seen the other way yet: make the ACK checks below pass.
        receiver.end = receiver.maxend = sack;
      } else if (sack === add32(receiver.end, 1)) {
        // Likely the answer to a keepalive probe.
        receiver.end = add32(receiver.end, 1);
      }
    }
  } else if (syn && after(end, sender.end) && (w.state === TCP_STATE.SYN_SENT || w.state === TCP_STATE.SYN_RECV)) {
    // A SYN (or SYN/ACK) with a later sequence number restarts this side of the handshake.
    initSender(sender, receiver, th, end, win, dir);
    if (dir === 1 && !hasAck) return ACCEPT;
  }

  if (!hasAck) {
    ack = sack = receiver.end; // no ACK: pretend it acknowledges exactly what was seen
  } else if (rst && ack === 0) {
    ack = sack = receiver.end; // stacks that send RST+ACK with a zero ack number
  }

  if (rst && seq === 0 && w.state === TCP_STATE.SYN_SENT) {
    // A RST answering our SYN carries seq 0.
    seq = end = sender.end;
  }

  // I. Data must start no later than the right edge of the receiver's window.
  if (!before(seq, add32(sender.maxend, 1))) {
    const overshot = sub32(add32(end, 1), sender.maxend);
    const ackOk = after(sack, sub32(sub32(receiver.end, maxAckWindow(sender)), 1));
    const inRecvWin = receiver.maxwin !== 0 && after(end, sub32(sub32(sender.end, receiver.maxwin), 1));
    if (inRecvWin && ackOk && overshot <= receiver.maxwin && before(sack, add32(receiver.end, 1))) {
      // A sender that overshoots the window a little: remember the data so its ACK passes later.
      sender.end = end;
      sender.flags |= PEER_FLAG.DATA_UNACKNOWLEDGED;
      return failed(sender, beLiberal, 'ignore', `${overshot} bytes more than the receiver's window`);
    }
    return failed(sender, beLiberal, 'invalid', `SEQ is over the upper bound ${add32(sender.maxend, 1)} (beyond the receiver's window)`);
  }

  // III. The ACK must not acknowledge data that was never seen.
  if (!before(sack, add32(receiver.end, 1))) {
    return failed(sender, beLiberal, 'invalid', `ACK is over the upper bound ${add32(receiver.end, 1)} (ACKed data not seen yet)`);
  }

  // II. The data must end inside what the receiver could still accept: else a retransmission.
  const inRecvWin = receiver.maxwin === 0 || after(end, sub32(sub32(sender.end, receiver.maxwin), 1));
  if (!inRecvWin) {
    return failed(sender, beLiberal, 'ignore', 'SEQ is under the lower bound (already ACKed data retransmitted)');
  }

  // IV. The ACK must not be too old.
  if (!after(sack, sub32(sub32(receiver.end, maxAckWindow(sender)), 1))) {
    return failed(sender, beLiberal, 'ignore', 'ACK is under the lower bound (possibly overly delayed)');
  }

  // The segment is in window: update both sides.
  if (!syn) win = (win << sender.scale) >>> 0;
  const swin = add32(win, sub32(sack, ack));
  if (sender.maxwin < swin) sender.maxwin = swin;
  if (after(end, sender.end)) {
    sender.end = end;
    sender.flags |= PEER_FLAG.DATA_UNACKNOWLEDGED;
  }
  if (hasAck) {
    if (!(sender.flags & PEER_FLAG.MAXACK_SET)) {
      sender.maxack = ack;
      sender.flags |= PEER_FLAG.MAXACK_SET;
    } else if (after(ack, sender.maxack)) {
      sender.maxack = ack;
    }
  }

  if (receiver.maxwin !== 0 && after(end, sender.maxend)) {
    receiver.maxwin = add32(receiver.maxwin, sub32(end, sender.maxend));
  }
  if (after(add32(sack, win), sub32(receiver.maxend, 1))) {
    receiver.maxend = add32(sack, win);
    if (win === 0) receiver.maxend = add32(receiver.maxend, 1);
  }
  if (ack === receiver.end) receiver.flags &= ~PEER_FLAG.DATA_UNACKNOWLEDGED;

  // Count identical ACK segments in a row: a peer that keeps retransmitting gets a shorter timer.
  if (seg === SEG.ACK) {
    if (w.lastDir === dir && w.lastSeq === seq && w.lastAck === ack && w.lastEnd === end && w.lastWin === winRaw) {
      w.retrans = (w.retrans + 1) & 0xff;
    } else {
      w.lastDir = dir;
      w.lastSeq = seq;
      w.lastAck = ack;
      w.lastEnd = end;
      w.lastWin = winRaw;
      w.retrans = 0;
    }
  }
  return ACCEPT;
}
