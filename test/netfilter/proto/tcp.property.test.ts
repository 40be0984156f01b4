import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SegClass, TcpState } from '../../../src/netfilter/proto/tcp-table.js';
import type { TcpWork } from '../../../src/netfilter/proto/tcp-window.js';
import { tcpFromWork, tcpInspect, tcpTracker } from '../../../src/netfilter/proto/tcp.js';
import { DEFAULT_TRACKER_SYSCTLS } from '../../../src/netfilter/proto/tracker.js';
import { CtDriver } from './ct-driver.js';
import { c, type Seg, s, segPacket } from './tcp-script.js';

/**
 * Properties of the TCP tracker that hold for any input (fixed seed; NFPROOF_SEED to explore):
 * compact storage loses nothing; only differences of sequence numbers matter (the kernel works
 * modulo 2^32, so shifting every sequence number of a conversation changes no decision);
 * malformed segments never touch the connection. Runtime: < 2 s.
 */
const seed = Number(process.env.NFPROOF_SEED ?? 42);
const u32 = fc.integer({ min: 0, max: 0xffffffff });

const peerArb = fc.record({
  end: u32,
  maxend: u32,
  maxwin: u32,
  maxack: u32,
  scale: fc.integer({ min: 0, max: 14 }),
  flags: fc.integer({ min: 0, max: 255 }),
});

const workArb: fc.Arbitrary<TcpWork> = fc.record({
  state: fc.integer({ min: 0, max: 9 }).map((n) => n as TcpState),
  seen: fc.tuple(peerArb, peerArb),
  lastDir: fc.constantFrom(0 as const, 1 as const),
  lastIndex: fc.integer({ min: 0, max: 5 }).map((n) => n as SegClass),
  lastSeq: u32,
  lastAck: u32,
  lastEnd: u32,
  lastWin: fc.integer({ min: 0, max: 0xffff }),
  lastWscale: fc.integer({ min: 0, max: 14 }),
  lastFlags: fc.integer({ min: 0, max: 255 }),
  retrans: fc.integer({ min: 0, max: 255 }),
});

/** A segment relative to the two ISNs: who sends, flags, offsets into both sequence spaces. */
interface RelSeg {
  readonly fromClient: boolean;
  readonly flags: string;
  readonly seqOff: number;
  readonly ackOff: number;
  readonly len: number;
  readonly win: number;
}

const relSegArb: fc.Arbitrary<RelSeg> = fc.record({
  fromClient: fc.boolean(),
  flags: fc.constantFrom('S', 'SA', 'A', 'PA', 'FA', 'R', 'RA', 'F', ''),
  seqOff: fc.integer({ min: -70_000, max: 140_000 }),
  ackOff: fc.integer({ min: -70_000, max: 140_000 }),
  len: fc.constantFrom(0, 0, 1, 100, 1460),
  win: fc.constantFrom(0, 502, 29200, 65535),
});

function materialise(rel: readonly RelSeg[], ci: number, si: number): Seg[] {
  return rel.map((r) => {
    const mine = r.fromClient ? ci : si;
    const theirs = r.fromClient ? si : ci;
    const seq = (mine + r.seqOff) >>> 0;
    const ack = r.flags.includes('A') ? (theirs + r.ackOff) >>> 0 : 0;
    return (r.fromClient ? c : s)(r.flags, seq, ack, { len: r.len, win: r.win });
  });
}

function observe(segs: readonly Seg[]): string[] {
  const d = new CtDriver();
  return segs.map((seg, i) => {
    const o = d.process(segPacket(seg), i);
    const e = o.entry;
    return `${o.ctState} ${e ? `${e.state} ${e.timeout} ${e.assured} ${e.unreplied}` : '-'}`;
  });
}

describe('TCP tracker properties', () => {
  it('compact storage round-trips every field', () => {
    fc.assert(
      fc.property(workArb, (w) => {
        expect(tcpInspect(tcpFromWork(w))).toEqual(w);
      }),
      { seed, numRuns: 300 },
    );
  });

  // Once both sides have been seen. Before that, the unseen side's window data is all zero, so
  // its sequence space is anchored at 0 and absolute values matter (as in the kernel).
  it('after a handshake, shifting all sequence numbers changes no decision (arithmetic modulo 2^32)', () => {
    const handshake: RelSeg[] = [
      { fromClient: true, flags: 'S', seqOff: 0, ackOff: 0, len: 0, win: 64240 },
      { fromClient: false, flags: 'SA', seqOff: 0, ackOff: 1, len: 0, win: 65160 },
      { fromClient: true, flags: 'A', seqOff: 1, ackOff: 1, len: 0, win: 64240 },
    ];
    fc.assert(
      fc.property(u32, u32, u32, u32, fc.array(relSegArb, { maxLength: 12 }), (ci, si, shiftC, shiftS, rest) => {
        const rel = [...handshake, ...rest];
        const a = materialise(rel, ci, si);
        const b = materialise(rel, (ci + shiftC) >>> 0, (si + shiftS) >>> 0);
        // The kernel special-cases the values 0 (RST seq 0 answering a SYN, RST+ACK with ack 0):
        // those are the only places where absolute sequence numbers matter.
        fc.pre([...a, ...b].every((x) => x.seq !== 0 && (x.ack !== 0 || !x.flags.includes('A'))));
        expect(observe(b)).toEqual(observe(a));
      }),
      { seed, numRuns: 400 },
    );
  });

  it('a segment with an invalid flag combination never changes the connection', () => {
    fc.assert(
      fc.property(workArb, fc.constantFrom('F', 'SF', 'SR', 'RF', '', 'SAU', 'P'), u32, fc.constantFrom(0 as const, 1 as const), (w, flags, seq, dir) => {
        const conn = tcpFromWork(w);
        const before = tcpInspect(conn);
        const r = tcpTracker.update(conn, segPacket(c(flags, seq, 0)), dir, {
          sys: DEFAULT_TRACKER_SYSCTLS,
          seenReply: true,
          assured: true,
        });
        expect(r.verdict).toBe('invalid');
        expect(tcpInspect(conn)).toEqual(before);
      }),
      { seed, numRuns: 200 },
    );
  });

  it('never throws and always gives a well-formed result, from any stored state', () => {
    fc.assert(
      fc.property(workArb, relSegArb, u32, u32, fc.boolean(), fc.boolean(), (w, rel, ci, si, seenReply, assured) => {
        const conn = tcpFromWork(w);
        const seg = materialise([rel], ci, si)[0];
        const r = tcpTracker.update(conn, segPacket(seg), rel.fromClient ? 0 : 1, {
          sys: DEFAULT_TRACKER_SYSCTLS,
          seenReply,
          assured,
          expiresIn: 1000,
        });
        expect(['accept', 'invalid', 'restart']).toContain(r.verdict);
        if (r.timeout !== undefined) expect(r.timeout).toBeGreaterThan(0);
        if (r.kill || r.ignored) expect(r.verdict).toBe('accept');
        expect(tcpTracker.stateName(conn)).toMatch(/^[A-Z_0-9]+$/);
      }),
      { seed, numRuns: 500 },
    );
  });
});
