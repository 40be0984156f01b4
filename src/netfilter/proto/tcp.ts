import { TCP_FLAG } from '../../ir/fields.js';
import type { Packet, TcpHeader } from '../packet.js';
import { before } from './seq32.js';
import {
  classifySegment,
  nextState,
  SEG,
  SEG_NAMES,
  type SegClass,
  TCP_IGNORE,
  TCP_INVALID,
  TCP_STATE,
  TCP_STATE_NAMES,
  type TcpState,
  tcpTimeouts,
  TIMEOUT_RETRANS,
  TIMEOUT_UNACK,
  validFlagCombination,
} from './tcp-table.js';
import { newPeer, PEER_FLAG, parseOptionsInto, resetPeer, resetWork, segmentEnd, tcpInWindow, type TcpWork } from './tcp-window.js';
import type { Direction, ProtoTracker, TrackContext, TrackerSysctls, TrackResult } from './tracker.js';

/**
 * The TCP connection tracker: nf_conntrack_tcp_packet() and tcp_new() of the Linux 6.x kernel
 * (net/netfilter/nf_conntrack_proto_tcp.c), rewritten for nfproof. It decides, per segment,
 * whether it belongs to the connection (and the new state and timer), must be reported INVALID,
 * is let through unchanged ("ignored"), destroys the entry, or reopens it as a new connection.
 *
 * Storage: a connection's state is a TcpConn (14 small integers, 128 bytes on the V8 heap).
 * The logic runs on one scratch TcpWork with readable fields, loaded before and stored after
 * each segment, so the hot path allocates nothing.
 */

/** Compact per-connection state. u32 values are kept as int32 so V8 stores them unboxed. */
export class TcpConn {
  /** state | lastDir<<4 | lastIndex<<5 | retrans<<8 | lastWscale<<16 | lastFlags<<20 */
  meta = 0;
  /** scale0 | flags0<<4 | scale1<<12 | flags1<<16 */
  peerMeta = 0;
  end0 = 0;
  maxend0 = 0;
  maxwin0 = 0;
  maxack0 = 0;
  end1 = 0;
  maxend1 = 0;
  maxwin1 = 0;
  maxack1 = 0;
  lastSeq = 0;
  lastAck = 0;
  lastEnd = 0;
  lastWin = 0;
}

function newWork(): TcpWork {
  return {
    state: TCP_STATE.NONE,
    seen: [newPeer(), newPeer()],
    lastDir: 0,
    lastIndex: SEG.SYN,
    lastSeq: 0,
    lastAck: 0,
    lastEnd: 0,
    lastWin: 0,
    lastWscale: 0,
    lastFlags: 0,
    retrans: 0,
  };
}

/** The one scratch object the tracker works on (JavaScript runs one packet at a time). */
const W = newWork();

function load(c: TcpConn, w: TcpWork): void {
  const m = c.meta;
  w.state = (m & 0xf) as TcpState;
  w.lastDir = ((m >>> 4) & 1) as Direction;
  w.lastIndex = ((m >>> 5) & 7) as SegClass;
  w.retrans = (m >>> 8) & 0xff;
  w.lastWscale = (m >>> 16) & 0xf;
  w.lastFlags = (m >>> 20) & 0xff;
  const pm = c.peerMeta;
  const s0 = w.seen[0];
  const s1 = w.seen[1];
  s0.scale = pm & 0xf;
  s0.flags = (pm >>> 4) & 0xff;
  s1.scale = (pm >>> 12) & 0xf;
  s1.flags = (pm >>> 16) & 0xff;
  s0.end = c.end0 >>> 0;
  s0.maxend = c.maxend0 >>> 0;
  s0.maxwin = c.maxwin0 >>> 0;
  s0.maxack = c.maxack0 >>> 0;
  s1.end = c.end1 >>> 0;
  s1.maxend = c.maxend1 >>> 0;
  s1.maxwin = c.maxwin1 >>> 0;
  s1.maxack = c.maxack1 >>> 0;
  w.lastSeq = c.lastSeq >>> 0;
  w.lastAck = c.lastAck >>> 0;
  w.lastEnd = c.lastEnd >>> 0;
  w.lastWin = c.lastWin;
}

function store(w: TcpWork, c: TcpConn): void {
  c.meta = w.state | (w.lastDir << 4) | (w.lastIndex << 5) | (w.retrans << 8) | (w.lastWscale << 16) | (w.lastFlags << 20);
  const s0 = w.seen[0];
  const s1 = w.seen[1];
  c.peerMeta = s0.scale | (s0.flags << 4) | (s1.scale << 12) | (s1.flags << 16);
  c.end0 = s0.end | 0;
  c.maxend0 = s0.maxend | 0;
  c.maxwin0 = s0.maxwin | 0;
  c.maxack0 = s0.maxack | 0;
  c.end1 = s1.end | 0;
  c.maxend1 = s1.maxend | 0;
  c.maxwin1 = s1.maxwin | 0;
  c.maxack1 = s1.maxack | 0;
  c.lastSeq = w.lastSeq | 0;
  c.lastAck = w.lastAck | 0;
  c.lastEnd = w.lastEnd | 0;
  c.lastWin = w.lastWin;
}

/** A readable copy of a connection's tracking data, for tests, traces and debugging. */
export function tcpInspect(c: TcpConn): TcpWork {
  const w = newWork();
  load(c, w);
  return w;
}

/** Builds a TcpConn from readable data (tests use it to start from a given state). */
export function tcpFromWork(w: TcpWork): TcpConn {
  const c = new TcpConn();
  store(w, c);
  return c;
}

export function tcpStateOf(c: TcpConn): TcpState {
  return (c.meta & 0xf) as TcpState;
}

/** tcp_can_early_drop(): closing connections may be evicted under table pressure even when ASSURED. */
function closing(state: TcpState): boolean {
  return (
    state === TCP_STATE.FIN_WAIT ||
    state === TCP_STATE.LAST_ACK ||
    state === TCP_STATE.TIME_WAIT ||
    state === TCP_STATE.CLOSE ||
    state === TCP_STATE.CLOSE_WAIT
  );
}

const dirName = (dir: Direction): string => (dir === 0 ? 'original' : 'reply');

/**
 * Accept results are immutable and few (one per timeout slot of a sysctl set): reuse them
 * instead of allocating one per segment on the hot path.
 */
let acceptFor: Float64Array | undefined;
let acceptBySlot: (TrackResult | undefined)[] = [];
function acceptWith(timeouts: Float64Array, slot: number): TrackResult {
  if (timeouts !== acceptFor) {
    acceptFor = timeouts;
    acceptBySlot = [];
  }
  return (acceptBySlot[slot] ??= Object.freeze({ verdict: 'accept', timeout: timeouts[slot] }));
}

function invalid(reason: string): TrackResult {
  return { verdict: 'invalid', reason };
}

/**
 * nf_tcp_handle_invalid(): an out-of-window FIN or RST on an ASSURED connection, answered by
 * another one from the other side, shortens the timer to the "unacknowledged" timeout so that
 * connections conntrack lost sync with do not linger for days. Returns the new timeout, if any.
 */
function lowerTimeoutOnInvalid(w: TcpWork, dir: Direction, seg: SegClass, ctx: TrackContext, timeouts: Float64Array): number | undefined {
  if (!ctx.assured) return undefined;
  if (seg !== SEG.RST && seg !== SEG.FIN) return undefined;
  if (w.lastDir !== dir && (w.lastIndex === SEG.FIN || w.lastIndex === SEG.RST)) {
    const expires = ctx.expiresIn ?? Number.POSITIVE_INFINITY;
    if (expires < 120) return undefined;
    const unack = timeouts[TIMEOUT_UNACK];
    return expires > unack ? unack : undefined;
  }
  w.lastIndex = seg;
  w.lastDir = dir;
  return undefined;
}

/** Records an ignored segment so that a later SYN/ACK, RST or challenge ACK can be recognised. */
function rememberIgnored(w: TcpWork, th: TcpHeader, payloadLength: number, seg: SegClass, dir: Direction, oldState: TcpState): void {
  w.lastIndex = seg;
  w.lastDir = dir;
  w.lastSeq = th.seq >>> 0;
  w.lastEnd = segmentEnd(th, payloadLength);
  w.lastWin = th.window & 0xffff;
  if (seg === SEG.SYN && dir === 0) {
    // Keep the SYN's options: if the server answers it, we resynchronise from them.
    const opts = newPeer();
    parseOptionsInto(th, opts);
    w.lastFlags = 0;
    w.lastWscale = 0;
    if (opts.flags & PEER_FLAG.WINDOW_SCALE) {
      w.lastFlags |= PEER_FLAG.WINDOW_SCALE;
      w.lastWscale = opts.scale;
    }
    if (opts.flags & PEER_FLAG.SACK_PERM) w.lastFlags |= PEER_FLAG.SACK_PERM;
    // In LAST_ACK the peer may answer this SYN with a challenge ACK, which must not close the entry.
    if (oldState === TCP_STATE.LAST_ACK) w.lastFlags |= PEER_FLAG.EXP_CHALLENGE_ACK;
  }
  // In SYN_SENT a bare ACK from the server may be a challenge ACK to an old connection.
  if (oldState === TCP_STATE.SYN_SENT && seg === SEG.ACK && dir === 1) w.lastAck = th.ack >>> 0;
}

/** nf_conntrack_tcp_packet() from the state lookup on, working on W. */
function trackSegment(w: TcpWork, pkt: Packet, th: TcpHeader, dir: Direction, ctx: TrackContext): TrackResult {
  const sys = ctx.sys;
  const timeouts = tcpTimeouts(sys.timeouts);
  const payloadLength = pkt.payload.length;
  const other: Direction = dir === 0 ? 1 : 0;
  const seg = classifySegment(th.flags);
  let oldState = w.state;
  let next = nextState(dir, seg, oldState);
  let checkWindow = true;

  // A SYN on a connection that is over (TIME_WAIT, CLOSE) opens a new one, if this one really was
  // closed: a FIN was seen, or this side itself reset it. Otherwise it is just let through.
  if (next === TCP_STATE.SYN_SENT && oldState >= TCP_STATE.TIME_WAIT) {
    const closeSeen = ((w.seen[dir].flags | w.seen[other].flags) & PEER_FLAG.CLOSE_INIT) !== 0;
    if (closeSeen || (w.lastDir === dir && w.lastIndex === SEG.RST)) {
      return { verdict: 'restart', reason: `SYN reopens a connection in ${TCP_STATE_NAMES[oldState]}` };
    }
    next = TCP_IGNORE;
  }

  switch (next) {
    case TCP_IGNORE: {
      if (seg === SEG.SYNACK && w.lastIndex === SEG.SYN && w.lastDir !== dir && th.ack >>> 0 === w.lastEnd) {
        // The SYN/ACK answers a SYN we ignored: both ends agree on a new connection and we follow
        // them, rebuilding the originator's window from what we noted about its SYN.
        oldState = TCP_STATE.SYN_SENT;
        next = TCP_STATE.SYN_RECV;
        const syner = w.seen[w.lastDir];
        syner.end = syner.maxend = w.lastEnd;
        syner.maxwin = w.lastWin === 0 ? 1 : w.lastWin;
        syner.scale = w.lastWscale;
        w.lastFlags &= ~PEER_FLAG.EXP_CHALLENGE_ACK;
        syner.flags = w.lastFlags;
        resetPeer(w.seen[dir]);
        break;
      }
      rememberIgnored(w, th, payloadLength, seg, dir, oldState);
      return { verdict: 'accept', ignored: true, reason: `${SEG_NAMES[seg]} (${dirName(dir)}) ignored in ${TCP_STATE_NAMES[oldState]}` };
    }
    case TCP_INVALID:
      return invalid(`${SEG_NAMES[seg]} (${dirName(dir)}) is invalid in ${TCP_STATE_NAMES[oldState]}`);
    case TCP_STATE.TIME_WAIT:
      if (
        oldState === TCP_STATE.LAST_ACK &&
        seg === SEG.ACK &&
        w.lastDir !== dir &&
        w.lastIndex === SEG.SYN &&
        w.lastFlags & PEER_FLAG.EXP_CHALLENGE_ACK
      ) {
        // RFC 5961 challenge ACK to the SYN we let through: it does not acknowledge the last FIN.
        w.lastFlags &= ~PEER_FLAG.EXP_CHALLENGE_ACK;
        return { verdict: 'accept', ignored: true, reason: 'challenge ACK in LAST_ACK ignored' };
      }
      break;
    case TCP_STATE.SYN_SENT2:
      w.lastFlags |= PEER_FLAG.SIMULTANEOUS_OPEN;
      break;
    case TCP_STATE.SYN_RECV:
      if (dir === 1 && seg === SEG.ACK && w.lastFlags & PEER_FLAG.SIMULTANEOUS_OPEN) next = TCP_STATE.ESTABLISHED;
      break;
    case TCP_STATE.CLOSE: {
      if (seg !== SEG.RST) break;
      // A closing entry may already belong to a reused tuple: accept any RST without checks.
      if (closing(oldState)) {
        checkWindow = false;
        break;
      }
      const peer = w.seen[other];
      if (peer.flags & PEER_FLAG.MAXACK_SET && w.lastIndex !== SEG.SYN) {
        const seq = th.seq >>> 0;
        const established = oldState === TCP_STATE.ESTABLISHED && ctx.assured;
        // seq 0 before ESTABLISHED: most likely the answer to a SYN we let through.
        if (seq === 0 && !established) break;
        if (before(seq, peer.maxack) && !sys.tcpIgnoreInvalidRst) {
          return invalid(`RST sequence ${seq} is below the peer's last ACK ${peer.maxack}`);
        }
        if (!established || seq === peer.maxack) break;
        // A RST right after our own data segment (a "train") carries that segment's end.
        if (w.lastIndex === SEG.ACK && w.lastDir === dir && seq === w.lastEnd) break;
        // In window but not the exact next sequence number: keep the state, the peer will
        // answer with a challenge ACK and the sender can reset with the right number.
        next = oldState;
      }
      if (
        ((ctx.seenReply && w.lastIndex === SEG.SYN && w.lastDir !== dir) || (!ctx.assured && w.lastIndex === SEG.ACK)) &&
        th.ack >>> 0 === w.lastEnd
      ) {
        // RST answering a SYN or ACK we let through (half-open connection): accept it unchecked.
        // The SYN case requires the RST to come from the other side: a 2026 fix (stable, in the
        // 6.18 kernel the tests run on) so that a SYN plus a bogus RST cannot close an entry.
        checkWindow = false;
        break;
      }
      if (oldState === TCP_STATE.SYN_SENT && w.lastIndex === SEG.ACK && w.lastDir === 1 && th.seq >>> 0 === w.lastAck) {
        // RST answering a challenge ACK we let through earlier.
        checkWindow = false;
      }
      break;
    }
    default:
      break;
  }

  if (checkWindow) {
    const win = tcpInWindow(w, th, payloadLength, dir, seg, sys.tcpBeLiberal, ctx.seqOffset);
    if (win.verdict === 'ignore') return { verdict: 'accept', ignored: true, reason: win.reason };
    if (win.verdict === 'invalid') {
      const lowered = lowerTimeoutOnInvalid(w, dir, seg, ctx, timeouts);
      return lowered === undefined ? invalid(win.reason ?? 'out of window') : { verdict: 'invalid', reason: win.reason, timeout: lowered };
    }
  }

  // The segment is part of the connection.
  const state = next as TcpState;
  w.lastIndex = seg;
  w.lastDir = dir;
  w.state = state;
  if (oldState !== state && state === TCP_STATE.FIN_WAIT) w.seen[dir].flags |= PEER_FLAG.CLOSE_INIT;

  // Which timeout slot applies (the kernel's choice of timeouts[]).
  let slot: number;
  if (w.retrans >= sys.tcpMaxRetrans && timeouts[state] > timeouts[TIMEOUT_RETRANS]) slot = TIMEOUT_RETRANS;
  else if (seg === SEG.RST) slot = TCP_STATE.CLOSE;
  else if ((w.seen[0].flags | w.seen[1].flags) & PEER_FLAG.DATA_UNACKNOWLEDGED && timeouts[state] > timeouts[TIMEOUT_UNACK]) slot = TIMEOUT_UNACK;
  else if (w.lastWin === 0 && timeouts[state] > timeouts[TIMEOUT_RETRANS]) slot = TIMEOUT_RETRANS;
  else slot = state;

  if (!ctx.seenReply) {
    // Nothing came back yet. A RST is the only answer: drop the entry at once.
    if (th.flags & TCP_FLAG.RST) return { verdict: 'accept', kill: true, reason: 'RST before any reply: entry removed' };
    // A retransmitted SYN must not keep a dead entry (and its NAT binding) alive forever.
    if (seg === SEG.SYN && oldState === TCP_STATE.SYN_SENT) return { verdict: 'accept', reason: 'retransmitted SYN: timer not renewed' };
    // Picked up mid-stream and never answered: no five-day timer.
    if (state === TCP_STATE.ESTABLISHED && timeouts[slot] > timeouts[TIMEOUT_UNACK]) slot = TIMEOUT_UNACK;
  } else if (!ctx.assured && (oldState === TCP_STATE.SYN_RECV || oldState === TCP_STATE.ESTABLISHED) && state === TCP_STATE.ESTABLISHED) {
    // The handshake completed (or a picked-up connection got a valid answer).
    return { verdict: 'accept', timeout: timeouts[slot], assured: true };
  }
  return acceptWith(timeouts, slot);
}

/** tcp_error() checks that do not depend on the connection. */
function segmentError(pkt: Packet): string | undefined {
  if (!pkt.tcp) return 'not a TCP segment';
  if (!validFlagCombination(pkt.tcp.flags)) return 'invalid TCP flag combination';
  return undefined;
}

/** tcp_new(): the window data a first segment gives, or why it cannot start a connection. */
function initNew(w: TcpWork, th: TcpHeader, payloadLength: number, sys: TrackerSysctls): string | undefined {
  const seg = classifySegment(th.flags);
  const next = nextState(0, seg, TCP_STATE.NONE);
  if (next === TCP_INVALID || next === TCP_IGNORE) return `${SEG_NAMES[seg]} cannot start a connection`;
  resetWork(w);
  const first = w.seen[0];
  const win = th.window & 0xffff;
  first.end = segmentEnd(th, payloadLength);
  first.maxwin = win === 0 ? 1 : win;
  if (next === TCP_STATE.SYN_SENT) {
    first.maxend = first.end;
    parseOptionsInto(th, first);
  } else {
    if (!sys.tcpLoose) return 'no SYN and nf_conntrack_tcp_loose=0: mid-stream pickup disabled';
    // Mid-stream pickup: the history is lost, so trust this segment and check windows liberally.
    first.maxend = (first.end + first.maxwin) >>> 0;
    w.seen[0].flags = w.seen[1].flags = PEER_FLAG.SACK_PERM | PEER_FLAG.BE_LIBERAL;
  }
  w.lastIndex = SEG.NONE;
  return undefined;
}

export const tcpTracker: ProtoTracker<TcpConn> = {
  name: 'tcp',
  protos: [6],

  create(pkt, sys, now) {
    const err = segmentError(pkt);
    if (err) return { invalid: err };
    const th = pkt.tcp!;
    const whyNot = initNew(W, th, pkt.payload.length, sys);
    if (whyNot) return { invalid: whyNot };
    const r = trackSegment(W, pkt, th, 0, { sys, seenReply: false, assured: false, now });
    if (r.verdict !== 'accept') return { invalid: r.reason ?? 'invalid first segment' };
    const conn = new TcpConn();
    store(W, conn);
    return { state: conn, timeout: r.timeout ?? tcpTimeouts(sys.timeouts)[W.state] };
  },

  update(conn, pkt, dir, ctx) {
    const err = segmentError(pkt);
    if (err) return invalid(err);
    load(conn, W);
    const r = trackSegment(W, pkt, pkt.tcp!, dir, ctx);
    store(W, conn);
    return r;
  },

  stateName(conn) {
    return TCP_STATE_NAMES[tcpStateOf(conn)];
  },

  clone(conn) {
    return Object.assign(new TcpConn(), conn);
  },

  canEarlyDrop(conn) {
    return closing(tcpStateOf(conn));
  },
};

/**
 * nf_conntrack_tcp_set_closing(): the host answered this connection with a TCP RST of its own
 * (iptables REJECT --reject-with tcp-reset): the entry moves to CLOSE. Returns the new timeout,
 * or undefined when it was CLOSE already (timer untouched).
 */
export function tcpSetClosing(conn: TcpConn, sys: TrackerSysctls): number | undefined {
  if (tcpStateOf(conn) === TCP_STATE.CLOSE) return undefined;
  conn.meta = (conn.meta & ~0xf) | TCP_STATE.CLOSE;
  return tcpTimeouts(sys.timeouts)[TCP_STATE.CLOSE];
}
