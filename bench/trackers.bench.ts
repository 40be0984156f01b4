import type { Packet } from '../src/netfilter/packet.js';
import { findFtpCommand } from '../src/netfilter/helpers/ftp.js';
import { type TcpConn, tcpTracker } from '../src/netfilter/proto/tcp.js';
import { DEFAULT_TRACKER_SYSCTLS, type TrackContext } from '../src/netfilter/proto/tracker.js';
import { type Benchmark, heapUsedAfterGc } from './harness.js';

/**
 * The protocol trackers on their own (the simulator's figures in simulate.bench.ts include them):
 * TCP segments per second on established connections (window tracking on every segment), new
 * connections (SYN + tcp_new), heap bytes per TCP connection state, and FTP command parsing.
 * Targets are derived from the simulator's (≥ 1,000,000 packets/s, ≤ 400 bytes per entry):
 * the tracker must be a small part of them.
 */

const sys = DEFAULT_TRACKER_SYSCTLS;
const CONNS = 100_000;

function seg(flags: number, seq: number, ack: number, len = 0): Packet {
  return {
    family: 'ipv4',
    src: 1n,
    dst: 2n,
    proto: 6,
    ttl: 64,
    sport: 1,
    dport: 2,
    tcp: { flags, seq, ack, window: 502, wscale: 7 },
    payload: new Uint8Array(len),
  };
}

/** A connection after a full handshake (client ISN c, server ISN s). */
function established(c: number, s: number): TcpConn {
  const created = tcpTracker.create(seg(0x02, c, 0), sys, 0);
  if (!('state' in created)) throw new Error(created.invalid);
  const conn = created.state;
  const ctx: TrackContext = { sys, seenReply: false, assured: false };
  tcpTracker.update(conn, seg(0x12, s, c + 1), 1, ctx);
  tcpTracker.update(conn, seg(0x10, c + 1, s + 1), 0, { sys, seenReply: true, assured: false });
  return conn;
}

export const benchmarks: Benchmark[] = [
  {
    name: 'TCP tracker: data/ACK segments on 100,000 established connections',
    target: '≥ 5,000,000 segments/s (a fifth of the simulator budget per packet)',
    meets: (m) => m.value >= 5_000_000,
    run() {
      const conns: TcpConn[] = [];
      for (let i = 0; i < CONNS; i++) conns.push(established(1000 + i * 7919, 50_000 + i * 104_729));
      const data = seg(0x18, 0, 0, 100);
      const ack = seg(0x10, 0, 0);
      const ctx: TrackContext = { sys, seenReply: true, assured: true };
      const client = new Uint32Array(CONNS).map((_, i) => 1001 + i * 7919);
      const server = new Uint32Array(CONNS).map((_, i) => 50_001 + i * 104_729);
      const rounds = 20;
      const t0 = process.hrtime.bigint();
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < CONNS; i++) {
          // Client sends 100 bytes, server acknowledges them.
          data.tcp!.seq = client[i];
          data.tcp!.ack = server[i];
          tcpTracker.update(conns[i], data, 0, ctx);
          client[i] = (client[i] + 100) >>> 0;
          ack.tcp!.seq = server[i];
          ack.tcp!.ack = client[i];
          tcpTracker.update(conns[i], ack, 1, ctx);
        }
      }
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const segments = rounds * CONNS * 2;
      return { value: segments / seconds, unit: 'segments/s', detail: `${segments.toLocaleString('en-US')} segments, ${CONNS.toLocaleString('en-US')} connections` };
    },
  },
  {
    name: 'TCP tracker: new connections (SYN)',
    target: '≥ 2,000,000 connections/s',
    meets: (m) => m.value >= 2_000_000,
    run() {
      const syn = seg(0x02, 0, 0);
      const n = 1_000_000;
      const t0 = process.hrtime.bigint();
      let kept = 0;
      for (let i = 0; i < n; i++) {
        syn.tcp!.seq = (i * 2654435761) >>> 0;
        if ('state' in tcpTracker.create(syn, sys, 0)) kept++;
      }
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      return { value: kept / seconds, unit: 'connections/s', detail: `${n.toLocaleString('en-US')} SYNs` };
    },
  },
  {
    name: 'TCP tracker: heap per connection state',
    target: '≤ 150 bytes (the whole conntrack entry may use 400)',
    meets: (m) => m.value <= 150,
    run() {
      const n = 1_000_000;
      const keep: TcpConn[] = new Array(n);
      const before = heapUsedAfterGc();
      for (let i = 0; i < n; i++) keep[i] = established(i * 7919, i * 104_729);
      const after = heapUsedAfterGc();
      // Subtract the 8-byte array slot per element: the simulator stores the state in its own table.
      const perConn = (after - before) / n - 8;
      if (keep.length !== n) throw new Error('lost states');
      return { value: perConn, unit: 'bytes/connection', detail: `${n.toLocaleString('en-US')} established connections` };
    },
  },
  {
    name: 'FTP helper: PORT commands parsed',
    target: '≥ 1,000,000 commands/s',
    meets: (m) => m.value >= 1_000_000,
    run() {
      const payload = new TextEncoder().encode('PORT 10,0,1,2,156,64\r\n');
      const n = 2_000_000;
      const t0 = process.hrtime.bigint();
      let found = 0;
      for (let i = 0; i < n; i++) if (findFtpCommand(payload, 0, 'ipv4', 0x0a000102n).kind === 'found') found++;
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      return { value: found / seconds, unit: 'commands/s', detail: `${n.toLocaleString('en-US')} commands` };
    },
  },
];
