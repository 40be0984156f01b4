import { TCP_FLAG } from '../ir/fields.js';
import { IPS } from './conntrack/status.js';
import type { CtTable, SeqAdj } from './conntrack/table.js';
import type { Frame } from './frame.js';
import type { Direction } from './proto/tracker.js';
import type { FamilyState } from './state.js';

/**
 * TCP sequence number adjustment (nf_conntrack_seqadj.c). When a NAT helper rewrites a payload
 * to a different length (an FTP PORT command with a longer address), every later segment of
 * that direction must have its seq shifted by the accumulated difference, and the other
 * direction's acks shifted back. Per direction the kernel keeps one correction point: segments
 * after it get `offsetAfter`, earlier ones (retransmissions) `offsetBefore`.
 */

/** Signed distance a - b on the 32-bit sequence circle. */
function diff32(a: number, b: number): number {
  return ((a - b) | 0);
}

function after(a: number, b: number): boolean {
  return diff32(a, b) > 0;
}

export function seqOffset(table: CtTable, i: number, dir: Direction, seq: number): number {
  if (i < 0) return 0;
  const adj = table.ext[i]?.seqadj?.[dir];
  if (!adj) return 0;
  return after(seq, adj.correctionPos) ? adj.offsetAfter : adj.offsetBefore;
}

/** nf_ct_seqadj_set: record a length change of `off` bytes in the segment starting at `seq`. */
export function seqadjSet(table: CtTable, i: number, dir: Direction, seq: number, off: number): void {
  if (off === 0) return;
  const ext = (table.ext[i] ??= {});
  const pair: [SeqAdj, SeqAdj] = (ext.seqadj ??= [
    { correctionPos: 0, offsetBefore: 0, offsetAfter: 0 },
    { correctionPos: 0, offsetBefore: 0, offsetAfter: 0 },
  ]);
  table.status[i] |= IPS.SEQ_ADJUST;
  const w = pair[dir];
  if (w.offsetBefore === w.offsetAfter || after(seq, w.correctionPos)) {
    w.correctionPos = seq >>> 0;
    w.offsetBefore = w.offsetAfter;
    w.offsetAfter += off;
  }
}

/** nf_ct_seq_adjust: shift this segment's seq (own direction) and ack (other direction). */
export function seqAdjust(S: FamilyState, f: Frame): void {
  const th = f.pkt.tcp;
  const i = f.ct;
  const pair = i >= 0 ? S.table.ext[i]?.seqadj : undefined;
  if (!th || !pair) return;
  const dir = f.ctDir;
  const mine = pair[dir];
  const other = pair[1 - dir];
  const seqoff = after(th.seq, mine.correctionPos) ? mine.offsetAfter : mine.offsetBefore;
  th.seq = (th.seq + seqoff) >>> 0;
  if (th.flags & TCP_FLAG.ACK) {
    const ackoff = after((th.ack - other.offsetBefore) >>> 0, other.correctionPos) ? other.offsetAfter : other.offsetBefore;
    th.ack = (th.ack - ackoff) >>> 0;
  }
}
