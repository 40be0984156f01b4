import type { HostModel, Interface } from '../ir/policy.js';
import { ipv6AddrClassBits } from '../kinds/match/addrtype.js';
import { type Family, familyBits, formatAddress, prefixMask } from '../util/ip.js';

/**
 * The simulated host's network view: which addresses are its own, where a destination is
 * routed, which source address it would pick. Built once from the policy's host model.
 *
 * What the kernel does and what we do (ip route / fib semantics, simplified to one main table):
 * - an address configured on an interface, 127.0.0.0/8 and ::1 are local;
 * - the subnet broadcast of a configured IPv4 prefix and 255.255.255.255 are delivered locally
 *   as broadcast; multicast destinations are delivered locally as multicast;
 * - a forwarding host owns the IPv6 subnet-router anycast address of each of its prefixes
 *   (see anycastOf): delivered locally, never a source of its own;
 * - every configured prefix gives a connected route on its device (metric 0 for IPv4, 256 for
 *   IPv6, as the kernel installs them), declared routes come on top; the longest prefix wins,
 *   then the lowest metric, then the first declared;
 * - a route's next hop is its `via`, else the destination itself.
 */

/**
 * The metric the kernel gives a declared route: IPv4 takes it as given (none is 0); IPv6 turns
 * 0, given or not, into IP6_RT_PRIO_USER (1024, ip6_route_info_create), so `metric 0` there
 * loses to `metric 2` (checked on the kernel: test/kernel/routing.test.ts).
 */
export function routeMetric(family: Family, metric: number | undefined): number {
  if (family === 'ipv4') return metric ?? 0;
  return metric ? metric : 1024;
}

/** Kernel route types (RTN_*), used for addrtype matching (bit 1 << type). */
export const RTN = {
  UNSPEC: 0,
  UNICAST: 1,
  LOCAL: 2,
  BROADCAST: 3,
  ANYCAST: 4,
  MULTICAST: 5,
  BLACKHOLE: 6,
  UNREACHABLE: 7,
} as const;

export interface RouteResult {
  readonly device: string;
  /** Next hop address: the gateway; absent on a connected route (the destination itself). */
  readonly nexthop?: bigint;
  /** Preferred source address for packets this host sends on this route, if it has one. */
  readonly prefsrc?: bigint;
  /** Prefix length of the route that matched (the IPv6 ICMP limiter reads it). */
  readonly prefixLen?: number;
}

export type InputRoute =
  | { readonly kind: 'local'; readonly cast: 'unicast' | 'broadcast' | 'multicast' }
  | { readonly kind: 'forward'; readonly route: RouteResult }
  | { readonly kind: 'unreachable' }
  | { readonly kind: 'martian'; readonly reason: string };

interface SortedRoute extends RouteEntry {
  readonly net4: number;
  readonly mask4: number;
  /** The whole result when it does not depend on the destination (most routes). */
  readonly fixed?: RouteResult;
  /** The same as the input routing decision. */
  readonly fixedInput?: InputRoute;
}

interface RouteEntry {
  readonly family: Family;
  readonly addr: bigint;
  readonly len: number;
  readonly mask: bigint;
  readonly via?: bigint;
  readonly device: string;
  readonly metric: number;
  readonly order: number;
}

interface LocalAddr {
  readonly family: Family;
  readonly addr: bigint;
  readonly prefixLen: number;
  readonly device: string;
}

const V4_LOOPBACK_NET = 0x7f000000n;
/** 127.0.0.1, the source of a local packet to 0.0.0.0 that has none. */
const V4_LOCALHOST = 0x7f000001n;
const MARTIAN_SRC: InputRoute = { kind: 'martian', reason: 'martian source' };
const LOCAL_UNICAST: InputRoute = { kind: 'local', cast: 'unicast' };
const LOCAL_BROADCAST: InputRoute = { kind: 'local', cast: 'broadcast' };
const LOCAL_MULTICAST: InputRoute = { kind: 'local', cast: 'multicast' };
const UNREACHABLE: InputRoute = { kind: 'unreachable' };

const V4_BROADCAST = 0xffffffffn;
const V6_LOOPBACK = 1n;

function isV4Multicast(a: bigint): boolean {
  return a >> 28n === 0xen;
}

function isV6Multicast(a: bigint): boolean {
  return a >> 120n === 0xffn;
}

function isV6LinkLocal(a: bigint): boolean {
  return a >> 118n === 0x3fan; // fe80::/10
}

const V6_SCOPE_LINK = 0x2;

/** __ipv6_addr_src_scope: a multicast address's own scope; link-local and ::1 link; fec0::/10 site; the rest global. */
function v6Scope(a: bigint): number {
  if (isV6Multicast(a)) return Number((a >> 112n) & 0xfn);
  if (isV6LinkLocal(a) || a === V6_LOOPBACK) return V6_SCOPE_LINK;
  if (a >> 118n === 0x3fbn) return 0x5;
  return 0xe;
}

function commonPrefix(a: bigint, b: bigint): number {
  let x = a ^ b;
  let n = 128;
  while (x > 0n) {
    x >>= 1n;
    n--;
  }
  return n;
}

/**
 * The subnet-router anycast address a forwarding host joins for an IPv6 address (RFC 4291
 * 2.6.1; addrconf_join_anycast): the prefix with all host bits zero, for prefixes shorter
 * than /127 (RFC 6164 leaves point-to-point /127s alone); none when that is `::`.
 */
export function anycastOf(addr: bigint, prefixLen: number): bigint | undefined {
  if (prefixLen >= 127) return undefined;
  const a = addr & prefixMask('ipv6', prefixLen);
  return a === 0n ? undefined : a;
}

/** Lexicographic comparison of score keys; ties keep the earlier candidate. */
function isBetter(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return false;
}

export class Host {
  readonly devices: ReadonlySet<string>;
  private readonly byName = new Map<string, string>();
  private readonly locals: LocalAddr[] = [];
  private readonly routes: RouteEntry[] = [];
  private readonly broadcasts = new Set<bigint>();
  /** The same IPv4 sets as numbers, for the per-packet checks. */
  private readonly broadcasts4 = new Set<number>();
  private readonly local4 = new Set<number>();
  /** Configured addresses of both families (values never collide in practice: IPv4 < 2^32, IPv6 above). */
  private readonly localSet = new Set<bigint>();
  private readonly sorted4: SortedRoute[] = [];
  private readonly sorted6: SortedRoute[] = [];
  /** IPv4 primary addresses in device order (an address in the subnet of an earlier one on its device is secondary). */
  private readonly primaries4: LocalAddr[] = [];
  /** IPv6 addresses, with ::1 on lo: the candidates of source selection. */
  private readonly locals6WithLoopback: LocalAddr[] = [];

  /** net.ipv6.conf.*.forwarding / ip_forward: a router joins the all-routers groups. */
  private readonly forwarding: boolean;
  /** IPv6 subnet-router anycast addresses the host joined, with the devices that joined each. */
  private readonly anycast6 = new Map<bigint, string[]>();

  constructor(
    readonly model: HostModel | undefined,
    opts: { readonly forwarding?: boolean } = {},
  ) {
    this.forwarding = opts.forwarding ?? true;
    const devices = new Set<string>(['lo']);
    let order = 0;
    for (const itf of model?.interfaces ?? []) {
      devices.add(itf.device);
      this.byName.set(itf.name, itf.device);
      this.byName.set(itf.device, itf.device);
      for (const a of itf.addresses) {
        this.locals.push({ family: a.family, addr: a.addr, prefixLen: a.prefixLen, device: itf.device });
        if (a.family === 'ipv4') {
          this.localSet.add(a.addr);
          this.local4.add(Number(a.addr));
        }
        const mask = prefixMask(a.family, a.prefixLen);
        this.routes.push({
          family: a.family,
          addr: a.addr & mask,
          len: a.prefixLen,
          mask,
          device: itf.device,
          metric: a.family === 'ipv4' ? 0 : 256,
          order: order++,
        });
        if (a.family === 'ipv4' && a.prefixLen < 31) {
          this.broadcasts.add((a.addr & mask) | (~mask & V4_BROADCAST));
          this.broadcasts4.add(Number((a.addr & mask) | (~mask & V4_BROADCAST)));
        }
      }
    }
    for (const r of model?.routes ?? []) {
      this.routes.push({
        family: r.family,
        addr: r.dest.addr,
        len: r.dest.len,
        mask: prefixMask(r.family, r.dest.len),
        ...(r.via !== undefined ? { via: r.via } : {}),
        device: r.device,
        metric: routeMetric(r.family, r.metric),
        order: order++,
      });
    }
    this.devices = devices;
    if (this.forwarding) {
      for (const l of this.locals) {
        const a = l.family === 'ipv6' ? anycastOf(l.addr, l.prefixLen) : undefined;
        if (a === undefined || this.isLocal('ipv6', a)) continue;
        const devs = this.anycast6.get(a) ?? [];
        if (!devs.includes(l.device)) devs.push(l.device);
        this.anycast6.set(a, devs);
      }
    }
    this.locals6WithLoopback.push({ family: 'ipv6', addr: V6_LOOPBACK, prefixLen: 128, device: 'lo' });
    for (const l of this.locals) {
      if (l.family === 'ipv6') {
        this.locals6WithLoopback.push(l);
        continue;
      }
      const mask = prefixMask('ipv4', l.prefixLen);
      const secondary = this.primaries4.some((p) => p.device === l.device && p.prefixLen === l.prefixLen && ((p.addr ^ l.addr) & mask) === 0n);
      if (!secondary) this.primaries4.push(l);
    }
    const ordered = [...this.routes].sort((a, b) => b.len - a.len || a.metric - b.metric || a.order - b.order);
    for (const r of ordered) {
      const own = this.locals.find((l) => l.family === r.family && l.device === r.device && ((l.addr ^ r.addr) & r.mask) === 0n && l.prefixLen === r.len);
      let fixed: RouteResult | undefined;
      if (r.via !== undefined) {
        const src = this.selectSource(r.family, r.device, r.via);
        fixed = src === undefined ? { device: r.device, nexthop: r.via, prefixLen: r.len } : { device: r.device, nexthop: r.via, prefsrc: src, prefixLen: r.len };
      } else if (own) {
        fixed = { device: r.device, prefsrc: own.addr, prefixLen: r.len };
      } else if (r.family === 'ipv4' && !this.locals.some((l) => l.family === r.family && l.device === r.device)) {
        // A device without an address of its own: the source comes from another device.
        const src = this.selectSource4(r.device, r.addr);
        fixed = src === undefined ? { device: r.device, prefixLen: r.len } : { device: r.device, prefsrc: src, prefixLen: r.len };
      }
      const sorted: SortedRoute = {
        ...r,
        net4: r.family === 'ipv4' ? Number(r.addr) : 0,
        mask4: r.family === 'ipv4' ? Number(r.mask) : 0,
        ...(fixed ? { fixed, fixedInput: { kind: 'forward', route: fixed } } : {}),
      };
      (r.family === 'ipv4' ? this.sorted4 : this.sorted6).push(sorted);
    }
  }

  get hasModel(): boolean {
    return this.model !== undefined;
  }

  /** Resolves a logical interface name or a device name to the device; undefined if unknown. */
  device(nameOrDevice: string): string | undefined {
    if (nameOrDevice === 'lo') return 'lo';
    return this.byName.get(nameOrDevice);
  }

  interfaceOf(device: string): Interface | undefined {
    return this.model?.interfaces.find((i) => i.device === device);
  }

  isLocal(family: Family, addr: bigint): boolean {
    if (family === 'ipv4') return addr >> 24n === V4_LOOPBACK_NET >> 24n || this.localSet.has(addr);
    if (addr === V6_LOOPBACK) return true;
    return this.locals.some((l) => l.family === family && l.addr === addr);
  }

  /**
   * Whether `addr` is a subnet-router anycast address this host joined (on `device`, when
   * given): IPv6 with forwarding on, an address that is not one of its own. A link-local one
   * (of a declared fe80::/10 prefix) counts only with its device: the kernel's lookups for
   * link-local destinations are bound to a device, and without one nfproof leaves it out.
   */
  isAnycast(family: Family, addr: bigint, device?: string): boolean {
    if (family !== 'ipv6') return false;
    const devs = this.anycast6.get(addr);
    if (devs === undefined) return false;
    return device === undefined ? !isV6LinkLocal(addr) : devs.includes(device);
  }

  /** The joined subnet-router anycast addresses, each with the devices that joined it. */
  anycastAddresses(): ReadonlyMap<bigint, readonly string[]> {
    return this.anycast6;
  }

  isBroadcast(family: Family, addr: bigint): boolean {
    return family === 'ipv4' && (addr === V4_BROADCAST || this.broadcasts.has(addr));
  }

  /** Link-layer cast of a destination: 0 unicast, 1 broadcast, 2 multicast (IPv4 as a number). */
  castOf4(d4: number): 0 | 1 | 2 {
    if (d4 === 0xffffffff || this.broadcasts4.has(d4)) return 1;
    return d4 >>> 28 === 0xe ? 2 : 0;
  }

  isMulticast(family: Family, addr: bigint): boolean {
    return family === 'ipv4' ? isV4Multicast(addr) : isV6Multicast(addr);
  }

  /**
   * Longest-prefix route lookup in the main table. Routes are kept sorted by preference
   * (longest prefix, lowest metric, first declared), so the first that contains the
   * destination wins; IPv4 compares 32-bit numbers, IPv6 bigints. With `onDevice`, only
   * routes by that device count (a lookup bound to an interface).
   */
  lookup(family: Family, dst: bigint, onDevice?: string): RouteResult | undefined {
    if (family === 'ipv4') {
      const d = Number(dst);
      for (const r of this.sorted4) {
        if ((d & r.mask4) >>> 0 === r.net4 && (onDevice === undefined || r.device === onDevice)) return this.result(r, dst);
      }
      return undefined;
    }
    for (const r of this.sorted6) {
      if ((dst & r.mask) === r.addr && (onDevice === undefined || r.device === onDevice)) return this.result(r, dst);
    }
    // IPv6 link-local destinations are reachable on-link; without an interface hint we cannot
    // know which link, so they are unroutable here (as with `ip route get fe80::1`).
    return undefined;
  }

  private result(r: SortedRoute, dst: bigint): RouteResult {
    if (r.fixed) return r.fixed;
    const prefsrc = this.selectSource(r.family, r.device, dst, dst);
    return prefsrc === undefined ? { device: r.device, prefixLen: r.len } : { device: r.device, prefsrc, prefixLen: r.len };
  }

  /** The input routing decision for a forwarded destination (no allocation for fixed routes). */
  private forwardTo(family: Family, dst: bigint): InputRoute {
    if (family === 'ipv4') {
      const d = Number(dst);
      for (const r of this.sorted4) {
        if ((d & r.mask4) >>> 0 === r.net4) return r.fixedInput ?? { kind: 'forward', route: this.result(r, dst) };
      }
      return UNREACHABLE;
    }
    const route = this.lookup(family, dst);
    return route ? { kind: 'forward', route } : UNREACHABLE;
  }

  /**
   * The routing decision for a packet arriving on `device` (ip_route_input): local delivery,
   * forward, unreachable, or a martian the kernel drops before any forwarding.
   */
  routeInput(family: Family, device: string, src: bigint, dst: bigint): InputRoute {
    if (family === 'ipv4') {
      const s4 = Number(src);
      const d4 = Number(dst);
      const sTop = s4 >>> 24;
      const dTop = d4 >>> 24;
      // ip_route_input_slow's checks before the fib lookup, in its order. Since Linux 5.3
      // ipv4_is_zeronet() means 0.0.0.0 only: the rest of 0.0.0.0/8 is ordinary unicast.
      if (sTop >>> 4 === 0xe || s4 === 0xffffffff) return MARTIAN_SRC;
      if (d4 === 0xffffffff || (s4 === 0 && d4 === 0)) return LOCAL_BROADCAST;
      if (dTop >>> 4 === 0xe) return this.multicastInput(family, device, dst);
      if (s4 === 0) return MARTIAN_SRC;
      if (d4 === 0) return { kind: 'martian', reason: 'martian destination' };
      if (device !== 'lo' && dTop === 0x7f) return { kind: 'martian', reason: 'martian destination (loopback address on the wire)' };
      if (device !== 'lo' && sTop === 0x7f) return { kind: 'martian', reason: 'martian source (loopback address on the wire)' };
      if (this.broadcasts4.has(d4)) return LOCAL_BROADCAST;
      if (device !== 'lo' && this.local4.has(s4)) return { kind: 'martian', reason: 'martian source (one of our own addresses)' };
      if (dTop === 0x7f || this.local4.has(d4)) return LOCAL_UNICAST;
    } else {
      if (isV6Multicast(src)) return MARTIAN_SRC;
      if (device !== 'lo' && src === V6_LOOPBACK) return { kind: 'martian', reason: 'loopback address on the wire' };
      if (isV6Multicast(dst)) return this.multicastInput(family, device, dst);
      // Loopback and link-local destinations (from outside, only DNAT makes ::1: ip6_rcv_core
      // dropped it before PREROUTING) are looked up bound to the incoming interface
      // (rt6_need_strict: the route's device must be it), so ::1, which lives on lo, is not
      // local here; a route by the incoming device forwards the packet back out of it, else the
      // sender gets "no route". IPv4 drops a loopback destination as a martian instead.
      if (device !== 'lo' && (dst === V6_LOOPBACK || isV6LinkLocal(dst))) {
        // The incoming interface's own link-local address is local: its local route is bound to
        // that device (kernel case in test/analyze/kernel-cases.test.ts); so is the anycast
        // address of its link-local prefix.
        if (this.locals.some((l) => l.family === 'ipv6' && l.addr === dst && l.device === device)) return LOCAL_UNICAST;
        if (this.isAnycast('ipv6', dst, device)) return LOCAL_UNICAST;
        const route = this.lookup(family, dst, device);
        return route ? { kind: 'forward', route } : UNREACHABLE;
      }
      // Subnet-router anycast: the local table's `anycast` route hands it to ip6_input, from
      // any interface (checked on the kernel: test/kernel/routing.test.ts).
      if (this.isLocal(family, dst) || this.isAnycast(family, dst)) return LOCAL_UNICAST;
    }
    return this.forwardTo(family, dst);
  }

  /**
   * ip6_rcv_core's address checks, made before PREROUTING: a loopback source or destination
   * from outside, an interface-local (scope 1) multicast destination from outside, a
   * multicast destination of reserved scope 0, a multicast source (RFC 4291 2.5.3, 2.7).
   */
  ipv6HeaderDrop(device: string, src: bigint, dst: bigint): string | undefined {
    const outside = device !== 'lo';
    if (outside && (src === V6_LOOPBACK || dst === V6_LOOPBACK)) return 'loopback address on the wire';
    if (isV6Multicast(dst)) {
      const scope = Number((dst >> 112n) & 0xfn);
      if (outside && scope === 1) return 'interface-local multicast from the wire';
      if (scope === 0) return 'multicast of reserved scope 0';
    }
    if (isV6Multicast(src)) return 'multicast source';
    return undefined;
  }

  /**
   * ip6_finish_output2: a group of scope 0 (reserved) or 1 (interface-local) may leave by lo
   * only; out of any other device the packet is discarded, after POSTROUTING and conntrack's
   * confirmation (checked on the kernel: test/kernel/routing.test.ts).
   */
  ipv6OutputScopeDrop(device: string, dst: bigint): string | undefined {
    if (device === 'lo' || !isV6Multicast(dst) || Number((dst >> 112n) & 0xfn) > 1) return undefined;
    return 'invalid scope: a group of scope 0 or 1 leaves by no device but lo';
  }

  /**
   * A multicast destination is delivered only when the incoming interface has joined the
   * group (ip_check_mc_rcu in ip_route_input_rcu; ipv6_chk_mcast_addr in ip6_mc_input), and
   * never forwarded (no multicast routing). Without a host model nfproof cannot know the
   * groups and delivers.
   */
  private multicastInput(family: Family, device: string, group: bigint): InputRoute {
    if (!this.hasModel || this.joinedGroup(family, device, group)) return LOCAL_MULTICAST;
    return { kind: 'martian', reason: 'multicast to a group the interface has not joined' };
  }

  /**
   * The groups the kernel joins by itself on an interface that is up: IPv4 224.0.0.1
   * (ip_mc_up); IPv6 the all-nodes groups ff01::1 and ff02::1 (ipv6_add_dev), with forwarding
   * on the all-routers groups ff01::2, ff02::2 and ff05::2, and the solicited-node group
   * ff02::1:ffXX:XXXX of every address of the interface (addrconf_join_solict), including
   * the subnet-router anycast address a router adds for each of its prefixes.
   */
  joinedGroup(family: Family, device: string, group: bigint): boolean {
    if (family === 'ipv4') return group === 0xe0000001n;
    const ALL_NODES = [0xff010000000000000000000000000001n, 0xff020000000000000000000000000001n];
    const ALL_ROUTERS = [0xff010000000000000000000000000002n, 0xff020000000000000000000000000002n, 0xff050000000000000000000000000002n];
    if (ALL_NODES.includes(group)) return true;
    if (this.forwarding && ALL_ROUTERS.includes(group)) return true;
    const SOLICITED = 0xff0200000000000000000001ff000000n;
    if (group >> 24n !== SOLICITED >> 24n) return false;
    const low = group & 0xffffffn;
    for (const l of this.locals) {
      if (l.family !== 'ipv6' || l.device !== device) continue;
      if ((l.addr & 0xffffffn) === low) return true;
      if (this.forwarding && l.prefixLen < 127 && (l.addr & prefixMask('ipv6', l.prefixLen) & 0xffffffn) === low) return true;
    }
    return false;
  }

  /**
   * Output routing for a locally generated packet (ip_route_output): local destinations go
   * over `lo`, others take the main table.
   */
  routeOutput(family: Family, dst: bigint): RouteResult | undefined {
    // No IPv4 destination means this host (ip_route_output_key_hash_rcu): a local route on lo,
    // with 127.0.0.1 for a source when there is none. The header keeps 0.0.0.0 (checked on the
    // kernel: test/kernel/local-output.test.ts).
    if (family === 'ipv4' && dst === 0n) return { device: 'lo', prefsrc: V4_LOCALHOST };
    if (this.isLocal(family, dst)) {
      return { device: 'lo', prefsrc: dst };
    }
    // The anycast route's device is lo too (ip6_rt_get_dev_rcu); the source is chosen as for
    // any destination, since an anycast address is no source (ipv6_dev_get_saddr skips it).
    if (this.isAnycast(family, dst)) {
      const prefsrc = this.selectSource6('lo', dst);
      return prefsrc === undefined ? { device: 'lo' } : { device: 'lo', prefsrc };
    }
    if (family === 'ipv6' && isV6Multicast(dst)) return this.multicastOutput6();
    if (this.isBroadcast(family, dst)) {
      const dev = this.locals.find((l) => l.family === family && this.broadcasts.has(dst) && ((l.addr ^ dst) & prefixMask(family, l.prefixLen)) === 0n);
      if (dev) return { device: dev.device, prefsrc: dev.addr };
    }
    return this.lookup(family, dst);
  }

  /**
   * A group address from a socket bound to no device: every interface that is up has the
   * multicast route ff00::/8, and the first one installed wins — the interface that came up
   * first, taken here as the first the host model declares (the kernel harness creates them in
   * that order). Picking a source there (ipv6_dev_get_saddr looks only at that device's
   * addresses for a group) fails without an IPv6 address on it, and the socket gets
   * EADDRNOTAVAIL: no route. Checked on the kernel (test/kernel/routing.test.ts).
   */
  private multicastOutput6(): RouteResult | undefined {
    const first = this.model?.interfaces[0];
    if (!first || !first.addresses.some((a) => a.family === 'ipv6')) return undefined;
    return { device: first.device, prefixLen: 8 };
  }

  /**
   * Output routing again after OUTPUT rewrote the destination of a locally generated packet
   * (ip_route_me_harder, ip6_route_me_harder), which routes with the packet's own source.
   * - IPv4, a multicast or limited broadcast destination: with a source that is ours or
   *   unicast, and no bound device, the packet leaves by the device that owns the source
   *   address (ip_route_output_key_hash_rcu); a source we do not have is "unreachable".
   * - IPv6, a multicast or link-local destination: the lookup is bound to the device the
   *   packet was routed to so far. Every interface that is up has the multicast route
   *   ff00::/8 (addrconf_add_mroute; lo has none), so multicast stays on that device.
   * - Otherwise as routeOutput.
   * Not modelled: the copy of a multicast (or broadcast) the sender's own host receives too
   * when it has joined the group.
   */
  rerouteOutput(family: Family, src: bigint, dst: bigint, device: string): RouteResult | undefined {
    if (family === 'ipv4') {
      const d = Number(dst);
      if (d !== 0xffffffff && d >>> 28 !== 0xe) return this.routeOutput(family, dst);
      const s = Number(src);
      // A broadcast, multicast or zero source is not kept: plain routing by destination.
      if (s === 0 || s === 0xffffffff || s >>> 28 === 0xe || this.broadcasts4.has(s)) return this.routeOutput(family, dst);
      const owner = s === 0x7f000001 ? 'lo' : this.locals.find((l) => l.family === 'ipv4' && l.addr === src)?.device;
      return owner ? { device: owner, prefsrc: src } : undefined;
    }
    if (isV6Multicast(dst)) return device === 'lo' ? undefined : { device, prefixLen: 8 };
    if (isV6LinkLocal(dst)) return this.lookup(family, dst, device);
    return this.routeOutput(family, dst);
  }

  /**
   * The source address the kernel picks for packets leaving by `device` toward `nexthop`
   * (MASQUERADE takes it, and so do routes without a preferred source).
   * IPv4, inet_select_addr with universe scope: on the device, the first primary address
   * whose subnet holds the next hop, else its first primary address; a device without one
   * (lo has only 127.0.0.1, of host scope) lends the first primary address of the host's
   * devices in order (lo first, then the interfaces as declared).
   * IPv6, ipv6_dev_get_saddr (RFC 6724, the rules that apply here): the destination itself if
   * it is ours; an address of sufficient scope, the smallest such; one of the outgoing
   * device; the longest prefix shared with the destination. Link-local and multicast
   * destinations choose among the device's addresses only.
   */
  selectSource(family: Family, device: string, nexthop: bigint, dst: bigint = nexthop): bigint | undefined {
    return family === 'ipv4' ? this.selectSource4(device, nexthop) : this.selectSource6(device, dst);
  }

  private selectSource4(device: string, nexthop: bigint): bigint | undefined {
    // inet_select_addr looks for an address of universe scope: 127/8 is host-scoped (iproute2
    // gives a loopback address that scope), so a declared one on lo is never picked.
    const universe = this.primaries4.filter((l) => l.addr >> 24n !== 0x7fn);
    const mine = universe.filter((l) => l.device === device);
    if (mine.length > 0) {
      const onLink = mine.find((l) => ((l.addr ^ nexthop) & prefixMask('ipv4', l.prefixLen)) === 0n);
      return (onLink ?? mine[0]).addr;
    }
    return universe[0]?.addr;
  }

  private selectSource6(device: string, dst: bigint): bigint | undefined {
    if (this.isLocal('ipv6', dst)) return dst;
    const dScope = v6Scope(dst);
    const deviceOnly = isV6Multicast(dst) || dScope <= V6_SCOPE_LINK;
    let best: { addr: bigint; key: readonly number[] } | undefined;
    for (const l of this.locals6WithLoopback) {
      if (deviceOnly && l.device !== device) continue;
      const scope = v6Scope(l.addr);
      const key = [scope >= dScope ? 1000 - scope : scope - 1000, l.device === device ? 1 : 0, commonPrefix(l.addr, dst)];
      if (!best || isBetter(key, best.key)) best = { addr: l.addr, key };
    }
    return best?.addr;
  }

  /** Whether `addr` is in the subnet of an address configured on `device`. */  /** Whether `addr` is in the subnet of an address configured on `device`. */
  onLink(family: Family, device: string, addr: bigint): boolean {
    return this.locals.some((l) => l.family === family && l.device === device && ((l.addr ^ addr) & prefixMask(family, l.prefixLen)) === 0n);
  }

  /** inet_addr_onlink: both addresses in the subnet of one address of `device`. */
  sameLink(family: Family, device: string, a: bigint, b: bigint): boolean {
    return this.locals.some((l) => {
      if (l.family !== family || l.device !== device) return false;
      const m = prefixMask(family, l.prefixLen);
      return ((l.addr ^ a) & m) === 0n && ((l.addr ^ b) & m) === 0n;
    });
  }

  /** Primary (first declared) address of a family on a device: REDIRECT's target. */
  primaryAddress(family: Family, device: string, forDst?: bigint): bigint | undefined {
    // lo holds 127.0.0.1 and ::1 from the start (addresses added later come after them), so
    // REDIRECT of a packet that came in by lo goes there (nf_nat_redirect_ipv4/ipv6).
    if (device === 'lo') return family === 'ipv4' ? 0x7f000001n : 1n;
    const mine = this.locals.filter((l) => l.family === family && l.device === device);
    if (family === 'ipv6' && forDst !== undefined) {
      // An address of the destination's scope class (link-local or not), else the first.
      const sameScope = mine.find((l) => isV6LinkLocal(l.addr) === isV6LinkLocal(forDst));
      return (sameScope ?? mine[0])?.addr;
    }
    return mine[0]?.addr;
  }

  /** Route type of an address as xt_addrtype sees it (inet_addr_type / the IPv6 lookup). */
  addrType(family: Family, addr: bigint): number {
    if (family === 'ipv4') {
      // __inet_dev_addr_type: 0.0.0.0 (ipv4_is_zeronet, since 5.3 only that address) and
      // 255.255.255.255 are BROADCAST; otherwise a found route decides, and no route is UNICAST.
      if (addr === 0n || addr === V4_BROADCAST) return RTN.BROADCAST;
      if (isV4Multicast(addr)) return RTN.MULTICAST;
      if (this.isLocal(family, addr)) return RTN.LOCAL;
      if (this.broadcasts.has(addr)) return RTN.BROADCAST;
      return RTN.UNICAST;
    }
    if (isV6Multicast(addr)) return RTN.MULTICAST;
    if (this.isLocal(family, addr)) return RTN.LOCAL;
    if (this.isAnycast(family, addr)) return RTN.ANYCAST;
    return this.lookup(family, addr) ? RTN.UNICAST : RTN.UNREACHABLE;
  }

  /**
   * The srctype/dsttype field as the addrtype kind defines it. IPv4: 1 << inet_addr_type().
   * IPv6 (xt_addrtype.c match_type6): the address class bits (__ipv6_addr_type: unicast,
   * multicast, unspecified) plus the bits of the route lookup — UNREACHABLE when there is no
   * route, LOCAL for our own addresses, ANYCAST for the subnet-router anycast address of a
   * connected prefix (ipv6_anycast_destination: the prefix's own address, prefix < /127) and
   * for a joined one (the local table's route is RTF_ANYCAST, found before any longer route
   * of the main table; never LOCAL: checked on the kernel, test/kernel/routing.test.ts).
   * An unrouted global address is therefore UNICAST and UNREACHABLE at once.
   */
  addrTypeField(family: Family, addr: bigint): number {
    if (family === 'ipv4') return 1 << this.addrType(family, addr);
    const cls = ipv6AddrClassBits(addr);
    // Multicast destinations have the per-device ff00::/8 routes of the local table.
    if (isV6Multicast(addr)) return cls;
    if (this.isLocal(family, addr)) return cls | (1 << RTN.LOCAL);
    if (this.isAnycast(family, addr)) return cls | (1 << RTN.ANYCAST);
    const route = this.routeEntry6(addr);
    if (!route) return cls | (1 << RTN.UNREACHABLE);
    if (route.via === undefined && route.len < 127 && route.addr === addr) return cls | (1 << RTN.ANYCAST);
    return cls;
  }

  private routeEntry6(dst: bigint): SortedRoute | undefined {
    for (const r of this.sorted6) if ((dst & r.mask) === r.addr) return r;
    return undefined;
  }

  describe(family: Family, addr: bigint): string {
    return formatAddress(family, addr);
  }

  static bits(family: Family): number {
    return familyBits(family);
  }
}
