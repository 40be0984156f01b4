import type { Family } from '../util/ip.js';
import { Xorshift32 } from './conntrack/hash.js';
import { CtTable } from './conntrack/table.js';
import { Tuple, wordsOf } from './conntrack/tuple.js';
import { Expectations } from './expect.js';
import { Frame } from './frame.js';
import { newRange } from './nat/core.js';
import type { Host } from './host.js';
import type { Direction, TrackContext, TrackerSysctls } from './proto/tracker.js';
import { seqOffset } from './seqadj.js';
import type { CompiledRuleset } from './rules/compile.js';

/** Settings of one simulated host, resolved from SimOptions and the policy's sysctls. */
export interface SimConfig {
  /** nf_conntrack_max */
  readonly maxEntries: number;
  /** nf_conntrack_buckets (hash size; early_drop scans buckets). */
  readonly buckets: number;
  readonly sys: TrackerSysctls;
  /** net.ipv4.ip_default_ttl / IPv6 hop limit for packets the host makes (RST, ICMP errors). */
  readonly defaultTtl: number;
  /** Record traces (off for benchmarks). */
  readonly trace: boolean;
  /** Seed of the sequence nfproof draws "random" choices from (port re-allocation, --random). */
  readonly seed: number;
}

/**
 * Everything the pipeline of one address family works on: the kernel keeps one conntrack
 * table per network namespace for both families; nfproof keeps one per family (tuples of the
 * two families never meet, so the only visible difference is the shared nf_conntrack_max,
 * which the simulator enforces across both).
 */
export class FamilyState {
  readonly table: CtTable;
  readonly expect = new Expectations();
  readonly rng: Xorshift32;
  /** Scratch tuples for the hot path. */
  readonly t1 = new Tuple();
  readonly t2 = new Tuple();
  readonly t3 = new Tuple();
  readonly t4 = new Tuple();
  /** Scratch tuples of the NAT core (nested inside the ones above). */
  readonly n1 = new Tuple();
  readonly n2 = new Tuple();
  readonly n3 = new Tuple();
  readonly u1 = new Tuple();
  readonly u2 = new Tuple();
  readonly u3 = new Tuple();
  /** Scratch NAT ranges (null binding, target ranges). */
  readonly r1 = newRange();
  readonly r2 = newRange();
  readonly frame: Frame;
  /** Frames for packets the host sends while handling another (REJECT answers). */
  readonly spare: Frame[] = [];
  readonly words: 1 | 4;
  /** The tracker context, reused for every packet (the hot path allocates nothing). */
  readonly trackCtx: { -readonly [K in keyof TrackContext]: TrackContext[K] };
  /** Entry the tracker context currently describes (for seqOffset). */
  trackEntry = -1;
  /** The other family's state (nf_conntrack_max and early drop span both). */
  peer: FamilyState | undefined;
  /** Shared with the peer: a "table full" drop happened at this time; the gc worker will evict. */
  readonly gc: { tableFullAt: number | undefined };

  constructor(
    readonly family: Family,
    readonly rs: CompiledRuleset,
    readonly host: Host,
    readonly cfg: SimConfig,
    /** Entries of both families (nf_conntrack_count is per namespace). */
    readonly totalCount: () => number,
    gc: { tableFullAt: number | undefined },
  ) {
    this.gc = gc;
    this.words = wordsOf(family);
    this.table = new CtTable(this.words, cfg.buckets);
    this.rng = new Xorshift32(cfg.seed ^ (family === 'ipv4' ? 0x1234 : 0x5678));
    this.frame = this.newFrame();
    this.trackCtx = {
      sys: cfg.sys,
      seenReply: false,
      assured: false,
      now: 0,
      expiresIn: 0,
      natClash: false,
      seqOffset: (dir: Direction, seq: number) => seqOffset(this.table, this.trackEntry, dir, seq),
    };
    this.table.onRemove = (i) => this.expect.removeMaster(i);
  }

  newFrame(): Frame {
    const f = new Frame(this.table, this.host);
    f.family = this.family;
    return f;
  }
}
