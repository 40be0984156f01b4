import { genericTracker, greTracker } from './generic.js';
import { icmpTracker, icmpv6Tracker } from './icmp.js';
import { tcpTracker } from './tcp.js';
import { DEFAULT_TIMEOUTS, DEFAULT_TRACKER_SYSCTLS, type ProtoTracker, type TrackerSysctls } from './tracker.js';
import { udpliteTracker, udpTracker } from './udp.js';

/**
 * Which tracker handles which IP protocol (nf_ct_l4proto_find), and the conntrack sysctls the
 * trackers read, parsed from `--sysctl name=value` style settings. The simulator's only entry
 * points into src/netfilter/proto besides the ProtoTracker interface.
 */

// Method parameters are bivariant in TypeScript, so a tracker of any state type fits here.
const BY_PROTO: ReadonlyMap<number, ProtoTracker<unknown>> = new Map<number, ProtoTracker<unknown>>(
  [tcpTracker, udpTracker, udpliteTracker, icmpTracker, icmpv6Tracker, greTracker].flatMap((t) =>
    t.protos.map((p) => [p, t as ProtoTracker<unknown>] as const),
  ),
);

/**
 * The tracker for an IP protocol number. Like the kernel, it does not depend on the address
 * family: ICMP (1) in an IPv6 packet gets the ICMP tracker, which finds it INVALID.
 * SCTP (132) is not modelled yet and falls back to the generic tracker.
 */
export function trackerFor(proto: number): ProtoTracker<unknown> {
  return BY_PROTO.get(proto) ?? genericTracker;
}

const BOOLEAN_SYSCTLS = {
  tcp_loose: 'tcpLoose',
  tcp_be_liberal: 'tcpBeLiberal',
  tcp_ignore_invalid_rst: 'tcpIgnoreInvalidRst',
} as const;

export interface ParsedTrackerSysctls {
  readonly sys: TrackerSysctls;
  /** Settings that are not tracker sysctls (nf_conntrack_max…): left for the caller. */
  readonly unknown: readonly string[];
  /** Tracker sysctls with a value the kernel would refuse. */
  readonly errors: readonly string[];
}

/** `net.netfilter.nf_conntrack_tcp_loose`, `nf_conntrack_tcp_loose` and `tcp_loose` all name the same sysctl. */
export function trackerSysctlName(name: string): string {
  return name.replace(/^net\.netfilter\./, '').replace(/^nf_conntrack_/, '');
}

/**
 * Reads the tracker sysctls out of a name → value map; everything not given keeps the kernel
 * default. Values are what `sysctl -w` takes: non-negative integers (booleans as 0/1).
 */
export function parseTrackerSysctls(settings: Readonly<Record<string, string>>): ParsedTrackerSysctls {
  const timeouts: Record<string, number> = { ...DEFAULT_TIMEOUTS };
  const flags: { -readonly [K in keyof TrackerSysctls]: TrackerSysctls[K] } = { ...DEFAULT_TRACKER_SYSCTLS, timeouts };
  const unknown: string[] = [];
  const errors: string[] = [];
  for (const [rawName, rawValue] of Object.entries(settings)) {
    const name = trackerSysctlName(rawName);
    const value = rawValue.trim();
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
      if (name in BOOLEAN_SYSCTLS || name === 'tcp_max_retrans' || name in DEFAULT_TIMEOUTS) {
        errors.push(`${rawName}: expected a non-negative integer, got "${rawValue}"`);
      } else {
        unknown.push(rawName);
      }
      continue;
    }
    const n = Number(value);
    if (name in BOOLEAN_SYSCTLS) {
      flags[BOOLEAN_SYSCTLS[name as keyof typeof BOOLEAN_SYSCTLS]] = n !== 0;
    } else if (name === 'tcp_max_retrans') {
      // u8 in the kernel (proc_dou8vec_minmax): larger values are refused.
      if (n > 255) errors.push(`${rawName}: must be 0..255`);
      else flags.tcpMaxRetrans = n;
    } else if (name in DEFAULT_TIMEOUTS) {
      timeouts[name] = n;
    } else {
      unknown.push(rawName);
    }
  }
  return { sys: flags, unknown, errors };
}
