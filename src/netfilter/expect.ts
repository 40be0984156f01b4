import { Tuple } from './conntrack/tuple.js';

/**
 * Expectations (nf_conntrack_expect.c): a helper that read a data-connection announcement in a
 * control connection (FTP PORT/PASV…) registers the tuple the data connection will have; the
 * first packet of a connection matching it becomes RELATED to the master (IPS_EXPECTED).
 *
 * Matching is on the destination side exactly and on the source address, with any source port
 * (the FTP helper's mask). An expectation is used once, expires after the helper's timeout
 * (FTP: 300 s), and a helper may hold at most `maxExpected` per master (FTP: 1): registering
 * another evicts the oldest. When the master goes away, so do its expectations.
 */
export interface Expectation {
  readonly master: number;
  /** src: the peer expected to connect (address only); dst: where it will connect to. */
  readonly tuple: Tuple;
  /** Source port is a wildcard when false. */
  readonly matchSrcPort: boolean;
  expires: number;
  readonly helper: string;
  /** NAT: direction of the master the data connection follows, and the port the PORT/PASV text named before rewriting. */
  natDir?: 0 | 1;
  savedPort?: number;
  /** nf_nat_follow_master: set up the data connection's NAT from the master's. */
  followMaster?: boolean;
  readonly serial: number;
}

export class Expectations {
  private list: Expectation[] = [];
  private serial = 0;

  get size(): number {
    return this.list.length;
  }

  all(now: number): readonly Expectation[] {
    this.expire(now);
    return this.list;
  }

  private expire(now: number): void {
    if (this.list.some((e) => e.expires <= now)) this.list = this.list.filter((e) => e.expires > now);
  }

  private matches(e: Expectation, t: Tuple, words: number): boolean {
    if (e.tuple.proto !== t.proto || e.tuple.dport !== t.dport) return false;
    if (e.matchSrcPort && e.tuple.sport !== t.sport) return false;
    for (let k = 0; k < words; k++) if (e.tuple.src[k] !== t.src[k] || e.tuple.dst[k] !== t.dst[k]) return false;
    return true;
  }

  /**
   * nf_ct_find_expectation: the expectation a new connection with tuple `t` fulfils; it is
   * removed (used once). Only expectations of confirmed masters count.
   */
  take(t: Tuple, words: number, now: number, masterConfirmed: (i: number) => boolean): Expectation | undefined {
    if (this.list.length === 0) return undefined;
    this.expire(now);
    const idx = this.list.findIndex((e) => this.matches(e, t, words) && masterConfirmed(e.master));
    if (idx < 0) return undefined;
    const [e] = this.list.splice(idx, 1);
    return e;
  }

  /**
   * nf_ct_expect_related: registers an expectation. Returns false when another master already
   * expects the same tuple (-EBUSY, the caller tries another port or drops).
   */
  add(e: Omit<Expectation, 'serial'>, words: number, maxExpected: number): boolean {
    const clash = this.list.find(
      (x) => x.tuple.proto === e.tuple.proto && x.tuple.dport === e.tuple.dport && sameAddrs(x.tuple, e.tuple, words),
    );
    if (clash) {
      if (clash.master !== e.master) return false;
      this.list = this.list.filter((x) => x !== clash);
    }
    const mine = this.list.filter((x) => x.master === e.master).sort((a, b) => a.serial - b.serial);
    if (maxExpected > 0 && mine.length >= maxExpected) {
      const oldest = mine[0];
      this.list = this.list.filter((x) => x !== oldest);
    }
    this.list.push({ ...e, serial: this.serial++ });
    return true;
  }

  removeMaster(master: number): void {
    if (this.list.length > 0) this.list = this.list.filter((e) => e.master !== master);
  }

  remove(e: Expectation): void {
    this.list = this.list.filter((x) => x !== e);
  }
}

function sameAddrs(a: Tuple, b: Tuple, words: number): boolean {
  for (let k = 0; k < words; k++) if (a.src[k] !== b.src[k] || a.dst[k] !== b.dst[k]) return false;
  return true;
}
