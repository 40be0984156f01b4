import type { CtStateName } from '../../../src/ir/fields.js';
import type { Packet } from '../../../src/netfilter/packet.js';
import { icmpKind, icmpReplyType } from '../../../src/netfilter/proto/icmp.js';
import { trackerFor } from '../../../src/netfilter/proto/registry.js';
import { DEFAULT_TRACKER_SYSCTLS, type Direction, type ProtoTracker, type TrackerSysctls } from '../../../src/netfilter/proto/tracker.js';

/**
 * A minimal conntrack core for testing the trackers on their own: what nf_conntrack_in() does
 * around the per-protocol code (nf_conntrack_core.c: resolve_normal_ct, the -NF_REPEAT loop,
 * SEEN_REPLY after the tracker, kill and timers), without NAT, hooks or rules. Every packet is
 * assumed to be accepted by the ruleset, so a new entry is confirmed at once. The kernel tests
 * run the same packets through the real kernel and compare with what this reports.
 */

export interface EntryView {
  /** TCP state name, undefined for other protocols. */
  readonly state?: string;
  /** Seconds left, like `conntrack -L`. */
  readonly timeout: number;
  readonly assured: boolean;
  /** No packet went the reply way yet ([UNREPLIED]). */
  readonly unreplied: boolean;
}

export interface Observation {
  /** The state a `-m conntrack --ctstate` rule would see for this packet. */
  readonly ctState: CtStateName;
  readonly dir?: Direction;
  /** The packet's connection after the packet (undefined: no entry, or it was removed). */
  readonly entry?: EntryView;
  /** The tracker's explanation (INVALID reason, ignored segment…). */
  readonly reason?: string;
}

interface Entry {
  readonly tracker: ProtoTracker<unknown>;
  state: unknown;
  expires: number;
  seenReply: boolean;
  assured: boolean;
  readonly keys: readonly [string, string];
}

function tupleKey(p: Packet, icmpType: number | undefined): string {
  const id = p.icmp?.id ?? 0;
  const ports = icmpType !== undefined ? `${icmpType}/${p.icmp?.code ?? 0}/${id}` : `${p.sport ?? 0}/${p.dport ?? 0}`;
  return `${p.family}|${p.proto}|${p.src}|${p.dst}|${ports}`;
}

function replyKey(p: Packet): string | undefined {
  if (p.icmp) {
    const rt = icmpReplyType(p.family, p.icmp.type);
    if (rt === undefined) return undefined;
    return `${p.family}|${p.proto}|${p.dst}|${p.src}|${rt}/${p.icmp.code}/${p.icmp.id ?? 0}`;
  }
  return `${p.family}|${p.proto}|${p.dst}|${p.src}|${p.dport ?? 0}/${p.sport ?? 0}`;
}

export class CtDriver {
  private readonly byKey = new Map<string, { entry: Entry; dir: Direction }>();

  constructor(readonly sys: TrackerSysctls = DEFAULT_TRACKER_SYSCTLS) {}

  /** Entries still alive at time t. */
  count(t: number): number {
    this.expire(t);
    return this.byKey.size / 2;
  }

  private expire(t: number): void {
    for (const [k, { entry }] of this.byKey) if (entry.expires <= t) this.byKey.delete(k);
  }

  private remove(e: Entry): void {
    for (const k of e.keys) this.byKey.delete(k);
  }

  private view(e: Entry, t: number): EntryView {
    return {
      state: e.tracker.stateName(e.state),
      timeout: Math.floor(e.expires - t),
      assured: e.assured,
      unreplied: !e.seenReply,
    };
  }

  /** The entry a packet of this flow would find, as it stands at time t. */
  entryOf(p: Packet, t: number): EntryView | undefined {
    this.expire(t);
    const hit = this.byKey.get(tupleKey(p, p.icmp?.type));
    return hit ? this.view(hit.entry, t) : undefined;
  }

  /** The tracker's own state for the connection of this packet (for tests that drive the tracker directly). */
  trackerState(p: Packet): unknown {
    return this.byKey.get(tupleKey(p, p.icmp?.type))?.entry.state;
  }

  process(p: Packet, t: number): Observation {
    this.expire(t);
    if (p.icmp && icmpKind(p.family, p.icmp.type) !== 'query') {
      // Errors, ND and unknown types are the simulator's business (RELATED / UNTRACKED); here: INVALID.
      return { ctState: icmpKind(p.family, p.icmp.type) === 'untracked' ? 'UNTRACKED' : 'INVALID' };
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      const hit = this.byKey.get(tupleKey(p, p.icmp?.type));
      if (!hit) return this.create(p, t);
      const { entry, dir } = hit;
      const ctState: CtStateName = dir === 1 || entry.seenReply ? 'ESTABLISHED' : 'NEW';
      const r = entry.tracker.update(entry.state, p, dir, {
        sys: this.sys,
        seenReply: entry.seenReply,
        assured: entry.assured,
        now: t,
        expiresIn: entry.expires - t,
      });
      if (r.verdict === 'restart') {
        this.remove(entry);
        continue;
      }
      if (r.verdict === 'invalid') {
        if (r.timeout !== undefined) entry.expires = t + r.timeout;
        return { ctState: 'INVALID', dir, entry: this.view(entry, t), reason: r.reason };
      }
      if (r.timeout !== undefined) entry.expires = t + r.timeout;
      if (r.assured) entry.assured = true;
      if (dir === 1) entry.seenReply = true;
      if (r.kill) {
        this.remove(entry);
        return { ctState, dir, reason: r.reason };
      }
      return { ctState, dir, entry: this.view(entry, t), reason: r.reason };
    }
    throw new Error('restart loop');
  }

  private create(p: Packet, t: number): Observation {
    const rk = replyKey(p);
    if (rk === undefined) return { ctState: 'INVALID', reason: 'tuple cannot be inverted' };
    const tracker = trackerFor(p.proto);
    const c = tracker.create(p, this.sys, t);
    if ('invalid' in c) return { ctState: 'INVALID', reason: c.invalid };
    const entry: Entry = {
      tracker,
      state: c.state,
      expires: t + c.timeout,
      seenReply: false,
      assured: false,
      keys: [tupleKey(p, p.icmp?.type), rk],
    };
    this.byKey.set(entry.keys[0], { entry, dir: 0 });
    this.byKey.set(entry.keys[1], { entry, dir: 1 });
    return { ctState: 'NEW', dir: 0, entry: this.view(entry, t) };
  }
}
