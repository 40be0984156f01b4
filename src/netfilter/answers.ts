import type { RejectReply } from '../ir/effect.js';
import { PROTO } from '../ir/fields.js';
import { CTINFO, type Frame, traceEvent } from './frame.js';
import type { Packet } from './packet.js';
import { type TcpConn, tcpSetClosing } from './proto/tcp.js';
import { IcmpRateLimiter, RedirectLimiter, icmpError, mayAnswerWithIcmp, rejectIcmp, tcpReset } from './responses.js';
import type { HostSettings } from './simulator.js';
import type { FamilyState } from './state.js';

/** How an answer is sent: through OUTPUT and POSTROUTING, carrying `attach` as its connection. */
export type SendFromHost = (parent: Frame, pkt: Packet, attach: { ct: number; ctinfo: number } | undefined) => void;

/**
 * The packets the host itself makes while handling another one: REJECT's reset or ICMP error,
 * ICMP errors of the forwarding path (no route, TTL exceeded), ICMP redirects. Each is built
 * here (with the kernel's choice of source address, the connection it carries and the rate
 * limits) and handed to the engine, which walks it through OUTPUT and POSTROUTING.
 */
export class Answers {
  private readonly icmpLimiter = new IcmpRateLimiter();

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
      // nf_send_reset attaches the connection, answering in the opposite direction.
      const attach = f.ct >= 0 ? { ct: f.ct, ctinfo: f.ctDir === 0 ? CTINFO.RELATED_REPLY : CTINFO.RELATED } : undefined;
      if (f.ct >= 0 && S.table.protoOf(f.ct) === PROTO.tcp && S.table.isConfirmed(f.ct)) {
        const timeout = tcpSetClosing(S.table.state[f.ct] as TcpConn, S.cfg.sys);
        if (timeout !== undefined) S.table.setExpires(f.ct, f.now + timeout);
      }
      this.send(f, rst, attach);
      return;
    }
    const ic = rejectIcmp(reply, S.family);
    if (!ic) return;
    this.icmp(f, ic.type, ic.code);
  }

  /**
   * icmp_send: an ICMP error about the frame's packet, from the host. Source: the packet's
   * destination when it was for us, else the host's address toward the sender.
   */
  icmp(f: Frame, type: number, code: number): void {
    const S = this.S;
    const p = f.pkt;
    if (!mayAnswerWithIcmp(p) || f.pkttype !== 0) return;
    const local = S.host.isLocal(S.family, p.dst);
    let src: bigint | undefined = local ? p.dst : undefined;
    const back = S.host.routeOutput(S.family, p.src);
    if (!back) return;
    if (src === undefined) src = back.prefsrc;
    if (src === undefined) return;
    const mask = this.opts.icmpRateMask;
    const limited = S.family === 'ipv4' ? type < 32 && (mask.ipv4 & (1 << type)) !== 0 : mask.ipv6.has(type);
    if (back.device !== 'lo' && limited && !this.icmpLimiter.allow(p.src, f.now, this.opts.icmpRateLimit)) {
      traceEvent(f, 'routing', 'ICMP error suppressed by the rate limit');
      return;
    }
    // icmp_glue_bits / icmpv6_getfrag attach the offending packet's connection to the error
    // (nf_ct_attach), so it is RELATED in OUTPUT even when that connection is not confirmed yet.
    const attach = f.ct >= 0 ? { ct: f.ct, ctinfo: f.ctDir === 0 ? CTINFO.RELATED_REPLY : CTINFO.RELATED } : undefined;
    this.send(f, icmpError(p, type, code, src, S.cfg.defaultTtl), attach);
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
    if (!this.redirects.allow(src, f.now)) return;
    const p = f.pkt;
    const rd = icmpError(p, 5, 1, host.selectSource(this.S.family, device, src) ?? p.dst, this.S.cfg.defaultTtl);
    rd.icmp!.gateway = gw ?? p.dst;
    const attach = f.ct >= 0 ? { ct: f.ct, ctinfo: f.ctDir === 0 ? CTINFO.RELATED_REPLY : CTINFO.RELATED } : undefined;
    this.send(f, rd, attach);
  }

  private readonly redirects = new RedirectLimiter();
}
