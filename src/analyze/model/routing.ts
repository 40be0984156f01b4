import type { HostModel } from '../../ir/policy.js';
import { Host, routeMetric } from '../../netfilter/host.js';
import { type IntervalSet, contains, intersect, normalize, subtract, union } from '../../util/intervals.js';
import { type Family, familyMax, prefixMask, prefixToInterval } from '../../util/ip.js';

/**
 * The host's routing as data, for one family: which destinations are local, which route each
 * other destination takes, and which source address the host would use. The same rules as the
 * simulator's Host (src/netfilter/host.ts) — connected routes from interface prefixes, declared
 * routes on top, longest prefix then lowest metric then first declared — but laid out as
 * disjoint address regions so that the box pre-pass and the Z3 encoding can use them as sets.
 *
 * Without a host model nothing is known: any destination may be local or routed out of any
 * interface. Only the host-independent martian rules still apply (the kernel drops those
 * before any routing table is consulted).
 */
export interface RouteRegion {
  /** Destinations that take this route (disjoint from every other region and from local). */
  readonly region: IntervalSet;
  readonly device: string;
  readonly via?: bigint;
  /**
   * Source address for packets leaving by this route (MASQUERADE, locally generated packets),
   * per part of the region: the on-link address whose subnet holds the next hop, else the
   * device's first address.
   */
  readonly sources: readonly { readonly region: IntervalSet; readonly addr: bigint | undefined }[];
}

export interface LocalAddress {
  readonly addr: bigint;
  readonly prefixLen: number;
  readonly device: string;
}

const V4 = {
  loopback: [[0x7f000000n, 0x7fffffffn]] as IntervalSet,
  /** ipv4_is_zeronet(): since Linux 5.3 only 0.0.0.0 (the rest of 0/8 is ordinary unicast). */
  zeroNet: [[0n, 0n]] as IntervalSet,
  multicast: [[0xe0000000n, 0xefffffffn]] as IntervalSet,
  limitedBroadcast: 0xffffffffn,
};
const V6 = {
  loopback: [[1n, 1n]] as IntervalSet,
  multicast: [[0xffn << 120n, familyMax('ipv6')]] as IntervalSet,
  linkLocal: [[0xfe80n << 112n, (0xfe80n << 112n) | ((1n << 118n) - 1n)]] as IntervalSet,
  linkLocal64: [[0xfe80n << 112n, (0xfe80n << 112n) | ((1n << 64n) - 1n)]] as IntervalSet,
};

/**
 * IPv6 groups of scope 0 (reserved) or 1 (interface-local), whatever their flags: ffX0::/16
 * and ffX1::/16. A local packet to one leaving by a device other than lo passes POSTROUTING
 * and is then discarded (Host.ipv6OutputScopeDrop).
 */
export const V6_GROUPS_SCOPE_0_1: IntervalSet = Array.from({ length: 16 }, (_, flags) => {
  const lo = (0xff00n | (BigInt(flags) << 4n)) << 112n;
  return [lo, lo + (2n << 112n) - 1n] as const;
});

export class RoutingView {
  readonly hasHost: boolean;
  /** Every device packets can come in on or leave by (host devices and lo); empty without a host. */
  readonly devices: readonly string[];
  /** Unicast addresses of this host, including the loopback range. */
  readonly local: IntervalSet;
  /** Addresses configured on interfaces (not loopback), with their device. */
  readonly addresses: readonly LocalAddress[];
  /**
   * IPv6 subnet-router anycast addresses the (forwarding) host joined (Host.isAnycast):
   * delivered here and sent over lo like `local`, but never a source of this host's packets.
   * Link-local ones are left to strictOn: they count only for a packet from their own device.
   */
  readonly anycast: IntervalSet;
  /** Destinations this host takes for itself: its addresses, the loopback range and `anycast`. */
  readonly localDestinations: IntervalSet;
  /**
   * Destinations a locally generated packet goes to this host for, over lo (Host.routeOutput):
   * `localDestinations` (the loopback range without a host model) and, for IPv4, 0.0.0.0,
   * which ip_route_output takes as this host (the header keeps it).
   */
  readonly outputLocal: IntervalSet;
  /** IPv4 limited and subnet broadcasts (empty for IPv6). */
  readonly broadcast: IntervalSet;
  readonly multicast: IntervalSet;
  readonly loopback: IntervalSet;
  /** Disjoint regions in lookup order; destinations outside every region are unreachable. */
  readonly routes: readonly RouteRegion[];

  /** The simulator's own host model: the concrete interpreter asks it, so the two cannot differ. */
  readonly sim: Host;

  /** Route entries in lookup order (longest prefix, lowest metric, first declared). */
  private readonly entries: readonly { addr: bigint; len: number; device: string }[];

  /**
   * IPv6 with a host model: where each interface's own link-local address lies. The kernel
   * gives every interface with a hardware address (not lo) one in fe80::/64 — from its MAC
   * (EUI-64) or made up (stable-privacy) — which the host model does not know. Only that one
   * address is local, not the whole /64; so the analyzer lets the packet's destination be the
   * ingress interface's own link-local address or not (a choice: see ownLinkLocalPossible).
   */
  readonly linkLocalGuess: IntervalSet;

  constructor(
    readonly family: Family,
    private readonly host: HostModel | undefined,
  ) {
    this.sim = new Host(host);
    this.linkLocalGuess = family === 'ipv6' && host ? V6.linkLocal64 : [];
    this.hasHost = host !== undefined;
    const max = familyMax(family);
    this.loopback = family === 'ipv4' ? V4.loopback : V6.loopback;
    this.multicast = family === 'ipv4' ? V4.multicast : V6.multicast;
    const addresses: LocalAddress[] = [];
    const devices = new Set<string>();
    if (host) devices.add('lo');
    const entries: { addr: bigint; len: number; via?: bigint; device: string; metric: number; order: number }[] = [];
    let order = 0;
    const bcast: [bigint, bigint][] = family === 'ipv4' ? [[V4.limitedBroadcast, V4.limitedBroadcast]] : [];
    for (const itf of host?.interfaces ?? []) {
      devices.add(itf.device);
      for (const a of itf.addresses) {
        // Connected routes are numbered with the declared ones so ties break the way the
        // simulator's Host does (interfaces first, in declaration order).
        const o = order++;
        if (a.family !== family) continue;
        addresses.push({ addr: a.addr, prefixLen: a.prefixLen, device: itf.device });
        const mask = prefixMask(family, a.prefixLen);
        entries.push({ addr: a.addr & mask, len: a.prefixLen, device: itf.device, metric: family === 'ipv4' ? 0 : 256, order: o });
        if (family === 'ipv4' && a.prefixLen < 31) {
          const b = (a.addr & mask) | (~mask & V4.limitedBroadcast);
          bcast.push([b, b]);
        }
      }
    }
    for (const r of host?.routes ?? []) {
      const o = order++;
      if (r.family !== family) continue;
      devices.add(r.device);
      entries.push({
        addr: r.dest.addr,
        len: r.dest.len,
        ...(r.via !== undefined ? { via: r.via } : {}),
        device: r.device,
        // As the simulator's Host: IPv6 turns metric 0 into 1024 (ip6_route_info_create).
        metric: routeMetric(family, r.metric),
        order: o,
      });
    }
    this.addresses = addresses;
    this.devices = [...devices];
    this.local = host ? union(this.loopback, normalize(addresses.map((a) => [a.addr, a.addr] as const))) : [];
    this.anycast = family === 'ipv6' ? normalize([...this.sim.anycastAddresses().keys()].filter((a) => this.sim.isAnycast(family, a)).map((a) => [a, a] as const)) : [];
    this.localDestinations = union(this.local, this.anycast);
    this.outputLocal = union(host ? this.localDestinations : this.loopback, family === 'ipv4' ? [[0n, 0n]] : []);
    this.broadcast = normalize(bcast);
    entries.sort((a, b) => b.len - a.len || a.metric - b.metric || a.order - b.order);
    this.entries = entries;
    let covered: IntervalSet = [];
    const routes: RouteRegion[] = [];
    for (const e of entries) {
      const iv = prefixToInterval({ family, addr: e.addr, len: e.len });
      const region = subtract([iv], covered, max);
      covered = union(covered, [iv]);
      if (region.length === 0) continue;
      routes.push({ region, device: e.device, ...(e.via !== undefined ? { via: e.via } : {}), sources: this.sourcesFor(region, e.device, e.via) });
    }
    this.routes = routes;
  }

  /** The source-address choice of Host.selectSource, split over a route's region. */
  private sourcesFor(region: IntervalSet, device: string, via: bigint | undefined): RouteRegion['sources'] {
    const mine = this.addresses.filter((a) => a.device === device);
    if (device === 'lo') return [{ region, addr: this.family === 'ipv4' ? 0x7f000001n : 1n }];
    if (mine.length === 0) return [{ region, addr: undefined }];
    const max = familyMax(this.family);
    if (this.family === 'ipv4') {
      if (via !== undefined) {
        const onLink = mine.find((l) => ((l.addr ^ via) & prefixMask('ipv4', l.prefixLen)) === 0n);
        return [{ region, addr: (onLink ?? mine[0]).addr }];
      }
      // The next hop is the destination itself: the first address whose subnet holds it.
      const out: { region: IntervalSet; addr: bigint }[] = [];
      let rest = region;
      for (const l of mine) {
        const part = intersect(rest, [prefixToInterval({ family: 'ipv4', addr: l.addr & prefixMask('ipv4', l.prefixLen), len: l.prefixLen })]);
        if (part.length) out.push({ region: part, addr: l.addr });
        rest = subtract(rest, part, max);
      }
      if (rest.length) out.push({ region: rest, addr: mine[0].addr });
      return out;
    }
    // IPv6: an address of the destination's scope (link-local or not), else the first.
    const ll = mine.find((l) => contains(V6.linkLocal, l.addr));
    const global = mine.find((l) => !contains(V6.linkLocal, l.addr));
    const llPart = intersect(region, V6.linkLocal);
    const otherPart = subtract(region, V6.linkLocal, max);
    const out: { region: IntervalSet; addr: bigint }[] = [];
    if (llPart.length) out.push({ region: llPart, addr: (ll ?? mine[0]).addr });
    if (otherPart.length) out.push({ region: otherPart, addr: (global ?? mine[0]).addr });
    return out;
  }

  /** Route lookup for a concrete destination (main table). */
  lookup(dst: bigint): RouteRegion | undefined {
    return this.routes.find((r) => contains(r.region, dst));
  }

  sourceFor(route: RouteRegion, dst: bigint): bigint | undefined {
    return route.sources.find((s) => contains(s.region, dst))?.addr;
  }

  /**
   * The source the kernel picks for an IPv6 packet this host sends itself over lo (MASQUERADE
   * there): the destination, one of its own addresses (ipv6_dev_get_saddr rule 1) — except a
   * subnet-router anycast address, which is no address to send from (Host.selectSource).
   * Returns the anycast addresses with their sources; every other destination is its own.
   */
  loopbackSources6(): readonly { readonly dst: bigint; readonly src: bigint | undefined }[] {
    return this.anycast.flatMap(([lo, hi]) => {
      const out: { dst: bigint; src: bigint | undefined }[] = [];
      for (let a = lo; a <= hi; a++) out.push({ dst: a, src: this.sim.selectSource('ipv6', 'lo', a) });
      return out;
    });
  }

  /** First address of the family on a device (REDIRECT's target in PREROUTING). */
  primaryAddress(device: string): bigint | undefined {
    if (device === 'lo') return this.family === 'ipv4' ? 0x7f000001n : 1n;
    return this.addresses.find((a) => a.device === device)?.addr;
  }

  /**
   * REDIRECT's target in PREROUTING for a packet that came in by `device`. `ownLinkLocal` is
   * the device's own (undeclared) link-local address when the packet is addressed to it (the
   * `ownll` choice): nf_nat_redirect_ipv6 (since 6.7) takes only an address of the
   * destination's scope, so a declared link-local address of the device, else that one — as
   * the simulator does on the replay host, which has it as a /128 after the declared ones.
   */
  redirectAddress(device: string, ownLinkLocal?: bigint): bigint | undefined {
    if (ownLinkLocal === undefined || device === 'lo') return this.primaryAddress(device);
    return this.declaredLinkLocal(device) ?? ownLinkLocal;
  }

  /** The first link-local (fe80::/10) address the host model declares on `device`. */
  declaredLinkLocal(device: string): bigint | undefined {
    return this.addresses.find((a) => a.device === device && a.addr >> 118n === 0x3fan)?.addr;
  }

  isLocal(addr: bigint): boolean {
    return contains(this.local, addr);
  }

  /**
   * Destinations delivered locally when they arrive from a device: own addresses, broadcasts
   * and multicast. Martian checks come first (see inputDecision).
   */
  get localDelivery(): IntervalSet {
    return union(union(this.localDestinations, this.broadcast), this.multicast);
  }

  /**
   * IPv6 loopback and link-local destinations from a device are looked up bound to it
   * (rt6_need_strict, the simulator's Host.routeInput): the regions each of its own routes
   * wins there, and the addresses configured on it and the anycast addresses it joined (local
   * to such a packet).
   */
  strictOn(device: string): { readonly routes: readonly IntervalSet[]; readonly own: readonly bigint[] } {
    const max = familyMax(this.family);
    let covered: IntervalSet = [];
    const routes: IntervalSet[] = [];
    for (const e of this.entries) {
      if (e.device !== device) continue;
      const iv = prefixToInterval({ family: this.family, addr: e.addr, len: e.len });
      const region = subtract([iv], covered, max);
      covered = union(covered, [iv]);
      if (region.length) routes.push(region);
    }
    const anycast = [...this.sim.anycastAddresses()].filter(([, devs]) => devs.includes(device)).map(([a]) => a);
    return { routes, own: [...this.addresses.filter((a) => a.device === device).map((a) => a.addr), ...anycast] };
  }

  /** Where strict lookups apply: ::1 and fe80::/10 (IPv6 only). */
  get strictDestinations(): IntervalSet {
    return this.family === 'ipv6' ? union(V6.loopback, V6.linkLocal) : [];
  }

  /** Can `dst` be the own link-local address of `device` (a host device other than lo)? */
  ownLinkLocalPossible(device: string, dst: bigint): boolean {
    if (device === '' || device === 'lo' || !contains(this.linkLocalGuess, dst) || contains(this.localDestinations, dst)) return false;
    return this.host?.interfaces.some((i) => i.device === device) ?? false;
  }

  private readonly withLinkLocal = new Map<string, Host>();

  /** The simulator's Host of this host model with `addr` (fe80::/64) as `device`'s link-local address. */
  hostWithLinkLocal(device: string, addr: bigint): Host {
    const key = `${device}|${addr}`;
    let h = this.withLinkLocal.get(key);
    if (!h) {
      h = new Host(withLinkLocalAddress(this.host!, device, addr));
      if (this.withLinkLocal.size > 64) this.withLinkLocal.clear();
      this.withLinkLocal.set(key, h);
    }
    return h;
  }

  /**
   * The routing decision for a packet arriving on `device` (ip_route_input), as the simulator's
   * Host makes it. Without a host model a unicast destination's fate is not known: undefined.
   */
  inputDecision(
    device: string,
    src: bigint,
    dst: bigint,
    sim: Host = this.sim,
  ): { kind: 'local' } | { kind: 'forward'; route: RouteRegion } | { kind: 'unreachable' } | { kind: 'martian'; reason: string } | undefined {
    const d = sim.routeInput(this.family, device, src, dst);
    switch (d.kind) {
      case 'martian':
        return { kind: 'martian', reason: d.reason };
      case 'local':
        return { kind: 'local' };
      case 'unreachable':
        return this.hasHost ? { kind: 'unreachable' } : undefined;
      case 'forward': {
        const route = this.lookup(dst);
        return route && route.device === d.route.device ? { kind: 'forward', route } : { kind: 'forward', route: { region: [[dst, dst]], device: d.route.device, sources: [] } };
      }
    }
  }

  /**
   * Groups a device has joined (the simulator's Host.joinedGroup): a multicast packet for
   * another group is dropped on input when there is a host model.
   */
  joinedGroups(device: string): IntervalSet {
    const out: [bigint, bigint][] = [];
    if (this.family === 'ipv4') out.push([0xe0000001n, 0xe0000001n]);
    else {
      const cands = [0xff010000000000000000000000000001n, 0xff020000000000000000000000000001n, 0xff010000000000000000000000000002n, 0xff020000000000000000000000000002n, 0xff050000000000000000000000000002n];
      for (const a of this.addresses) {
        if (a.device !== device) continue;
        const low = a.addr & 0xffffffn;
        cands.push(0xff0200000000000000000001ff000000n | low);
        if (a.prefixLen < 127) cands.push(0xff0200000000000000000001ff000000n | (a.addr & prefixMask('ipv6', a.prefixLen) & 0xffffffn));
      }
      for (const c of cands) if (this.sim.joinedGroup(this.family, device, c)) out.push([c, c]);
    }
    return normalize(out);
  }

  /** Source addresses a packet from `device` may carry without being a martian (ignores the dst-dependent parts). */
  saneSources(device: string): IntervalSet {
    const max = familyMax(this.family);
    let bad: IntervalSet = this.family === 'ipv4' ? union(union(V4.multicast, [[V4.limitedBroadcast, V4.limitedBroadcast]]), V4.zeroNet) : V6.multicast;
    if (device !== 'lo') bad = union(bad, this.loopback);
    if (device !== 'lo' && this.hasHost) bad = union(bad, this.local);
    return subtract([[0n, max]], bad, max);
  }

  /** Destinations a packet from `device` may carry without being a martian. */
  saneDestinations(device: string): IntervalSet {
    const max = familyMax(this.family);
    let bad: IntervalSet = this.family === 'ipv4' ? V4.zeroNet : [];
    if (device !== 'lo') bad = union(bad, this.loopback);
    return subtract([[0n, max]], bad, max);
  }

  private steps?: [IntervalSet, number][];

  /**
   * The simulator's Host.addrTypeField as a step function of the address: (interval set,
   * field value) pairs covering the address space, constant between the boundaries of every
   * range the host tests (its addresses and their prefixes, routes, loopback, multicast,
   * broadcast, IPv4-mapped). The Z3 encoding and the diff walk both read address types here,
   * the field value whole (an IPv6 type is class bits and route bits at once).
   */
  addrTypeSteps(): [IntervalSet, number][] {
    if (this.steps) return this.steps;
    const fam = this.family;
    const max = familyMax(fam);
    const points = new Set<bigint>([0n, 1n, 2n]);
    const addSet = (set: IntervalSet) => {
      for (const [lo, hi] of set) {
        points.add(lo);
        if (hi < max) points.add(hi + 1n);
      }
    };
    addSet(this.local);
    addSet(this.loopback);
    addSet(this.outputLocal);
    addSet(this.multicast);
    addSet(this.broadcast);
    // A route's own first address can be the subnet-router anycast address: a step of its own.
    for (const x of this.routes) addSet([...x.region, ...x.region.map(([lo]) => [lo, lo] as const)]);
    for (const a of this.addresses) addSet([[a.addr, a.addr], [a.addr & prefixMask(fam, a.prefixLen), a.addr & prefixMask(fam, a.prefixLen)]]);
    if (fam === 'ipv4') addSet([[0xffffffffn, 0xffffffffn]]);
    else addSet([[0xffffn << 32n, (0xffffn << 32n) | 0xffffffffn]]);
    const starts = [...points].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const byValue = new Map<number, [bigint, bigint][]>();
    starts.forEach((lo, i) => {
      const hi = i + 1 < starts.length ? starts[i + 1] - 1n : max;
      const v = this.sim.addrTypeField(fam, lo);
      const list = byValue.get(v) ?? [];
      list.push([lo, hi]);
      byValue.set(v, list);
    });
    this.steps = [...byValue].map(([v, list]) => [normalize(list), v]);
    return this.steps;
  }
}

/**
 * A host model with `addr` as one more address of `device` (its link-local address). It is
 * added as a /128 so that routing stays as the host model has it: only the address is new.
 */
export function withLinkLocalAddress(host: HostModel, device: string, addr: bigint): HostModel {
  return {
    ...host,
    interfaces: host.interfaces.map((i) => (i.device === device ? { ...i, addresses: [...i.addresses, { family: 'ipv6' as const, addr, prefixLen: 128 }] } : i)),
  };
}
