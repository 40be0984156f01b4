import { TCP_FLAG } from '../../ir/fields.js';

/**
 * The static half of the kernel's TCP connection tracking (net/netfilter/nf_conntrack_proto_tcp.c,
 * Linux 6.x): state numbers and names, how a segment is classified, the per-direction state
 * transition table, the flag combinations conntrack accepts at all, and which sysctl gives
 * each state its timeout. The dynamic half (window tracking, the special cases around the
 * table) is in tcp-window.ts and tcp.ts.
 */

/** enum tcp_conntrack. The numbers matter: the kernel compares states with `<`. */
export const TCP_STATE = {
  NONE: 0,
  SYN_SENT: 1,
  SYN_RECV: 2,
  ESTABLISHED: 3,
  FIN_WAIT: 4,
  CLOSE_WAIT: 5,
  LAST_ACK: 6,
  TIME_WAIT: 7,
  CLOSE: 8,
  /** A SYN seen from the reply side while in SYN_SENT: simultaneous open. */
  SYN_SENT2: 9,
} as const;
export type TcpState = (typeof TCP_STATE)[keyof typeof TCP_STATE];

/** Names as /proc/net/nf_conntrack and `conntrack -L` print them. */
export const TCP_STATE_NAMES: readonly string[] = [
  'NONE',
  'SYN_SENT',
  'SYN_RECV',
  'ESTABLISHED',
  'FIN_WAIT',
  'CLOSE_WAIT',
  'LAST_ACK',
  'TIME_WAIT',
  'CLOSE',
  'SYN_SENT2',
];

/** Table cell: the segment is invalid in this state (TCP_CONNTRACK_MAX in the kernel). */
export const TCP_INVALID = 10;
/** Table cell: let the segment pass without changing anything, the endpoints may know better. */
export const TCP_IGNORE = 11;
export type TcpTransition = TcpState | typeof TCP_INVALID | typeof TCP_IGNORE;

/** What a segment is, for the table (enum tcp_bit_set); RST wins over SYN, SYN over FIN, FIN over ACK. */
export const SEG = { SYN: 0, SYNACK: 1, FIN: 2, ACK: 3, RST: 4, NONE: 5 } as const;
export type SegClass = (typeof SEG)[keyof typeof SEG];
export const SEG_NAMES: readonly string[] = ['SYN', 'SYN/ACK', 'FIN', 'ACK', 'RST', 'no-flags'];

export function classifySegment(flags: number): SegClass {
  if (flags & TCP_FLAG.RST) return SEG.RST;
  if (flags & TCP_FLAG.SYN) return flags & TCP_FLAG.ACK ? SEG.SYNACK : SEG.SYN;
  if (flags & TCP_FLAG.FIN) return SEG.FIN;
  if (flags & TCP_FLAG.ACK) return SEG.ACK;
  return SEG.NONE;
}

// Short names, only to keep the table below readable as a grid.
const ss = TCP_STATE.SYN_SENT;
const sr = TCP_STATE.SYN_RECV;
const es = TCP_STATE.ESTABLISHED;
const fw = TCP_STATE.FIN_WAIT;
const cw = TCP_STATE.CLOSE_WAIT;
const la = TCP_STATE.LAST_ACK;
const tw = TCP_STATE.TIME_WAIT;
const cl = TCP_STATE.CLOSE;
const s2 = TCP_STATE.SYN_SENT2;
const XX = TCP_INVALID;
const ig = TCP_IGNORE;

/**
 * NEXT_STATE[direction][segment class][current state] → next state, XX (invalid) or ig (ignore).
 * Columns are the current state in enum order: NONE SYN_SENT SYN_RECV ESTABLISHED FIN_WAIT
 * CLOSE_WAIT LAST_ACK TIME_WAIT CLOSE SYN_SENT2. Read from the 6.x kernel; where it changed over
 * the years (SYN/ACK from the originator, SYN from the responder in TIME_WAIT) this is the
 * current behaviour, confirmed by test/kernel/tcp-*.test.ts.
 */
const NEXT_STATE: readonly (readonly (readonly TcpTransition[])[])[] = [
  // Segments sent by the side that opened the connection (ORIGINAL direction).
  [
    /* SYN     */ [ss, ss, ig, ig, ig, ig, ig, ss, ss, s2], // a new SYN on a closed entry reopens it
    /* SYN/ACK */ [XX, XX, sr, XX, XX, XX, XX, XX, XX, sr], // only meaningful in simultaneous open
    /* FIN     */ [XX, XX, fw, fw, la, la, la, tw, cl, XX],
    /* ACK     */ [es, XX, es, es, cw, cw, tw, tw, cl, XX], // from NONE: mid-stream pickup (tcp_loose)
    /* RST     */ [XX, cl, cl, cl, cl, cl, cl, cl, cl, cl],
    /* none    */ [XX, XX, XX, XX, XX, XX, XX, XX, XX, XX],
  ],
  // Segments sent by the side that was connected to (REPLY direction).
  [
    /* SYN     */ [XX, s2, XX, XX, XX, XX, XX, ss, XX, s2], // TIME_WAIT: the roles may have switched
    /* SYN/ACK */ [XX, sr, ig, ig, ig, ig, ig, ig, ig, sr],
    /* FIN     */ [XX, XX, fw, fw, la, la, la, tw, cl, XX],
    /* ACK     */ [XX, ig, sr, es, cw, cw, tw, tw, cl, ig], // SYN_SENT: maybe a challenge ACK
    /* RST     */ [XX, cl, cl, cl, cl, cl, cl, cl, cl, cl],
    /* none    */ [XX, XX, XX, XX, XX, XX, XX, XX, XX, XX],
  ],
];

export function nextState(dir: 0 | 1, seg: SegClass, state: TcpState): TcpTransition {
  return NEXT_STATE[dir][seg][state];
}

/**
 * tcp_error(): flag combinations conntrack tracks at all, after ignoring PSH, ECE and CWR.
 * Anything else (a lone FIN, SYN+FIN, SYN+RST, no flags, SYN/ACK+URG, …) is INVALID before
 * any lookup of state.
 */
const VALID_FLAGS = new Uint8Array(256);
for (const f of [
  TCP_FLAG.SYN,
  TCP_FLAG.SYN | TCP_FLAG.URG,
  TCP_FLAG.SYN | TCP_FLAG.ACK,
  TCP_FLAG.RST,
  TCP_FLAG.RST | TCP_FLAG.ACK,
  TCP_FLAG.FIN | TCP_FLAG.ACK,
  TCP_FLAG.FIN | TCP_FLAG.ACK | TCP_FLAG.URG,
  TCP_FLAG.ACK,
  TCP_FLAG.ACK | TCP_FLAG.URG,
]) {
  VALID_FLAGS[f] = 1;
}

export function validFlagCombination(flags: number): boolean {
  return VALID_FLAGS[flags & ~(TCP_FLAG.PSH | TCP_FLAG.ECE | TCP_FLAG.CWR) & 0xff] === 1;
}

/**
 * Timeout slots (the kernel's timeouts[] array): one per state plus the two caps. RETRANS is
 * used after tcp_max_retrans retransmissions or a zero window, UNACK while data is in flight.
 */
export const TIMEOUT_RETRANS = 12;
export const TIMEOUT_UNACK = 13;

/** The sysctl (without `nf_conntrack_`) behind each timeout slot; SYN_SENT2 has none (fixed 120 s). */
const TIMEOUT_SYSCTL: readonly (string | undefined)[] = [
  'tcp_timeout_syn_sent', // NONE: unused; the kernel copies SYN_SENT there
  'tcp_timeout_syn_sent',
  'tcp_timeout_syn_recv',
  'tcp_timeout_established',
  'tcp_timeout_fin_wait',
  'tcp_timeout_close_wait',
  'tcp_timeout_last_ack',
  'tcp_timeout_time_wait',
  'tcp_timeout_close',
  'tcp_timeout_syn_sent2',
  undefined,
  undefined,
  'tcp_timeout_max_retrans',
  'tcp_timeout_unacknowledged',
];
const TIMEOUT_BUILTIN: readonly number[] = [120, 120, 60, 432000, 120, 60, 30, 120, 10, 120, 0, 0, 300, 300];

const timeoutCache = new WeakMap<Readonly<Record<string, number>>, Float64Array>();
let lastTimeouts: Readonly<Record<string, number>> | undefined;
let lastTable: Float64Array | undefined;

/** Timeouts in seconds indexed by slot, for one sysctl set (cached: the hot path reads it per packet). */
export function tcpTimeouts(timeouts: Readonly<Record<string, number>>): Float64Array {
  if (timeouts === lastTimeouts) return lastTable!;
  let t = timeoutCache.get(timeouts);
  if (!t) {
    t = new Float64Array(TIMEOUT_BUILTIN.length);
    for (let i = 0; i < t.length; i++) {
      const name = TIMEOUT_SYSCTL[i];
      const v = name === undefined ? undefined : timeouts[name];
      t[i] = typeof v === 'number' && Number.isFinite(v) ? v : TIMEOUT_BUILTIN[i];
    }
    timeoutCache.set(timeouts, t);
  }
  lastTimeouts = timeouts;
  lastTable = t;
  return t;
}
