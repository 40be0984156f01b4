import { c, s, type Seg } from './tcp-script.js';

/**
 * TCP packet sequences that exercise the tracker's edge cases. The kernel test
 * (test/kernel/tcp-conntrack.test.ts) plays each one through a real firewall namespace and
 * through the tracker and requires the same verdicts, states, flags and timeouts; the unit
 * tests (tcp.test.ts) check the hand-derived facts of the same sequences without a kernel.
 * Each scenario uses its own client port so that leftovers cannot interfere.
 */
export interface TcpScenario {
  readonly name: string;
  /** Firewall sysctls (net.netfilter.nf_conntrack_*) for this scenario; restored afterwards. */
  readonly sysctls?: Readonly<Record<string, string>>;
  readonly segs: readonly Seg[];
  /** Seconds to wait before each segment (index → seconds), for timer-dependent cases. */
  readonly pauses?: Readonly<Record<number, number>>;
  /** Run over IPv6 (the lab's fd00:1::2 → fd00:2::2) instead of IPv4. */
  readonly ipv6?: boolean;
}

const WS = { mss: 1460, wscale: 7, sackok: true } as const;

/** A complete handshake from client ISN `ci` and server ISN `si`, with options. */
export function handshake(ci: number, si: number): Seg[] {
  return [c('S', ci, 0, { ...WS }), s('SA', si, ci + 1, { ...WS }), c('A', ci + 1, si + 1, { win: 502 })];
}

/** A handshake without any options (no scaling, no SACK). */
export function plainHandshake(ci: number, si: number): Seg[] {
  return [c('S', ci, 0), s('SA', si, ci + 1), c('A', ci + 1, si + 1)];
}

export const TCP_SCENARIOS: readonly TcpScenario[] = [
  {
    name: 'handshake, data, orderly close, then a SYN reopening the TIME_WAIT entry',
    segs: [
      ...handshake(1000, 5000),
      c('PA', 1001, 5001, { payload: 'GET / HTTP/1.0\r\n\r\n', win: 502 }), // unacknowledged data
      s('A', 5001, 1019, { win: 509 }),
      s('PA', 5001, 1019, { len: 100, win: 509 }),
      c('A', 1019, 5101, { win: 501 }),
      c('FA', 1019, 5101, { win: 501 }), // client closes first
      s('A', 5101, 1020, { win: 509 }),
      s('FA', 5101, 1020, { win: 509 }),
      c('A', 1020, 5102, { win: 501 }), // last ACK: TIME_WAIT
      c('S', 90000, 0, { ...WS }), // same ports again: the old entry is replaced
    ],
  },
  {
    name: 'server closes first; FIN retransmitted; RST after FIN',
    segs: [
      ...plainHandshake(2000, 7000),
      s('FA', 7001, 2001),
      s('FA', 7001, 2001), // retransmitted FIN
      c('A', 2001, 7002),
      c('R', 2001, 0),
    ],
  },
  {
    name: 'RST below the last ACK, far out of window, inexact in window, then exact',
    segs: [
      ...plainHandshake(3000, 8000),
      s('PA', 8001, 3001, { len: 1000 }),
      c('A', 3001, 9001),
      s('R', 8000, 0, { win: 0 }), // below what the client acknowledged: INVALID
      s('R', 8001 + 1_000_000, 0, { win: 0 }), // beyond the window: INVALID
      s('R', 9001 + 40, 0, { win: 0 }), // in window, not the next byte: state kept
      s('RA', 9001, 3001, { win: 0 }), // exactly the next byte: CLOSE
    ],
  },
  {
    name: 'out-of-window RST and FIN from both sides shorten the timer of an ASSURED connection',
    segs: [
      ...plainHandshake(3500, 8500),
      s('R', 8501 + 1_000_000, 0, { win: 0 }), // INVALID; remembered
      c('FA', 3501 + 1_000_000, 8501), // INVALID from the other side: timer down to 300 s
      c('A', 3501, 8501), // a valid segment restores the long timer
    ],
  },
  {
    name: 'RST answering a SYN removes the entry (no reply seen)',
    segs: [c('S', 4000, 0, { ...WS }), s('RA', 0, 4001, { win: 0 })],
  },
  {
    name: 'stray ACK is picked up with tcp_loose=1 and becomes ASSURED after answers',
    segs: [c('A', 123456, 654321), s('A', 654321, 123456), c('PA', 123456, 654321, { len: 10 }), s('A', 654321, 123466)],
  },
  {
    name: 'stray ACK is INVALID with tcp_loose=0',
    sysctls: { 'net.netfilter.nf_conntrack_tcp_loose': '0' },
    segs: [c('A', 123456, 654321), c('PA', 123456, 654321, { len: 10 }), c('S', 5, 0)],
  },
  {
    name: 'SYN/ACK acknowledging data never sent is INVALID, the right one passes',
    segs: [c('S', 6000, 0, { ...WS }), s('SA', 9000, 6001 + 100_000, { ...WS }), s('SA', 9000, 6001, { ...WS }), c('A', 6001, 9001)],
  },
  {
    name: 'SYN/ACK acknowledging less than the SYN is not checked (only unseen data is)',
    segs: [c('S', 6000, 0, { ...WS }), s('SA', 9000, 4242, { ...WS }), c('A', 6001, 9001)],
  },
  {
    name: 'old SYN/ACK, SYN retransmitted, correct SYN/ACK with a lower ISN',
    // The numbers of the kernel selftest conntrack_synack_old, made absolute (client ISN X).
    segs: [
      c('S', 2375731741, 0, { ...WS, win: 65535 }),
      s('SA', 145824453, (2375731741 + 643160523) >>> 0, { mss: 1440, wscale: 0, win: 240 }), // acks unseen data
      c('S', 2375731741, 0, { ...WS, win: 65535 }),
      s('SA', 145758918, 2375731742, { mss: 1460, wscale: 0, win: 250 }),
      c('A', 2375731742, 145758919, { win: 256 }),
    ],
  },
  {
    name: 'segments that cannot start a connection: SYN/ACK, FIN/ACK, RST, data without ACK',
    segs: [s('SA', 1, 2), c('FA', 3, 4), c('R', 5, 0), c('RA', 6, 7), c('P', 8, 0, { len: 5 })],
  },
  {
    name: 'challenge ACK to a SYN in SYN_SENT, client RST, new SYN, handshake',
    segs: [
      c('S', 0x20000000, 0, { ...WS }),
      s('A', 145824453, 643160523, { win: 240 }), // challenge ACK of an older incarnation
      c('R', 643160523, 0, { win: 0 }),
      c('S', 0x20000000, 0, { ...WS }),
      s('SA', 0x30000000, 0x20000001, { mss: 1460, wscale: 0, win: 250 }),
      c('A', 0x20000001, 0x30000001, { win: 256 }),
    ],
  },
  {
    name: 'new SYN on an established connection, challenge ACK, RST, SYN again',
    segs: [
      c('S', 100, 0, { mss: 1000, wscale: 7 }),
      s('SA', 500, 101, { mss: 1460, wscale: 8 }),
      c('A', 101, 501, { win: 257 }),
      c('PA', 101, 501, { len: 100, win: 257 }),
      s('A', 501, 201, { win: 256 }),
      c('S', 2000, 0, { mss: 1000, wscale: 7 }), // ignored in ESTABLISHED
      s('A', 501, 201, { win: 256 }), // the server's challenge ACK
      c('RA', 201, 501, { win: 257 }),
      c('S', 2000, 0, { mss: 1000, wscale: 0 }),
      s('SA', 700, 2001, { mss: 1460 }),
    ],
  },
  {
    name: 'SYN in LAST_ACK and the challenge ACK that must not close the entry',
    segs: [
      ...plainHandshake(10_000, 20_000),
      c('FA', 10_001, 20_001),
      s('FA', 20_001, 10_002), // FIN both ways: LAST_ACK
      c('S', 55_555, 0, { ...WS }), // client reuses the port before the last ACK
      s('A', 20_002, 10_002), // challenge ACK
      c('R', 10_002, 0, { win: 0 }),
    ],
  },
  {
    name: 'a RST answering a SYN skips the window check only when it comes from the other side',
    // Found by the random kernel comparison: Linux 6.18 carries the fix "do not force CLOSE on
    // invalid-seq RST without direction check" (2026).
    segs: [c('S', 100_000, 0), s('SA', 500_000, 100_000 - 81_891), c('R', 1_100_000, 0), s('R', 1_500_000, 0)],
  },
  {
    name: 'simultaneous open, then RSTs far out of window from each side',
    segs: [s('S', 500_000, 0), c('S', 100_000, 0), c('R', 1_100_000, 0), s('R', 1_500_000, 0)],
  },
  {
    name: 'simultaneous open',
    segs: [c('S', 1111, 0, { ...WS }), s('S', 2222, 0, { ...WS }), c('SA', 1111, 2223, { ...WS }), s('SA', 2222, 1112, { ...WS }), s('A', 2223, 1112), c('A', 1112, 2223)],
  },
  {
    name: 'out-of-window data from the server and an ACK for data never sent',
    segs: [
      ...plainHandshake(30_000, 40_000),
      s('PA', 40_001 + 200_000, 30_001, { len: 50 }), // far beyond the client's window
      c('A', 30_001, 40_001 + 5000), // acknowledges bytes the server never sent
      s('PA', 40_001, 30_001, { len: 50 }), // in window: fine
      c('A', 30_001, 40_051),
      s('PA', 40_001, 30_001, { len: 50 }), // retransmission of acknowledged data: passes, no change
    ],
  },
  {
    name: 'window scaling: data far into the scaled window is tracked',
    segs: [
      ...handshake(50_000, 60_000), // both offer wscale 7, client window 502<<7 = 64256
      s('PA', 60_001 + 60_000, 50_001, { len: 100 }),
      s('PA', 60_001 + 200_000, 50_001, { len: 100 }),
    ],
  },
  {
    name: 'no window scaling (server did not offer it): the same data only squeezes through',
    segs: [
      c('S', 50_000, 0, { ...WS }),
      s('SA', 60_000, 50_001, { mss: 1460 }),
      c('A', 50_001, 60_001, { win: 502 }), // unscaled: 502 bytes
      s('PA', 60_001 + 60_000, 50_001, { len: 100 }), // beyond 502, within the largest window seen
      s('PA', 60_001 + 200_000, 50_001, { len: 100 }),
    ],
  },
  {
    name: 'SACK block beyond the sent data is INVALID only when SACK was permitted',
    segs: [
      ...handshake(70_000, 80_000),
      s('PA', 80_001, 70_001, { len: 100 }),
      c('A', 70_001, 80_001, { win: 502, sack: [[80_001, 80_101]] }), // plausible SACK
      c('A', 70_001, 80_001, { win: 502, sack: [[80_101, 90_000]] }), // SACKs unseen data
    ],
  },
  {
    name: 'SACK blocks are not looked at when SACK was not permitted',
    segs: [...plainHandshake(70_000, 80_000), s('PA', 80_001, 70_001, { len: 100 }), c('A', 70_001, 80_001, { sack: [[80_101, 90_000]] })],
  },
  {
    name: 'RST after FIN with an inexact sequence number still closes; a late spurious RST is fine',
    segs: [
      ...plainHandshake(12_000, 13_000),
      s('PA', 13_001, 12_001, { len: 1000 }),
      c('A', 12_001, 14_001),
      s('FA', 14_001, 12_001),
      c('A', 12_001, 14_002), // CLOSE_WAIT
      c('RA', 12_001 + 24, 14_002, { win: 0 }), // not the next byte, yet the entry is closing
      s('R', 14_001 - 10, 0, { win: 0 }), // spurious, from a peer without state
    ],
  },
  {
    name: 'tcp_ignore_invalid_rst=1: a RST below the last ACK is not INVALID',
    sysctls: { 'net.netfilter.nf_conntrack_tcp_ignore_invalid_rst': '1' },
    segs: [...plainHandshake(3000, 8000), s('PA', 8001, 3001, { len: 1000 }), c('A', 3001, 9001), s('R', 8500, 0, { win: 0 })],
  },
  {
    name: 'timeouts follow the sysctls; tcp_max_retrans=1',
    sysctls: {
      'net.netfilter.nf_conntrack_tcp_timeout_established': '1000',
      'net.netfilter.nf_conntrack_tcp_timeout_syn_recv': '7',
      'net.netfilter.nf_conntrack_tcp_timeout_max_retrans': '77',
      'net.netfilter.nf_conntrack_tcp_max_retrans': '1',
    },
    segs: [...plainHandshake(400, 500), c('A', 401, 501), c('PA', 401, 501, { len: 10 })],
  },
  {
    name: 'an expired SYN_SENT entry is gone: the SYN/ACK finds nothing',
    sysctls: { 'net.netfilter.nf_conntrack_tcp_timeout_syn_sent': '1' },
    segs: [c('S', 600, 0), s('SA', 700, 601)],
    pauses: { 1: 2.2 },
  },
  {
    name: 'retransmitted ACKs shorten the timer after tcp_max_retrans',
    segs: [
      ...plainHandshake(90_000, 95_000),
      c('A', 90_001, 95_001),
      c('A', 90_001, 95_001),
      c('A', 90_001, 95_001),
      c('A', 90_001, 95_001),
    ],
  },
  {
    name: 'zero window and a lone FIN, SYN+FIN, no flags (invalid combinations)',
    segs: [...plainHandshake(11, 22), s('A', 23, 12, { win: 0 }), c('F', 12, 0), c('SF', 12, 0), c('', 12, 23), c('A', 12, 23)],
  },
  {
    name: 'be_liberal: out-of-window data passes',
    sysctls: { 'net.netfilter.nf_conntrack_tcp_be_liberal': '1' },
    segs: [...plainHandshake(300, 400), s('PA', 401 + 200_000, 301, { len: 50 })],
  },
  {
    name: 'IPv6: handshake, data, RST out of window, orderly close',
    ipv6: true,
    segs: [
      ...handshake(1000, 5000),
      c('PA', 1001, 5001, { len: 100, win: 502 }),
      s('A', 5001, 1101),
      s('R', 5001 + 1_000_000, 0),
      c('FA', 1101, 5001, { win: 502 }),
      s('FA', 5001, 1102),
      c('A', 1102, 5002, { win: 502 }),
    ],
  },
  {
    name: 'sequence numbers wrapping around 2^32',
    segs: [
      ...plainHandshake(0xfffffff0, 0xffffff00),
      c('PA', 0xfffffff1, 0xffffff01, { len: 100 }), // crosses zero
      s('A', 0xffffff01, (0xfffffff1 + 100) >>> 0),
    ],
  },
];
