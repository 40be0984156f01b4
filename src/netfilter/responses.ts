import type { RejectReply } from '../ir/effect.js';
import { PROTO, TCP_FLAG } from '../ir/fields.js';
import type { Family } from '../util/ip.js';
import { type Packet, clonePacket } from './packet.js';

/**
 * Packets the host itself sends in answer to another one: REJECT's TCP reset
 * (nf_reject_ipv4.c / nf_reject_ipv6.c) and ICMP errors (REJECT, no route, TTL exceeded —
 * icmp_send / icmp6_send). Only the packet is built here; the simulator sends it through the
 * OUTPUT path like any locally generated packet.
 */

const EMPTY = new Uint8Array(0);

/**
 * The reset REJECT sends: addresses and ports swapped; if the offending segment carried an ACK
 * the reset takes its ack number as sequence number (no ACK flag), otherwise it acknowledges
 * the segment (seq + SYN + FIN + payload length) with RST+ACK and sequence 0. No reset answers
 * a reset, and non-first fragments get none.
 */
export function tcpReset(orig: Packet, ttl: number): Packet | undefined {
  const th = orig.tcp;
  if (orig.proto !== PROTO.tcp || !th || orig.fragment || th.flags & TCP_FLAG.RST) return undefined;
  const hasAck = (th.flags & TCP_FLAG.ACK) !== 0;
  const seq = hasAck ? th.ack : 0;
  const ack = hasAck
    ? 0
    : (th.seq + (th.flags & TCP_FLAG.SYN ? 1 : 0) + (th.flags & TCP_FLAG.FIN ? 1 : 0) + orig.payload.length) >>> 0;
  return {
    family: orig.family,
    src: orig.dst,
    dst: orig.src,
    proto: PROTO.tcp,
    ttl,
    ipId: 0,
    tos: 0,
    sport: orig.dport,
    dport: orig.sport,
    tcp: { flags: TCP_FLAG.RST | (hasAck ? 0 : TCP_FLAG.ACK), seq, ack, window: 0 },
    payload: EMPTY,
  };
}

const V4_ERROR_TYPES = new Set([3, 4, 5, 11, 12]);

/** Whether a packet may be answered with an ICMP error at all (never errors about errors). */
export function mayAnswerWithIcmp(orig: Packet): boolean {
  if (orig.fragment) return false;
  if (orig.family === 'ipv4') {
    if (orig.proto === PROTO.icmp && orig.icmp && V4_ERROR_TYPES.has(orig.icmp.type)) return false;
  } else if (orig.proto === PROTO.icmpv6 && orig.icmp && (orig.icmp.type < 128 || orig.icmp.type === 137)) {
    return false;
  }
  return true;
}

/**
 * An ICMP / ICMPv6 error quoting `orig` (as it is now, after any NAT so far). `src` is the
 * address the host answers from (the original destination for local traffic, else its
 * address toward the sender); the caller decides it.
 */
export function icmpError(orig: Packet, type: number, code: number, src: bigint, ttl: number, mtu?: number): Packet {
  const v4 = orig.family === 'ipv4';
  return {
    family: orig.family,
    src,
    dst: orig.src,
    proto: v4 ? PROTO.icmp : PROTO.icmpv6,
    ttl,
    ipId: 0,
    // icmp_send: errors are sent with precedence "internetwork control" and the original TOS bits.
    tos: v4 ? ((orig.tos ?? 0) & 0x1e) | 0xc0 : 0,
    icmp: { type, code, inner: clonePacket(orig), ...(mtu !== undefined ? { mtu } : {}) },
    payload: EMPTY,
  };
}

/** The ICMP type/code of a REJECT reply in this family. */
export function rejectIcmp(reply: Exclude<RejectReply, { type: 'tcp-reset' }>, family: Family): { type: number; code: number } | undefined {
  if (reply.type === 'icmp' && family !== 'ipv4') return undefined;
  if (reply.type === 'icmpv6' && family !== 'ipv6') return undefined;
  return { type: reply.icmpType, code: reply.code };
}

/**
 * Per-destination ICMP error rate limit (icmpv4_xrlim_allow / icmpv6_xrlim_allow with
 * inet_peer_xrlim_allow): a token bucket of 6 tokens refilled at one per `interval` seconds
 * (net.ipv4.icmp_ratelimit = 1 s; IPv6 icmpv6_time = 1 s, shortened by the route's prefix
 * length). Errors to the host itself are never limited.
 */
export class IcmpRateLimiter {
  private readonly peers = new Map<bigint, { tokens: number; last: number }>();

  allow(dst: bigint, now: number, interval: number): boolean {
    if (interval <= 0) return true;
    let p = this.peers.get(dst);
    if (!p) {
      // A new peer starts as if its last error was a minute ago: a full burst is available.
      p = { tokens: 0, last: now - 60 };
      this.peers.set(dst, p);
    }
    let tokens = p.tokens + (now - p.last);
    p.last = now;
    if (tokens > 6 * interval) tokens = 6 * interval;
    let ok = false;
    if (tokens >= interval - 1e-9) {
      tokens -= interval;
      ok = true;
    }
    p.tokens = tokens;
    return ok;
  }
}

/** ip_rt_send_redirect's per-sender backoff (ip_rt_redirect_number 9, load 20 ms, silence 20.48 s). */
export class RedirectLimiter {
  private readonly peers = new Map<bigint, { n: number; last: number }>();

  allow(src: bigint, now: number): boolean {
    const LOAD = 0.02;
    const SILENCE = LOAD * 1024;
    let p = this.peers.get(src);
    if (!p) {
      p = { n: 0, last: Number.NEGATIVE_INFINITY };
      this.peers.set(src, p);
    }
    if (now > p.last + SILENCE) p.n = 0;
    if (p.n >= 9) {
      p.last = now;
      return false;
    }
    if (p.n === 0 || now > p.last + LOAD * 2 ** p.n) {
      p.last = now;
      p.n++;
      return true;
    }
    return false;
  }
}
