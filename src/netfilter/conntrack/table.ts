import { CT_STATUS } from '../../ir/fields.js';
import { final32, mix32, reciprocalScale } from './hash.js';
import { Tuple } from './tuple.js';

/**
 * The conntrack table: typed-array storage and a chained hash with `buckets` heads, like
 * net->ct.hash. Each entry sits in two chains, one per direction: node id = entry * 2 + dir
 * (0 original, 1 reply), as each nf_conn has two tuplehash nodes. A node's key and chain link
 * are packed together in one record of `nodes` (ports, source words, destination words,
 * protocol and zone, next), so walking a chain touches one cache line per step; per-entry data
 * (status, timer, mark…) lives in parallel arrays, read only once the key matched. No JS object
 * per entry on the hot path; rare data (helper state, expectations, NAT details) is in `ext`.
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
  /** Int32 words per node record: ports, src (words), dst (words), proto|zone<<8, next. */
  private readonly stride: number;
  private readonly oSrc = 1;
  private readonly oDst: number;
  private readonly oPz: number;
  private readonly oNext: number;
  private cap = 0;
  private nodes = new Int32Array(0);
  /** Per entry. */
  status = new Uint32Array(0);
  expires = new Float64Array(0);
  mark = new Uint32Array(0);
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
    this.oDst = 1 + words;
    this.oPz = 1 + 2 * words;
    this.oNext = 2 + 2 * words;
    this.stride = 3 + 2 * words;
    this.heads = new Int32Array(buckets).fill(NONE);
    this.srcHeads = new Int32Array(buckets).fill(NONE);
    this.grow(INITIAL_CAPACITY);
  }

  get capacity(): number {
    return this.cap;
  }

  private grow(newCap: number): void {
    const copy = <T extends { set(a: T): void }>(a: T, b: T): T => {
      b.set(a);
      return b;
    };
    this.nodes = copy(this.nodes, new Int32Array(newCap * 2 * this.stride));
    this.status = copy(this.status, new Uint32Array(newCap));
    this.expires = copy(this.expires, new Float64Array(newCap));
    this.mark = copy(this.mark, new Uint32Array(newCap));
    this.serial = copy(this.serial, new Uint32Array(newCap));
    this.nextSeq = copy(this.nextSeq, new Uint32Array(newCap * 2));
    this.live = copy(this.live, new Uint8Array(newCap));
    this.srcNext = copy(this.srcNext, new Int32Array(newCap).fill(NONE));
    this.inBySource = copy(this.inBySource, new Uint8Array(newCap));
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

  /** Protocol and zone of an entry (kept in its nodes). */
  protoOf(i: number): number {
    return this.nodes[2 * i * this.stride + this.oPz] & 0xff;
  }

  zoneOf(i: number): number {
    return this.nodes[2 * i * this.stride + this.oPz] >>> 8;
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
    this.status[i] = 0;
    this.expires[i] = 0;
    this.mark[i] = 0;
    this.serial[i] = this.serialCounter++;
    this.nextSeq[2 * i] = 0;
    this.nextSeq[2 * i + 1] = 0;
    this.state[i] = undefined;
    this.ext[i] = undefined;
    this.writeNode(2 * i, orig, zone);
    this.writeNode(2 * i + 1, reply, zone);
    this.count++;
    return i;
  }

  private writeNode(node: number, t: Tuple, zone: number): void {
    const n = this.nodes;
    const base = node * this.stride;
    n[base] = (t.sport << 16) | t.dport;
    for (let k = 0; k < this.words; k++) {
      n[base + this.oSrc + k] = t.src[k];
      n[base + this.oDst + k] = t.dst[k];
    }
    n[base + this.oPz] = t.proto | (zone << 8);
    n[base + this.oNext] = NONE;
  }

  /** Replaces a tuple of an unconfirmed entry (NAT alters the reply tuple before insertion). */
  setTuple(i: number, dir: 0 | 1, t: Tuple): void {
    this.writeNode(2 * i + dir, t, this.zoneOf(i));
  }

  getTuple(i: number, dir: 0 | 1, out: Tuple): Tuple {
    const n = this.nodes;
    const base = (2 * i + dir) * this.stride;
    const ports = n[base];
    out.sport = ports >>> 16;
    out.dport = ports & 0xffff;
    for (let k = 0; k < this.words; k++) {
      out.src[k] = n[base + this.oSrc + k];
      out.dst[k] = n[base + this.oDst + k];
    }
    out.proto = n[base + this.oPz] & 0xff;
    return out;
  }

  /** Does node `node` hold tuple `t` in zone `zone`? */
  private nodeIs(node: number, t: Tuple, zone: number): boolean {
    const n = this.nodes;
    const base = node * this.stride;
    if (n[base] !== ((t.sport << 16) | t.dport)) return false;
    if (n[base + this.oPz] !== (t.proto | (zone << 8))) return false;
    for (let k = 0; k < this.words; k++) {
      if (n[base + this.oSrc + k] !== (t.src[k] | 0) || n[base + this.oDst + k] !== (t.dst[k] | 0)) return false;
    }
    return true;
  }

  private nextOf(node: number): number {
    return this.nodes[node * this.stride + this.oNext];
  }

  private setNext(node: number, next: number): void {
    this.nodes[node * this.stride + this.oNext] = next;
  }

  isConfirmed(i: number): boolean {
    return (this.status[i] & CT_STATUS.CONFIRMED) !== 0;
  }

  isLive(i: number): boolean {
    return i >= 0 && i < this.highWater && this.live[i] === 1;
  }

  /**
   * Finds the confirmed entry holding tuple `t` in either direction (____nf_conntrack_find).
   * An expired entry is not found (and is removed, as the kernel reaps it during lookups).
   * Returns the node id (entry * 2 + dir) or -1.
   */
  find(t: Tuple, zone: number, now: number): number {
    const b = this.bucketOf(t, zone);
    for (let node = this.heads[b]; node !== NONE; node = this.nextOf(node)) {
      if (!this.nodeIs(node, t, zone)) continue;
      const i = node >> 1;
      if (this.expires[i] <= now) {
        this.remove(i);
        return NONE;
      }
      return node;
    }
    return NONE;
  }

  /**
   * nf_conntrack_tuple_taken: is `t` already some other confirmed connection's tuple? Entries
   * whose ORIGINAL tuple equals `ignore`'s are not counted (the same flow seen twice; the
   * kernel leaves that case to clash resolution).
   */
  isTaken(t: Tuple, ignore: number, now: number, scratch: Tuple): boolean {
    const zone = this.zoneOf(ignore);
    const b = this.bucketOf(t, zone);
    const ignoredOrig = this.getTuple(ignore, 0, scratch);
    let node = this.heads[b];
    while (node !== NONE) {
      const i = node >> 1;
      if (i !== ignore && this.nodeIs(node, t, zone)) {
        if (this.expires[i] <= now) {
          this.remove(i);
          node = this.heads[b];
          continue;
        }
        if (!this.nodeIs(2 * i, ignoredOrig, zone)) return true;
      }
      node = this.nextOf(node);
    }
    return false;
  }

  private linkNode(node: number, scratch: Tuple): void {
    const i = node >> 1;
    const b = this.bucketOf(this.getTuple(i, (node & 1) as 0 | 1, scratch), this.zoneOf(i));
    this.setNext(node, this.heads[b]);
    this.heads[b] = node;
  }

  /** Links an unconfirmed entry into the hash (the insertion part of __nf_conntrack_confirm). */
  link(i: number, scratch: Tuple): void {
    this.linkNode(2 * i, scratch);
    this.linkNode(2 * i + 1, scratch);
    this.status[i] |= CT_STATUS.CONFIRMED;
    if (this.expires[i] < this.minExpiry) this.minExpiry = this.expires[i];
  }

  /**
   * Links only the REPLY node (a UDP entry that lost a NAT clash: lookups in the original
   * direction keep finding the winner, replies reach this one).
   */
  linkReplyOnly(i: number, scratch: Tuple): void {
    this.linkNode(2 * i + 1, scratch);
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
    const b = this.bucketOf(this.getTuple(i, (node & 1) as 0 | 1, scratch), this.zoneOf(i));
    let cur = this.heads[b];
    let prev = NONE;
    while (cur !== NONE && cur !== node) {
      prev = cur;
      cur = this.nextOf(cur);
    }
    if (cur === NONE) return;
    if (prev === NONE) this.heads[b] = this.nextOf(node);
    else this.setNext(prev, this.nextOf(node));
    this.setNext(node, NONE);
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

  /** Hash of an original source (address, port, protocol, zone): the NAT bysource index. */
  private srcHash(t: Tuple, zone: number): number {
    let h = mix32(0x27d4eb2f ^ zone, t.proto);
    h = mix32(h, t.sport);
    for (let k = 0; k < this.words; k++) h = mix32(h, t.src[k]);
    return reciprocalScale(final32(h), this.buckets);
  }

  private readonly srcScratch = new Tuple();

  addBySource(i: number): void {
    if (this.inBySource[i]) return;
    const b = this.srcHash(this.getTuple(i, 0, this.srcScratch), this.zoneOf(i));
    this.srcNext[i] = this.srcHeads[b];
    this.srcHeads[b] = i;
    this.inBySource[i] = 1;
  }

  private removeBySource(i: number): void {
    if (!this.inBySource[i]) return;
    const b = this.srcHash(this.getTuple(i, 0, this.srcScratch), this.zoneOf(i));
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
    let cur = from < 0 ? this.srcHeads[this.srcHash(orig, zone)] : this.srcNext[from];
    const n = this.nodes;
    while (cur !== NONE) {
      const base = 2 * cur * this.stride;
      if ((n[base] >>> 16) === orig.sport && n[base + this.oPz] === (orig.proto | (zone << 8))) {
        let same = true;
        for (let k = 0; k < this.words; k++) if (n[base + this.oSrc + k] !== (orig.src[k] | 0)) same = false;
        if (same) return cur;
      }
      cur = this.srcNext[cur];
    }
    return NONE;
  }

  /**
   * early_drop: looks at up to 8 hash buckets starting at the new tuple's bucket and deletes
   * every confirmed, non-assured entry of the first bucket that has any. Returns the entries
   * dropped. Expired entries met on the way are reaped (not counted as drops).
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
        if (this.expires[i] <= now) {
          this.remove(i);
          victims.length = 0;
          node = this.heads[b];
          continue;
        }
        if ((this.status[i] & CT_STATUS.ASSURED) === 0 && this.isConfirmed(i) && !victims.includes(i)) victims.push(i);
        node = this.nextOf(node);
      }
      if (victims.length > 0) {
        for (const i of victims) this.remove(i);
        return victims;
      }
      b = (b + 1) % this.buckets;
    }
    return [];
  }

  /**
   * The gc worker after a "table full" event (gc_worker with early_drop set): while the count
   * (`total`) is at 95 % of nf_conntrack_max or more, every entry that may be dropped early
   * (not assured, or a closing TCP connection: `canDrop`) is removed; expired ones go as well.
   * Returns how many were evicted.
   */
  gcEarlyDrop(now: number, max95: number, total: () => number, canDrop: (i: number) => boolean): number {
    let evicted = 0;
    for (let i = 0; i < this.highWater; i++) {
      if (!this.live[i] || !this.isConfirmed(i)) continue;
      if (this.expires[i] <= now) {
        this.remove(i);
        continue;
      }
      if (total() < max95) continue;
      if (canDrop(i)) {
        this.remove(i);
        evicted++;
      }
    }
    return evicted;
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
