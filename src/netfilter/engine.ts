import type { NatAction, RejectReply, SideEffect } from '../ir/effect.js';
import { CT_STATE, type CtStateName, PROTO } from '../ir/fields.js';
import { type Hook, HOOKS, type TableName, TABLES } from '../ir/netfilter.js';
import type { SimInput, SimOutcome, SimVerdict, TraceStep } from './api.js';
import { Answers } from './answers.js';
import { confirm, conntrackIn } from './conntrack/core.js';
import { CTINFO, type Frame, KERNEL_SOCKET_ID, NO_CT, TEMPLATE_CT, traceEvent } from './frame.js';
import { runHelper } from './helper.js';
import { hookManip, icmpReplyTranslation, natFirstPacket, natInitialized, natPacket, nullBinding } from './nat/core.js';
import { natTarget } from './nat/targets.js';
import type { InputRoute, RouteResult } from './host.js';
import type { Packet } from './packet.js';
import type { CompiledChain, CompiledRule } from './rules/compile.js';
import { ACCEPT, DROP, runChain, type TargetHost } from './rules/exec.js';
import { seqAdjust } from './seqadj.js';
import type { HostSettings } from './simulator.js';
import type { FamilyState } from './state.js';

/**
 * The netfilter pipeline of one address family, in kernel order (priorities of
 * include/uapi/linux/netfilter_ipv4.h):
 *
 *   arriving:  PREROUTING  raw · conntrack · mangle · nat(DNAT)  → routing →
 *     local:   INPUT       mangle · filter · security · nat(SNAT) · confirm
 *     forward: FORWARD     mangle · filter · security  → POSTROUTING mangle · nat(SNAT) · confirm
 *   local:     OUTPUT      raw · conntrack · mangle · nat(DNAT) · reroute · filter · security
 *              → POSTROUTING mangle · nat(SNAT) · confirm  (→ back in through lo if local)
 *
 * One Frame carries the packet through; the entry a first packet creates stays unconfirmed
 * (not in the table) until confirm, and is freed if the packet dies before.
 */

const STATE_NAMES: Readonly<Record<number, CtStateName>> = {
  [CT_STATE.INVALID]: 'INVALID',
  [CT_STATE.ESTABLISHED]: 'ESTABLISHED',
  [CT_STATE.RELATED]: 'RELATED',
  [CT_STATE.NEW]: 'NEW',
  [CT_STATE.UNTRACKED]: 'UNTRACKED',
};

const HOOK_INDEX: Readonly<Record<Hook, number>> = { PREROUTING: 0, INPUT: 1, FORWARD: 2, OUTPUT: 3, POSTROUTING: 4 };
const TABLE_INDEX: Readonly<Record<TableName, number>> = { raw: 0, mangle: 1, nat: 2, filter: 3, security: 4 };

/** Moves the frame to a hook (the name for traces and rules, the index for chain lookups). */
function enter(f: Frame, hook: Hook): void {
  f.hook = hook;
  f.hookIndex = HOOK_INDEX[hook];
}

const NO_RESPONSES: SimOutcome['responses'] = Object.freeze([]) as SimOutcome['responses'];
const NO_TRACE: readonly TraceStep[] = Object.freeze([]) as readonly TraceStep[];

/** A copy the pipeline may rewrite (NAT, TTL): every field spelled out, one object shape. */
export function copyPacket(p: Packet): Packet {
  const th = p.tcp;
  const ic = p.icmp;
  return {
    family: p.family,
    src: p.src,
    dst: p.dst,
    proto: p.proto,
    ttl: p.ttl,
    ipId: p.ipId,
    tos: p.tos,
    sport: p.sport,
    dport: p.dport,
    tcp: th ? { flags: th.flags, seq: th.seq, ack: th.ack, window: th.window, wscale: th.wscale, mss: th.mss, sackPerm: th.sackPerm } : undefined,
    icmp: ic ? { type: ic.type, code: ic.code, id: ic.id, seq: ic.seq, inner: ic.inner ? copyPacket(ic.inner) : undefined, mtu: ic.mtu, gateway: ic.gateway } : undefined,
    payload: p.payload,
    fragment: p.fragment,
    macSrc: p.macSrc,
  };
}

interface PathResult {
  verdict: SimVerdict;
  egress?: string;
  delivered?: boolean;
}

export class FamilyEngine implements TargetHost {
  /** The packets the host itself sends (REJECT answers, ICMP errors, redirects). */
  private readonly answers: Answers;
  /** Frames in use by nested sends (responses while handling a packet). */
  private depth = 0;

  /** Built-in chains by hook and table index: looked up several times per packet. */
  private readonly chains: (CompiledChain | undefined)[][];

  constructor(
    readonly S: FamilyState,
    private readonly opts: Pick<HostSettings, 'ipForward' | 'icmpRateLimit' | 'icmpRateMask' | 'sendRedirects'>,
  ) {
    this.chains = HOOKS.map((h) => TABLES.map((t) => S.rs.builtin(t, h)));
    this.answers = new Answers(S, opts, (parent, pkt, attach, kernelSocket) => this.sendFromHost(parent, pkt, attach, kernelSocket));
  }

  // ---------------------------------------------------------------- entry point

  process(input: SimInput): SimOutcome {
    const S = this.S;
    const f = S.frame;
    this.reset(f, copyPacket(input.packet), input.t);
    f.autoSeq = input.fill?.seq === true;
    f.autoAck = input.fill?.ack === true;
    // A locally generated packet comes from a socket; without an owner given it is root's
    // (as the kernel harness's raw socket is). Packets from the wire have no socket.
    const local = input.ingress.kind === 'local';
    f.uid = input.uid ?? (local ? 0 : undefined);
    f.gid = input.gid ?? (local ? 0 : undefined);
    this.forced = input.route;
    const res = input.ingress.kind === 'local' ? this.outputPath(f, input.fill?.src === true) : this.inputPath(f, input.ingress.device);
    this.forced = undefined;
    const stateSeen = f.seenState;
    this.finish(f);
    const dropped = res.verdict === 'dropped';
    // One object shape for every outcome (optional fields present as undefined).
    return {
      input: f.arrived ? { ...input, packet: f.arrived } : input,
      verdict: res.verdict,
      dropReason: dropped ? (f.dropReason ?? 'dropped') : undefined,
      egress: res.egress !== undefined && !dropped ? { device: res.egress, packet: f.pkt } : undefined,
      delivered: res.delivered ? f.pkt : undefined,
      responses: f.responses ?? NO_RESPONSES,
      ctState: STATE_NAMES[stateSeen] ?? 'INVALID',
      ctDir: f.seenDir === undefined ? undefined : f.seenDir === 0 ? 'original' : 'reply',
      trace: f.trace ?? NO_TRACE,
      invalidReason: f.invalidReason,
      unknowns: f.unknowns,
    };
  }

  private reset(f: Frame, pkt: Packet, now: number): void {
    f.pkt = pkt;
    f.now = now;
    f.family = this.S.family;
    enter(f, 'PREROUTING');
    f.iif = '';
    f.oif = '';
    f.mark = 0;
    f.ct = NO_CT;
    f.ctinfo = CTINFO.NEW;
    f.untracked = false;
    f.template = undefined;
    f.pkttype = 0;
    f.uid = undefined;
    f.gid = undefined;
    f.trace = this.S.cfg.trace ? [] : undefined;
    f.unknowns = undefined;
    f.dropReason = undefined;
    f.invalidReason = undefined;
    f.killAfter = false;
    f.autoSeq = false;
    f.autoAck = false;
    f.createdCt = NO_CT;
    f.seenState = CT_STATE.INVALID;
    f.seenDir = undefined;
    f.responses = undefined;
    f.arrived = undefined;
    f.pickedSource = false;
    f.nexthop = undefined;
    f.refresh();
  }

  /** After the walk: free an entry that was never confirmed, apply a deferred kill. */
  private finish(f: Frame): void {
    const t = this.S.table;
    if (f.createdCt >= 0 && t.isLive(f.createdCt) && !t.isConfirmed(f.createdCt)) t.remove(f.createdCt);
    if (f.killAfter && f.ct >= 0 && t.isLive(f.ct)) t.remove(f.ct);
  }

  // ---------------------------------------------------------------- paths

  private inputPath(f: Frame, device: string): PathResult {
    const S = this.S;
    const host = S.host;
    enter(f, 'PREROUTING');
    f.iif = device;
    f.oif = '';
    const p = f.pkt;
    f.pkttype = this.castOf(f);
    const bad = S.family === 'ipv6' ? host.ipv6HeaderDrop(device, p.src, p.dst) : undefined;
    if (bad !== undefined) {
      // ip6_rcv_core drops these before the PREROUTING hook: no rule, no conntrack sees them.
      f.dropReason = bad;
      this.step(f, 'routing', bad);
      return this.dropped(f);
    }
    if (!this.table(f, 'raw')) return this.dropped(f);
    if (!this.track(f)) return this.dropped(f);
    if (!this.table(f, 'mangle')) return this.dropped(f);
    if (!this.natStage(f)) return this.dropped(f);
    const rt = this.forced ? this.forcedInput(f) : host.routeInput(S.family, device, f.pkt.src, f.pkt.dst);
    switch (rt.kind) {
      case 'martian':
        f.dropReason = rt.reason;
        this.step(f, 'routing', rt.reason);
        return this.dropped(f);
      case 'unreachable':
        f.dropReason = host.hasModel ? 'no-route' : 'no-route (the policy has no host model; give the packet a route)';
        this.step(f, 'routing', 'no route to the destination');
        if (this.opts.ipForward) this.answers.icmp(f, S.family === 'ipv4' ? 3 : 1, 0, true);
        return this.dropped(f);
      case 'local':
        return this.localIn(f);
      case 'forward': {
        if (!this.opts.ipForward) {
          f.dropReason = 'forwarding disabled';
          return this.dropped(f);
        }
        if (f.pkttype !== 0) {
          f.dropReason = 'not forwarded (broadcast/multicast)';
          return this.dropped(f);
        }
        if (p.ttl <= 1) {
          f.dropReason = 'ttl exceeded';
          this.step(f, 'routing', 'TTL exceeded in transit');
          this.answers.icmp(f, S.family === 'ipv4' ? 11 : 3, 0);
          return this.dropped(f);
        }
        p.ttl -= 1;
        if (S.family === 'ipv4' && this.opts.sendRedirects && rt.route.device === device) this.answers.redirect(f, device, rt.route.nexthop);
        enter(f, 'FORWARD');
        f.oif = rt.route.device;
        f.nexthop = rt.route.nexthop;
        if (!this.table(f, 'mangle') || !this.table(f, 'filter') || !this.table(f, 'security')) return this.dropped(f);
        return this.postrouting(f, 'forwarded');
      }
    }
  }

  private localIn(f: Frame): PathResult {
    enter(f, 'INPUT');
    f.oif = '';
    if (!this.table(f, 'mangle') || !this.table(f, 'filter') || !this.table(f, 'security')) return this.dropped(f);
    if (!this.natStage(f)) return this.dropped(f);
    if (!this.confirm(f)) return this.dropped(f);
    return { verdict: 'local', delivered: true };
  }

  private postrouting(f: Frame, verdict: SimVerdict): PathResult {
    enter(f, 'POSTROUTING');
    // ip_output / ip6_output hand the hook the packet's device so far as its input device: a
    // forwarded packet keeps the one it came in by (rules in user chains can test it), a local
    // one has none (checked on the kernel: test/kernel/hook-devices.test.ts).
    if (!this.table(f, 'mangle')) return this.dropped(f);
    if (!this.natStage(f)) return this.dropped(f);
    if (!this.confirm(f)) return this.dropped(f);
    const scope = this.S.family === 'ipv6' ? this.S.host.ipv6OutputScopeDrop(f.oif, f.pkt.dst) : undefined;
    if (scope !== undefined) {
      f.dropReason = scope;
      this.step(f, 'routing', scope);
      return this.dropped(f);
    }
    return { verdict, egress: f.oif };
  }

  private outputPath(f: Frame, pickSource: boolean): PathResult {
    const S = this.S;
    const host = S.host;
    const forced = this.forced;
    const route =
      forced?.kind === 'forward'
        ? { device: forced.device, prefsrc: host.selectSource(S.family, forced.device, f.pkt.dst) }
        : forced?.kind === 'local'
          ? { device: 'lo', prefsrc: f.pkt.dst }
          : host.routeOutput(S.family, f.pkt.dst);
    if (!route) {
      f.dropReason = 'no-route';
      this.step(f, 'routing', 'no route to the destination (the sending socket gets an error)');
      return this.dropped(f);
    }
    if (pickSource) {
      f.pkt.src = route.prefsrc ?? f.pkt.src;
      f.pickedSource = true;
      f.refresh();
    }
    enter(f, 'OUTPUT');
    f.iif = '';
    f.oif = route.device;
    f.nexthop = route.nexthop;
    // A socket's packet is PACKET_HOST whatever its destination, and -m pkttype reads it so in
    // OUTPUT and POSTROUTING (xt_pkttype looks at the address only for PACKET_LOOPBACK copies;
    // checked on the kernel: test/kernel/local-output.test.ts). It stays so over lo: the
    // loopback device's header carries its own all-zero MAC, which eth_type_trans calls HOST.
    f.pkttype = 0;
    if (!this.table(f, 'raw')) return this.dropped(f);
    if (!this.track(f)) return this.dropped(f);
    if (!this.table(f, 'mangle')) return this.dropped(f);
    const dstBefore = f.pkt.dst;
    if (!this.natStage(f)) return this.dropped(f);
    let again: RouteResult | undefined;
    if (f.pkt.dst !== dstBefore) {
      // ip_route_me_harder: the destination changed, route again.
      again = host.rerouteOutput(S.family, f.pkt.src, f.pkt.dst, f.oif);
      if (!again) {
        f.dropReason = 'no-route';
        return this.dropped(f);
      }
    }
    // The rest of OUTPUT still sees the device the hook began with (__ip_local_out passes the
    // first route's device, fixed for the whole hook); the packet leaves by the new route, which
    // POSTROUTING sees (checked on the kernel: test/kernel/hook-devices.test.ts).
    if (!this.table(f, 'filter') || !this.table(f, 'security')) return this.dropped(f);
    if (again) {
      f.oif = again.device;
      f.nexthop = again.nexthop;
    }
    const out = this.postrouting(f, 'sent');
    if (out.verdict === 'dropped' || f.oif !== 'lo') return out;
    // Looped back: in again through lo (conntrack keeps the connection it already has).
    // ip6_rcv_core checks the header on lo too: a source that POSTROUTING turned into a group
    // address dies there, before PREROUTING (checked on the kernel: routing.test.ts).
    const bad = S.family === 'ipv6' ? host.ipv6HeaderDrop('lo', f.pkt.src, f.pkt.dst) : undefined;
    if (bad !== undefined) {
      f.dropReason = bad;
      this.step(f, 'routing', bad);
      return this.dropped(f);
    }
    enter(f, 'PREROUTING');
    f.iif = 'lo';
    f.oif = '';
    if (!this.table(f, 'raw') || !this.table(f, 'mangle') || !this.natStage(f)) return this.dropped(f);
    const local = this.localIn(f);
    return local.verdict === 'dropped' ? local : { verdict: 'sent', egress: 'lo', delivered: true };
  }

  /** Routing the caller fixed for the packet being processed (SimInput.route). */
  private forced: SimInput['route'];

  private forcedInput(f: Frame): InputRoute {
    const r = this.forced!;
    if (r.kind === 'local') return { kind: 'local', cast: 'unicast' };
    return { kind: 'forward', route: { device: r.device } };
  }

  private castOf(f: Frame): number {
    const host = this.S.host;
    if (this.S.family === 'ipv4') return host.castOf4(f.dstN);
    return host.isMulticast('ipv6', f.pkt.dst) ? 2 : 0;
  }

  private dropped(f: Frame): PathResult {
    f.dropReason ??= 'dropped';
    return { verdict: 'dropped' };
  }

  // ---------------------------------------------------------------- stages

  private step(f: Frame, chain: string, action: string, table: TableName = 'raw'): void {
    f.trace?.push({ hook: f.hook, table, chain, action, event: chain === 'routing' ? 'routing' : 'nat' });
  }

  /** Runs a table's built-in chain for the current hook, if the policy has one. */
  private table(f: Frame, name: TableName): boolean {
    const chain = this.chains[f.hookIndex][TABLE_INDEX[name]];
    if (chain === undefined) return true;
    return runChain(chain, chain.owner, f, this) === ACCEPT;
  }

  private track(f: Frame): boolean {
    const S = this.S;
    if (!S.rs.tracking) {
      // No rule of this family needs conntrack: the kernel never registered its hooks.
      if (f.trace && f.hook !== 'OUTPUT') traceEvent(f, 'conntrack', 'not active: no rule of this family uses conntrack');
      f.seenState = f.ctStateBit;
      return true;
    }
    const before = f.ct;
    const v = conntrackIn(S, f);
    if (v !== ACCEPT) return false;
    if (before !== f.ct && f.ct >= 0 && !S.table.isConfirmed(f.ct) && f.createdCt === NO_CT && f.ctinfo !== CTINFO.RELATED_REPLY) {
      if (f.ctinfo === CTINFO.NEW || f.ctinfo === CTINFO.RELATED) f.createdCt = f.ct;
    }
    if (f.arrived === undefined && (f.autoSeq || f.autoAck || f.pickedSource)) f.arrived = copyPacket(f.pkt);
    f.seenState = f.ctStateBit;
    f.seenDir = f.ct >= 0 ? f.ctDir : undefined;
    return true;
  }

  /** nf_nat_ipv4_fn / nf_nat_inet_fn for the current hook. */
  private natStage(f: Frame): boolean {
    const S = this.S;
    if (!S.rs.hasNat || f.ct < 0) return true;
    const m = hookManip(f.hook);
    const icmp = S.family === 'ipv4' ? PROTO.icmp : PROTO.icmpv6;
    if ((f.ctinfo === CTINFO.RELATED || f.ctinfo === CTINFO.RELATED_REPLY) && f.pkt.proto === icmp && f.pkt.icmp?.inner) {
      const v = icmpReplyTranslation(S, f, m);
      if (v !== ACCEPT) f.dropReason = 'nat: ICMP redirect for a NATed connection';
      return v === ACCEPT;
    }
    const i = f.ct;
    if (natFirstPacket(f.ctinfo) && !natInitialized(S, i, m)) {
      const chain = this.chains[f.hookIndex][TABLE_INDEX.nat];
      if (chain) {
        const v = runChain(chain, chain.owner, f, this);
        if (v !== ACCEPT) return false;
      }
      if (!natInitialized(S, i, m)) {
        nullBinding(S, i, m, f.now);
        if (f.trace && S.table.status[i] & (m === 'src' ? 0x10 : 0x20)) {
          this.step(f, f.hook, `null binding moved the ${m === 'src' ? 'source' : 'destination'} (tuple already in use)`, 'nat');
        }
      }
    } else if (this.masqOifChanged(f)) {
      f.dropReason = 'masquerade: outgoing interface changed';
      S.table.remove(i);
      f.ct = NO_CT;
      return false;
    }
    natPacket(S, f, m);
    return true;
  }

  private masqOifChanged(f: Frame): boolean {
    if (f.hook !== 'POSTROUTING' || f.ctDir !== 0) return false;
    const dev = this.S.table.ext[f.ct]?.masqDevice;
    return dev !== undefined && dev !== f.oif;
  }

  private confirm(f: Frame): boolean {
    return confirm(this.S, f, runHelper, seqAdjust) === ACCEPT;
  }

  // ---------------------------------------------------------------- targets (TargetHost)

  nat(f: Frame, action: NatAction): number {
    return natTarget(this.S, f, action);
  }

  sideEffect(f: Frame, e: SideEffect, rule: CompiledRule, chain: CompiledChain): void {
    const t = this.S.table;
    switch (e.type) {
      case 'log':
        return;
      case 'xmark': {
        const mask = Number(e.mask) >>> 0;
        const xor = Number(e.xor) >>> 0;
        if (e.field === 'mark') f.mark = ((f.mark & ~mask) ^ xor) >>> 0;
        else if (f.ct >= 0) t.mark[f.ct] = ((t.mark[f.ct] & ~mask) ^ xor) >>> 0;
        return;
      }
      case 'copy-mark': {
        const fromMask = Number(e.fromMask) >>> 0;
        const toMask = Number(e.toMask) >>> 0;
        if (f.ct < 0) return;
        const from = e.from === 'mark' ? f.mark : t.mark[f.ct];
        const to = e.to === 'mark' ? f.mark : t.mark[f.ct];
        const v = ((to & ~toMask) ^ (from & fromMask)) >>> 0;
        if (e.to === 'mark') f.mark = v;
        else t.mark[f.ct] = v;
        return;
      }
      case 'notrack':
        if (f.ct === NO_CT && !f.untracked) {
          f.untracked = true;
          f.ctinfo = CTINFO.UNTRACKED;
        }
        return;
      case 'ct-template':
        if (f.ct === NO_CT && !f.untracked) {
          f.ct = TEMPLATE_CT;
          f.ctinfo = CTINFO.NEW;
          f.template = { ...(e.helper ? { helper: e.helper } : {}), ...(e.zone !== undefined ? { zone: e.zone } : {}) };
        }
        return;
      case 'rewrite-tos':
        f.pkt.tos = (((f.pkt.tos ?? 0) & ~e.mask) ^ e.xor) & 0xff;
        return;
      case 'rewrite-ttl': {
        const v = e.op === 'set' ? e.value : e.op === 'inc' ? f.pkt.ttl + e.value : f.pkt.ttl - e.value;
        f.pkt.ttl = Math.max(0, Math.min(255, v));
        return;
      }
      case 'unmodelled':
        return;
      default: {
        const never: never = e;
        void rule;
        void chain;
        throw new Error(`unhandled side effect ${JSON.stringify(never)}`);
      }
    }
  }

  reject(f: Frame, reply: RejectReply): void {
    this.answers.reject(f, reply);
  }

  /** Sends a packet the host makes while handling `parent`, through OUTPUT and POSTROUTING. */
  private sendFromHost(parent: Frame, pkt: Packet, attach: { ct: number; ctinfo: number } | undefined, kernelSocket: boolean): void {
    const S = this.S;
    if (this.depth > 2) return;
    this.depth++;
    const f = S.spare[this.depth - 1] ?? (S.spare[this.depth - 1] = S.newFrame());
    this.reset(f, pkt, parent.now);
    f.trace = parent.trace ? [] : undefined;
    if (kernelSocket) {
      f.uid = KERNEL_SOCKET_ID;
      f.gid = KERNEL_SOCKET_ID;
    }
    if (attach) {
      f.ct = attach.ct;
      f.ctinfo = attach.ctinfo;
    }
    const res = this.outputPath(f, false);
    this.finish(f);
    this.depth--;
    if (parent.trace && f.trace) for (const s of f.trace) parent.trace.push({ ...s, action: `[answer] ${s.action}`, event: 'answer' });
    if (res.verdict !== 'dropped' && res.egress) {
      const local = res.egress === 'lo' && res.delivered === true;
      (parent.responses ??= []).push(local ? { device: 'lo', packet: f.pkt, local: true } : { device: res.egress, packet: f.pkt });
    }
  }
}
