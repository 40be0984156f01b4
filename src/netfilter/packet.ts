import type { Family } from '../util/ip.js';

/**
 * One packet as nfproof's simulator and kernel harness see it: network and transport headers
 * with the values that matter to netfilter, plus the payload. Addresses are bigint (32 or 128
 * bits by family). The simulator copies a packet before rewriting it (NAT), so callers keep
 * theirs. Wire encoding (checksums, lengths) lives in wire.ts; JSON Lines and pcap in
 * packet-file.ts and pcap.ts.
 */
export interface Packet {
  family: Family;
  src: bigint;
  dst: bigint;
  /** IP protocol / IPv6 upper-layer protocol number. */
  proto: number;
  /** IPv4 TTL or IPv6 hop limit. */
  ttl: number;
  /** IPv4 identification (ignored for IPv6). */
  ipId?: number;
  /** DSCP/ECN byte (TOS / traffic class). */
  tos?: number;
  /** Ports for tcp, udp, udplite, sctp, dccp. */
  sport?: number;
  dport?: number;
  tcp?: TcpHeader;
  icmp?: IcmpHeader;
  /** Transport payload (TCP/UDP data; for ICMP echo the echo data). */
  payload: Uint8Array;
  /** Non-first fragment (iptables -f). nfproof does not reassemble. */
  fragment?: boolean;
  /** Source MAC address (48 bits) of the frame that carried it, when known (`-m mac`). */
  macSrc?: bigint;
}

export interface TcpHeader {
  /** Flag byte (see TCP_FLAG in ir/fields.ts). */
  flags: number;
  seq: number;
  ack: number;
  window: number;
  /** Window scale option (SYN/SYN-ACK only). */
  wscale?: number;
  /** MSS option (SYN/SYN-ACK only). */
  mss?: number;
  /** SACK permitted option. */
  sackPerm?: boolean;
  /**
   * SACK blocks (left, right edge) of a SACK option. Conntrack's window check reads the
   * highest right edge when the receiver announced SACK-permitted (tcp_sack()).
   */
  sack?: ReadonlyArray<readonly [number, number]>;
}

export interface IcmpHeader {
  type: number;
  code: number;
  /** Echo request/reply identifier and sequence. */
  id?: number;
  seq?: number;
  /** For error messages: the quoted packet (its IP header and first transport bytes). */
  inner?: Packet;
  /** Next-hop MTU (fragmentation needed / packet too big). */
  mtu?: number;
  /** The better next hop an ICMP redirect names (IPv4 type 5). */
  gateway?: bigint;
}

/** Where a packet enters the simulated host: an interface (by device name) or a local socket. */
export type Ingress = { readonly kind: 'iface'; readonly device: string } | { readonly kind: 'local' };

/** Deep copy (payloads are shared: nothing rewrites payload bytes in place). */
export function clonePacket(p: Packet): Packet {
  return {
    ...p,
    ...(p.tcp ? { tcp: { ...p.tcp } } : {}),
    ...(p.icmp ? { icmp: { ...p.icmp, ...(p.icmp.inner ? { inner: clonePacket(p.icmp.inner) } : {}) } } : {}),
  };
}

/** Length on the wire of the IP packet (used for byte counters). */
export function ipLength(p: Packet): number {
  const ipHeader = p.family === 'ipv4' ? 20 : 40;
  return ipHeader + transportLength(p);
}

export function transportLength(p: Packet): number {
  if (p.tcp) {
    const sackBlocks = p.tcp.sack?.length ?? 0;
    const opts =
      (p.tcp.mss !== undefined ? 4 : 0) +
      (p.tcp.wscale !== undefined ? 4 : 0) +
      (p.tcp.sackPerm ? 4 : 0) +
      (sackBlocks ? 4 + 8 * sackBlocks : 0); // NOP, NOP, kind 5, length, then 8 bytes per block
    return 20 + opts + p.payload.length;
  }
  if (p.icmp) {
    return 8 + (p.icmp.inner ? quotedLength(p.icmp.inner) : p.payload.length);
  }
  if (p.sport !== undefined) return 8 + p.payload.length; // udp-like
  return p.payload.length;
}

/**
 * Linux quotes as much of the offending packet as fits a 576-byte ICMP message (IPv4,
 * icmp_send) or the 1280-byte minimum MTU (IPv6, icmp6_send).
 */
function quotedLength(inner: Packet): number {
  const full = ipLength(inner);
  return inner.family === 'ipv4' ? Math.min(full, 576 - 28) : Math.min(full, 1280 - 48);
}
