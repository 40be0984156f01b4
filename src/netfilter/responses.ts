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
 * The per-remote-address state the kernel keeps in an inet_peer (net/ipv4/inetpeer.c), one
 * store per family. Three mechanisms share its fields, so they interact as on the kernel:
 * - ip_error (route.c): a "no route" answer to a forwarded packet costs ip_rt_error_cost (1 s)
 *   of a bucket holding at most ip_rt_error_burst (5 s), whatever the ICMP sysctls say;
 * - inet_peer_xrlim_allow (icmp_ratelimit / net.ipv6.icmp.ratelimit, for the types in the
 *   rate mask): the same tokens, capped at 6 × the interval, each error costing one interval;
 * - ip_rt_send_redirect: `last` and a redirect count (backoff 20 ms << n, at most 9, all
 *   forgotten after 20.48 s without one, which also empties the tokens).
 * A new peer starts as if last seen 60 s ago, so the first burst is full.
 */
interface InetPeer {
  tokens: number;
  last: number;
  redirects: number;
}

export class InetPeers {
  private readonly peers = new Map<bigint, InetPeer>();

  private peer(addr: bigint, now: number): InetPeer {
    let p = this.peers.get(addr);
    if (!p) {
      p = { tokens: 0, last: now - 60, redirects: 0 };
      this.peers.set(addr, p);
    }
    return p;
  }

  /** inet_peer_xrlim_allow: one ICMP error to `addr` every `interval` seconds, bursts of 6. */
  icmpAllow(addr: bigint, now: number, interval: number): boolean {
    const p = this.peer(addr, now);
    let tokens = Math.min(p.tokens + (now - p.last), 6 * interval);
    p.last = now;
    let ok = false;
    if (tokens >= interval - 1e-9) {
      tokens = Math.max(0, tokens - interval);
      ok = true;
    }
    p.tokens = tokens;
    return ok;
  }

  /** ip_error's bucket for "no route" answers (ip_rt_error_cost 1 s, ip_rt_error_burst 5 s). */
  routeErrorAllow(addr: bigint, now: number): boolean {
    const COST = 1;
    const BURST = 5;
    const p = this.peer(addr, now);
    p.tokens = Math.min(p.tokens + (now - p.last), BURST);
    p.last = now;
    if (p.tokens >= COST - 1e-9) {
      p.tokens = Math.max(0, p.tokens - COST);
      return true;
    }
    return false;
  }

  /** ip_rt_send_redirect's backoff (ip_rt_redirect_number 9, load 20 ms, silence 20.48 s). */
  redirectAllow(addr: bigint, now: number): boolean {
    const LOAD = 0.02;
    const SILENCE = LOAD * 1024;
    const p = this.peer(addr, now);
    if (now > p.last + SILENCE) {
      p.tokens = 0;
      p.redirects = 0;
    }
    if (p.redirects >= 9) {
      p.last = now;
      return false;
    }
    if (p.redirects === 0 || now > p.last + LOAD * 2 ** p.redirects) {
      p.last = now;
      p.redirects++;
      return true;
    }
    return false;
  }
}
