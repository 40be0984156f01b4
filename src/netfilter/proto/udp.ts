import type { ProtoTracker, TrackContext, TrackResult, TrackerSysctls } from './tracker.js';

/**
 * UDP and UDP-Lite tracking (net/netfilter/nf_conntrack_proto_udp.c, Linux 6.x). There is no
 * state machine: a flow is UNREPLIED until a packet goes the other way; after that, packets
 * keep it alive with udp_timeout, and once the flow is more than 2 seconds old it counts as a
 * "stream": udp_timeout_stream and ASSURED. UDP-Lite skips the 2-second rule.
 *
 * Per-flow state: the virtual time after which the flow counts as a stream (the kernel's
 * stream_ts, set when the entry is created), or -Infinity when the caller gives no clock.
 */
export type UdpFlow = number;

const STREAM_AFTER_SECONDS = 2;

function timeout(sys: TrackerSysctls, name: 'udp_timeout' | 'udp_timeout_stream'): number {
  return sys.timeouts[name] ?? (name === 'udp_timeout' ? 30 : 120);
}

function udpUpdate(streamAfter: UdpFlow, ctx: TrackContext, needsTwoSeconds: boolean): TrackResult {
  if (!ctx.seenReply) return { verdict: 'accept', timeout: timeout(ctx.sys, 'udp_timeout') };
  // Replies were seen. UDP: only a flow still active 2 s after it started becomes a stream.
  const isStream = !needsTwoSeconds || ctx.now === undefined || ctx.now > streamAfter;
  if (!isStream) return { verdict: 'accept', timeout: timeout(ctx.sys, 'udp_timeout') };
  const t = timeout(ctx.sys, 'udp_timeout_stream');
  // An entry that lost a NAT clash is never ASSURED: it should time out soon.
  if (ctx.natClash || ctx.assured) return { verdict: 'accept', timeout: t };
  return { verdict: 'accept', timeout: t, assured: true };
}

function makeUdpTracker(name: string, proto: number, needsTwoSeconds: boolean): ProtoTracker<UdpFlow> {
  return {
    name,
    protos: [proto],
    create(pkt, sys, now) {
      if (pkt.sport === undefined || pkt.dport === undefined) return { invalid: `${name}: no ports` };
      const streamAfter = now === undefined ? Number.NEGATIVE_INFINITY : now + STREAM_AFTER_SECONDS;
      return { state: streamAfter, timeout: timeout(sys, 'udp_timeout') };
    },
    update(streamAfter, _pkt, _dir, ctx) {
      return udpUpdate(streamAfter, ctx, needsTwoSeconds);
    },
    stateName() {
      return undefined;
    },
    clone(streamAfter) {
      return streamAfter;
    },
  };
}

export const udpTracker: ProtoTracker<UdpFlow> = makeUdpTracker('udp', 17, true);
/** UDP-Lite (nf_conntrack_udplite_packet): same timeouts, a reply makes it a stream at once. */
export const udpliteTracker: ProtoTracker<UdpFlow> = makeUdpTracker('udplite', 136, false);
