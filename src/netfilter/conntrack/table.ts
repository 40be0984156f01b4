import { CT_STATUS } from '../../ir/fields.js';
import { final32, mix32, reciprocalScale } from './hash.js';
import { Tuple } from './tuple.js';

/**
 * The conntrack table: struct-of-arrays storage (typed arrays indexed by entry number) and a
 * chained hash with `buckets` heads, like net->ct.hash. Each entry sits in two chains, one per
 * direction: node id = entry * 2 + dir (0 original, 1 reply), as each nf_conn has two
 * tuplehash nodes. No per-entry JS object is allocated on the hot path; rare data (helper
 * state, expectations, NAT details) lives in the sparse `ext` array.
 *
 * Entries are allocated unconfirmed (not in the hash, like the kernel's unconfirmed list) and
 * linked into the hash by `confirm`. `count` counts both, as nf_conntrack_count does while a
 * packet is in flight.
 */

const NONE = -1;
const INITIAL_CAPACITY = 1024;

/** Rare per-entry data, kept off the hot arrays. */
export interface CtExt {
  /** Master connection (RELATED data connections of a helper, IPS_EXPECTED). */
  master?: number;
  /** Helper name (`ftp`) and its per-connection state. */
  helper?: string;
  helperState?: unknown;
  /** Sequence number adjustments per direction (nf_conntrack_seqadj). */
  seqadj?: [SeqAdj, SeqAdj];
  /** MASQUERADE: device the binding was made for (nf_conn_nat.masq_index). */
  masqDevice?: string;
  /** Fields of the REPLY tuple chosen at random (the kernel draws them; compare modulo). */
  randomized?: ('sport' | 'dport' | 'icmpId')[];
}

export interface SeqAdj {
  correctionPos: number;
  offsetBefore: number;
  offsetAfter: number;
}

export class CtTable {
  readonly words: 1 | 4;
  private cap = 0;
  /** Addresses, `words` per tuple side; index (node * words). */
  src = new Uint32Array(0);
  dst = new Uint32Array(0);
  /** Per node (entry * 2 + dir). */
  sport = new Uint16Array(0);
  dport = new Uint16Array(0);
  private next = new Int32Array(0);
  /** Per entry. */
  proto = new Uint8Array(0);
  status = new Uint32Array(0);
  expires = new Float64Array(0);
  mark = new Uint32Array(0);
  zone = new Uint16Array(0);
  /** Creation order, for stable listings. */
  serial = new Uint32Array(0);
  /** Next sequence number expected from each direction, as seen on arrival (auto seq fill). */
  nextSeq = new Uint32Array(0);
  private live = new Uint8Array(0);
  /** bysource chain (NAT source-mapping index), one link per entry. */
  private srcNext = new Int32Array(0);
  private inBySource = new Uint8Array(0);
  /** Tracker state (the ProtoTracker's S) per entry. */
  state: unknown[] = [];
  ext: (CtExt | undefined)[] = [];

  private readonly heads: Int32Array;
  private readonly srcHeads: Int32Array;
  private free: number[] = [];
  private highWater = 0;
  private serialCounter = 0;
  /** Live entries, confirmed or not. */
  count = 0;
  /** Lower bound of every live entry's expiry time (exact after a full reap). */
  private minExpiry = Infinity;

  constructor(
    words: 1 | 4,
    readonly buckets: number,
  ) {
    this.words = words;
    this.heads = new Int32Array(buckets).fill(NONE);
    this.srcHeads = new Int32Array(buckets).fill(NONE);
    this.grow(INITIAL_CAPACITY);
  }

  get capacity(): number {
    return this.cap;
  }

  private grow(newCap: number): void {
    const w = this.words;
    const g32 = (a: Uint32Array, n: number) => {
      const b = new Uint32Array(n);
      b.set(a);
      return b;
    };
    const g16 = (a: Uint16Array, n: number) => {
      const b = new Uint16Array(n);
      b.set(a);
      return b;
    };
    const g8 = (a: Uint8Array, n: number) => {
      const b = new Uint8Array(n);
      b.set(a);
      return b;
    };
    const gi = (a: Int32Array, n: number) => {
      const b = new Int32Array(n).fill(NONE);
      b.set(a);
      return b;
    };
    const gf = (a: Float64Array, n: number) => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    this.src = g32(this.src, newCap * 2 * w);
    this.dst = g32(this.dst, newCap * 2 * w);
    this.sport = g16(this.sport, newCap * 2);
    this.dport = g16(this.dport, newCap * 2);
    this.next = gi(this.next, newCap * 2);
    this.proto = g8(this.proto, newCap);
    this.status = g32(this.status, newCap);
    this.expires = gf(this.expires, newCap);
    this.mark = g32(this.mark, newCap);
    this.zone = g16(this.zone, newCap);
    this.serial = g32(this.serial, newCap);
    this.nextSeq = g32(this.nextSeq, newCap * 2);
    this.live = g8(this.live, newCap);
    this.srcNext = gi(this.srcNext, newCap);
    this.inBySource = g8(this.inBySource, newCap);
    this.cap = newCap;
  }

  /** Bucket of a tuple (hash_conntrack: the tuple and the zone). */
  bucketOf(t: Tuple, zone: number): number {
    return reciprocalScale(this.hashOf(t, zone), this.buckets);
  }

  hashOf(t: Tuple, zone: number): number {
    let h = mix32(0x5bd1e995 ^ zone, t.proto);
    h = mix32(h, (t.sport << 16) | t.dport);
    for (let k = 0; k < this.words; k++) {
      h = mix32(h, t.src[k]);
      h = mix32(h, t.dst[k]);
    }
    return final32(h);
  }

  /** Allocates an unconfirmed entry with both tuples; the caller fills the rest. */
  alloc(orig: Tuple, reply: Tuple, zone: number): number {
    let i: number;
    if (this.free.length > 0) i = this.free.pop() as number;
    else {
      if (this.highWater === this.cap) this.grow(this.cap * 2);
      i = this.highWater++;
    }
    this.live[i] = 1;
    this.proto[i] = orig.proto;
    this.status[i] = 0;
    this.expires[i] = 0;
    this.mark[i] = 0;
    this.zone[i] = zone;
    this.serial[i] = this.serialCounter++;
    this.nextSeq[2 * i] = 0;
    this.nextSeq[2 * i + 1] = 0;
    this.state[i] = undefined;
    this.ext[i] = undefined;
    this.setTuple(i, 0, orig);
    this.setTuple(i, 1, reply);
    this.count++;
    return i;
  }

  setTuple(i: number, dir: 0 | 1, t: Tuple): void {
    const node = 2 * i + dir;
    const w = this.words;
    for (let k = 0; k < w; k++) {
      this.src[node * w + k] = t.src[k];
      this.dst[node * w + k] = t.dst[k];
    }
    this.sport[node] = t.sport;
    this.dport[node] = t.dport;
  }

  getTuple(i: number, dir: 0 | 1, out: Tuple): Tuple {
    const node = 2 * i + dir;
    const w = this.words;
    for (let k = 0; k < w; k++) {
      out.src[k] = this.src[node * w + k];
      out.dst[k] = this.dst[node * w + k];
    }
    out.sport = this.sport[node];
    out.dport = this.dport[node];
    out.proto = this.proto[i];
    return out;
  }

  private nodeEquals(node: number, t: Tuple): boolean {
    if (this.sport[node] !== t.sport || this.dport[node] !== t.dport || this.proto[node >> 1] !== t.proto) return false;
    const w = this.words;
    const base = node * w;
    for (let k = 0; k < w; k++) {
      if (this.src[base + k] !== t.src[k] || this.dst[base + k] !== t.dst[k]) return false;
    }
    return true;
  }

  isConfirmed(i: number): boolean {
    return (this.status[i] & CT_STATUS.CONFIRMED) !== 0;
  }

  isLive(i: number): boolean {
    return i >= 0 && i < this.highWater && this.live[i] === 1;
  }

  /**
   * Finds the confirmed entry holding tuple `t` in either direction (____nf_conntrack_find).
   * Expired entries met on the way are removed, as the kernel reaps them during lookups.
   * Returns the node id (entry * 2 + dir) or -1.
   */
  find(t: Tuple, zone: number, now: number): number {
    const b = this.bucketOf(t, zone);
    let node = this.heads[b];
    while (node !== NONE) {
      const i = node >> 1;
      const nxt = this.next[node];
      if (this.expires[i] <= now) {
        // Removing unlinks both of the entry's nodes; walk the bucket again from its head.
        this.remove(i);
        node = this.heads[b];
        continue;
      }
      if (this.zone[i] === zone && this.nodeEquals(node, t)) return node;
      node = nxt;
    }
    return NONE;
  }

  /**
   * nf_conntrack_tuple_taken: is `t` already some other confirmed connection's tuple? Entries
   * whose ORIGINAL tuple equals `ignore`'s are not counted (the same flow seen twice; the
   * kernel leaves that case to clash resolution).
   */
  isTaken(t: Tuple, ignore: number, now: number, scratch: Tuple): boolean {
    const b = this.bucketOf(t, this.zone[ignore]);
    let node = this.heads[b];
    const ignoredOrig = this.getTuple(ignore, 0, scratch);
    while (node !== NONE) {
      const i = node >> 1;
      const nxt = this.next[node];
      if (i !== ignore) {
        if (this.expires[i] <= now) {
          this.remove(i);
          node = this.heads[b];
          continue;
        }
        if (this.zone[i] === this.zone[ignore] && this.nodeEquals(node, t) && !this.nodeEquals(2 * i, ignoredOrig)) return true;
      }
      node = nxt;
    }
    return false;
  }

  /** Links an unconfirmed entry into the hash (the insertion part of __nf_conntrack_confirm). */
  link(i: number, scratch: Tuple): void {
    for (const dir of [0, 1] as const) {
      const node = 2 * i + dir;
      const b = this.bucketOf(this.getTuple(i, dir, scratch), this.zone[i]);
      this.next[node] = this.heads[b];
      this.heads[b] = node;
    }
    this.status[i] |= CT_STATUS.CONFIRMED;
    if (this.expires[i] < this.minExpiry) this.minExpiry = this.expires[i];
  }

  /**
   * Links only the REPLY node (a UDP entry that lost a NAT clash: lookups in the original
   * direction keep finding the winner, replies reach this one).
   */
  linkReplyOnly(i: number, scratch: Tuple): void {
    const node = 2 * i + 1;
    const b = this.bucketOf(this.getTuple(i, 1, scratch), this.zone[i]);
    this.next[node] = this.heads[b];
    this.heads[b] = node;
    this.status[i] |= CT_STATUS.CONFIRMED;
    if (this.expires[i] < this.minExpiry) this.minExpiry = this.expires[i];
  }

  /** Sets a confirmed entry's expiry time (keeps the reaping bound right). */
  setExpires(i: number, at: number): void {
    this.expires[i] = at;
    if (at < this.minExpiry) this.minExpiry = at;
  }

  private unlinkNode(node: number, scratch: Tuple): void {
    const i = node >> 1;
    const b = this.bucketOf(this.getTuple(i, (node & 1) as 0 | 1, scratch), this.zone[i]);
    let cur = this.heads[b];
    let prev = NONE;
    while (cur !== NONE && cur !== node) {
      prev = cur;
      cur = this.next[cur];
    }
    if (cur === NONE) return;
    if (prev === NONE) this.heads[b] = this.next[node];
    else this.next[prev] = this.next[node];
    this.next[node] = NONE;
  }

  private readonly unlinkScratch = new Tuple();

  /** Deletes an entry (confirmed or not) and frees its slot. */
  remove(i: number): void {
    if (!this.isLive(i)) return;
    if (this.isConfirmed(i)) {
      this.unlinkNode(2 * i, this.unlinkScratch);
      this.unlinkNode(2 * i + 1, this.unlinkScratch);
    }
    this.removeBySource(i);
    this.live[i] = 0;
    this.status[i] = 0;
    this.state[i] = undefined;
    this.ext[i] = undefined;
    this.free.push(i);
    this.count--;
    this.onRemove?.(i);
  }

  /** Called after an entry is removed (expectation cleanup). */
  onRemove?: (i: number) => void;

  /** NAT bysource index: entries by (proto, original source address, source port). */
  private srcBucket(i: number): number {
    const w = this.words;
    let h = mix32(0x27d4eb2f ^ this.zone[i], this.proto[i]);
    h = mix32(h, this.sport[2 * i]);
    for (let k = 0; k < w; k++) h = mix32(h, this.src[2 * i * w + k]);
    return reciprocalScale(final32(h), this.buckets);
  }

  addBySource(i: number): void {
    if (this.inBySource[i]) return;
    const b = this.srcBucket(i);
    this.srcNext[i] = this.srcHeads[b];
    this.srcHeads[b] = i;
    this.inBySource[i] = 1;
  }

  private removeBySource(i: number): void {
    if (!this.inBySource[i]) return;
    const b = this.srcBucket(i);
    let cur = this.srcHeads[b];
    let prev = NONE;
    while (cur !== NONE && cur !== i) {
      prev = cur;
      cur = this.srcNext[cur];
    }
    if (cur !== NONE) {
      if (prev === NONE) this.srcHeads[b] = this.srcNext[i];
      else this.srcNext[prev] = this.srcNext[i];
    }
    this.srcNext[i] = NONE;
    this.inBySource[i] = 0;
  }

  /**
   * Entries with the same original source (address, port, protocol) as `orig`, newest first
   * (find_appropriate_src walks them): call with `from = -1` for the first, then with the
   * previous result. Returns -1 at the end.
   */
  nextBySource(orig: Tuple, zone: number, from: number): number {
    const w = this.words;
    let cur: number;
    if (from < 0) {
      let h = mix32(0x27d4eb2f ^ zone, orig.proto);
      h = mix32(h, orig.sport);
      for (let k = 0; k < w; k++) h = mix32(h, orig.src[k]);
      cur = this.srcHeads[reciprocalScale(final32(h), this.buckets)];
    } else {
      cur = this.srcNext[from];
    }
    while (cur !== NONE) {
      if (this.proto[cur] === orig.proto && this.sport[2 * cur] === orig.sport && this.zone[cur] === zone) {
        let same = true;
        for (let k = 0; k < w; k++) if (this.src[2 * cur * w + k] !== orig.src[k]) same = false;
        if (same) return cur;
      }
      cur = this.srcNext[cur];
    }
    return NONE;
  }

  /**
   * early_drop: looks at up to 8 hash buckets starting at the new tuple's bucket and deletes
   * every confirmed, non-assured entry of the first bucket that has any. Returns whether
   * something was dropped. Expired entries met on the way are reaped (not counted as drops).
   */
  earlyDrop(t: Tuple, zone: number, now: number): number[] {
    return this.earlyDropFrom(this.hashOf(t, zone), now);
  }

  /** early_drop starting at the bucket of a hash value (also used across the two families' tables). */
  earlyDropFrom(hash: number, now: number): number[] {
    let b = reciprocalScale(hash, this.buckets);
    for (let n = 0; n < 8; n++) {
      const victims: number[] = [];
      let node = this.heads[b];
      while (node !== NONE) {
        const i = node >> 1;
        const nxt = this.next[node];
        if (this.expires[i] <= now) {
          this.remove(i);
          victims.length = 0;
          node = this.heads[b];
          continue;
        }
        if ((this.status[i] & CT_STATUS.ASSURED) === 0 && this.isConfirmed(i) && !victims.includes(i)) victims.push(i);
        node = nxt;
      }
      if (victims.length > 0) {
        for (const i of victims) this.remove(i);
        return victims;
      }
      b = (b + 1) % this.buckets;
    }
    return [];
  }

  /** Removes every expired confirmed entry (what the gc worker eventually does). */
  reapExpired(now: number): void {
    if (now < this.minExpiry) return;
    let min = Infinity;
    for (let i = 0; i < this.highWater; i++) {
      if (!this.live[i] || !this.isConfirmed(i)) continue;
      if (this.expires[i] <= now) this.remove(i);
      else if (this.expires[i] < min) min = this.expires[i];
    }
    this.minExpiry = min;
  }

  /** Live confirmed entries in creation order. */
  confirmedEntries(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.highWater; i++) if (this.live[i] && this.isConfirmed(i)) out.push(i);
    return out.sort((a, b) => this.serial[a] - this.serial[b]);
  }
}
