import type { RejectReply } from '../ir/effect.js';
import { PROTO } from '../ir/fields.js';
import { CTINFO, type Frame, traceEvent } from './frame.js';
import type { Packet } from './packet.js';
import { type TcpConn, tcpSetClosing } from './proto/tcp.js';
import { InetPeers, icmpError, mayAnswerWithIcmp, rejectIcmp, tcpReset } from './responses.js';
import type { HostSettings } from './simulator.js';
import type { FamilyState } from './state.js';

/**
 * How an answer is sent: through OUTPUT and POSTROUTING, carrying `attach` as its connection.
 * `kernelSocket`: it leaves from the kernel's ICMP control socket (icmp_send / icmp6_send), so
 * `owner socket exists` holds for it while uid/gid tests find no file; a REJECT reset has no
 * socket at all (nf_send_reset).
 */
export type SendFromHost = (parent: Frame, pkt: Packet, attach: { ct: number; ctinfo: number } | undefined, kernelSocket: boolean) => void;

/**
 * The packets the host itself makes while handling another one: REJECT's reset or ICMP error,
 * ICMP errors of the forwarding path (no route, TTL exceeded), ICMP redirects. Each is built
 * here (with the kernel's choice of source address, the connection it carries and the rate
 * limits) and handed to the engine, which walks it through OUTPUT and POSTROUTING.
 */
export class Answers {
  /** Per-sender rate state (inet_peer), shared by the ICMP limiter, ip_error and redirects. */
  private readonly peers = new InetPeers();

  constructor(
    private readonly S: FamilyState,
    private readonly opts: Pick<HostSettings, 'icmpRateLimit' | 'icmpRateMask'>,
    private readonly send: SendFromHost,
  ) {}

  reject(f: Frame, reply: RejectReply): void {
    const S = this.S;
    if (reply.type === 'tcp-reset') {
      const rst = tcpReset(f.pkt, S.cfg.defaultTtl);
      if (!rst || f.pkttype !== 0) return;
      // Nor to a packet to a group or broadcast address (a local one reads unicast):
      // nf_send_reset looks at its route's flags, nf_send_reset6 at the destination's class.
      if (S.host.isMulticast(S.family, f.pkt.dst) || S.host.isBroadcast(S.family, f.pkt.dst)) return;
      // nf_send_reset attaches the connection, answering in the opposite direction.
      const attach = f.ct >= 0 ? { ct: f.ct, ctinfo: f.ctDir === 0 ? CTINFO.RELATED_REPLY : CTINFO.RELATED } : undefined;
      if (f.ct >= 0 && S.table.protoOf(f.ct) === PROTO.tcp && S.table.isConfirmed(f.ct)) {
        const timeout = tcpSetClosing(S.table.state[f.ct] as TcpConn, S.cfg.sys);
        if (timeout !== undefined) S.table.setExpires(f.ct, f.now + timeout);
      }
      this.send(f, rst, attach, false);
      return;
    }
    const ic = rejectIcmp(reply, S.family);
    if (!ic) return;
    this.icmp(f, ic.type, ic.code);
  }

  /**
   * icmp_send / icmp6_send: an ICMP error about the frame's packet, from the host. Source: the
   * packet's destination when it was for us; otherwise IPv4 takes the address the route back
   * to the sender picks (icmp_errors_use_inbound_ifaddr is 0), IPv6 an address of the
   * interface the packet came in by (routes here have no preferred source). `routeError`
   * marks ip_error's "no route" answer, which first spends ip_error's own per-sender bucket.
   */
  icmp(f: Frame, type: number, code: number, routeError = false): void {
    const S = this.S;
    const p = f.pkt;
    // ip_error spends its token before icmp_send decides whether the packet may be answered.
    if (routeError && S.family === 'ipv4' && !this.peers.routeErrorAllow(p.src, f.now)) {
      traceEvent(f, 'routing', 'no ICMP answer: ip_error rate limit (5 per sender, then 1/s)');
      return;
    }
    if (!mayAnswerWithIcmp(p) || f.pkttype !== 0) return;
    // Nor about a packet to a group or broadcast address, as it is now (a local one may have
    // been sent there by nat OUTPUT): icmp_send looks at its route's flags, icmp6_send at the
    // destination.
    if (S.host.isMulticast(S.family, p.dst) || S.host.isBroadcast(S.family, p.dst)) return;
    const back = S.host.routeOutput(S.family, p.src);
    if (!back) return;
    let src: bigint | undefined;
    // A joined anycast address answers as itself (icmp6_send: ipv6_chk_acast_addr_src, a
    // link-local one only on the device it came in by; checked on the kernel: routing.test.ts).
    if (S.host.isLocal(S.family, p.dst) || S.host.isAnycast(S.family, p.dst, p.dst >> 118n === 0x3fan ? f.iif : undefined)) src = p.dst;
    else if (S.family === 'ipv6' && f.iif !== '' && f.iif !== 'lo') src = S.host.selectSource('ipv6', f.iif, p.src);
    src ??= back.prefsrc;
    if (src === undefined) return;
    if (back.device !== 'lo' && this.rateMasked(type) && !this.peers.icmpAllow(p.src, f.now, this.interval(back))) {
      traceEvent(f, 'routing', 'ICMP error suppressed by the rate limit');
      return;
    }
    // icmp_glue_bits / icmpv6_getfrag attach the offending packet's connection to the error
    // (nf_ct_attach), so it is RELATED in OUTPUT even when that connection is not confirmed yet.
    const attach = f.ct >= 0 ? { ct: f.ct, ctinfo: f.ctDir === 0 ? CTINFO.RELATED_REPLY : CTINFO.RELATED } : undefined;
    this.send(f, icmpError(p, type, code, src, S.cfg.defaultTtl), attach, true);
  }

  /** Whether icmp_ratemask / net.ipv6.icmp.ratemask puts this type under the limiter. */
  private rateMasked(type: number): boolean {
    const mask = this.opts.icmpRateMask;
    return this.S.family === 'ipv4' ? type < 32 && (mask.ipv4 & (1 << type)) !== 0 : mask.ipv6.has(type);
  }

  /**
   * The limiter's interval toward a destination: icmp_ratelimit for IPv4; for IPv6
   * (icmpv6_xrlim_allow) shortened for wider routes, by 2^((128 - prefix length) / 32).
   */
  private interval(route: { readonly prefixLen?: number }): number {
    const base = this.opts.icmpRateLimit;
    if (this.S.family === 'ipv4' || route.prefixLen === undefined || route.prefixLen >= 128) return base;
    return Math.floor((base * 1000) / 2 ** ((128 - route.prefixLen) >> 5)) / 1000;
  }

  /**
   * ip_forward / ip_rt_send_redirect: a packet routed back out of the interface it came in by,
   * from a sender on that link (and, via a gateway, one on the same link), earns the sender an
   * ICMP host redirect to the better next hop; the packet itself is still forwarded. Per
   * sender: the first at once, the n-th only 20 ms << n after the previous, none after 9, and
   * everything forgotten after 20.48 s without one.
   */
  redirect(f: Frame, device: string, gw: bigint | undefined): void {
    const host = this.S.host;
    const src = f.pkt.src;
    if (!host.onLink(this.S.family, device, src)) return;
    if (gw !== undefined && !host.sameLink(this.S.family, device, src, gw)) return;
    if (!this.peers.redirectAllow(src, f.now)) return;
    const p = f.pkt;
    const rd = icmpError(p, 5, 1, host.selectSource(this.S.family, device, src) ?? p.dst, this.S.cfg.defaultTtl);
    rd.icmp!.gateway = gw ?? p.dst;
    const attach = f.ct >= 0 ? { ct: f.ct, ctinfo: f.ctDir === 0 ? CTINFO.RELATED_REPLY : CTINFO.RELATED } : undefined;
    this.send(f, rd, attach, true);
  }

}
