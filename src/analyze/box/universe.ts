import { CT_STATE } from '../../ir/fields.js';
import { type Hook, TABLE_PRIORITY, type TableName } from '../../ir/netfilter.js';
import { type IntervalSet, intersect, normalize, subtract, union } from '../../util/intervals.js';
import { familyMax } from '../../util/ip.js';
import type { FamilyModel } from '../model/build.js';
import { FIELD_SLOT, IIF_SLOT, OIF_SLOT, absentValue, fieldMax } from '../model/fields.js';
import type { Box, BoxDomain } from './box.js';

/**
 * Over-approximations of the packets that can be at a built-in chain: what the hook implies
 * about interfaces, addresses (routing), TTL, marks, conntrack state and which fields exist.
 * Upstream drops are ignored (the set only needs to contain every packet that gets there).
 */
export function universe(model: FamilyModel, dom: BoxDomain, hook: Hook, table: TableName): Box[] {
  const { ifaces, routing, features } = model;
  const fam = model.family;
  const single = (v: bigint): IntervalSet => [[v, v]];
  const absent = (f: 'macsrc' | 'uid' | 'gid'): IntervalSet => single(absentValue(f, fam));
  const presentOnly = (f: 'macsrc' | 'uid' | 'gid'): IntervalSet => [[0n, fieldMax(f, fam)]];
  const firstTable = table === 'raw' || (model.stages[hook][0]?.table === table && (hook === 'PREROUTING' || hook === 'OUTPUT'));

  let base: Box = dom.full();
  const set = (slot: number, s: IntervalSet) => (base = dom.with(base, slot, s));

  // Conntrack has not run in raw: no connection, state INVALID — unless a NOTRACK or CT target
  // earlier in raw attached one, which the rest of raw sees at once (UNTRACKED, or a template
  // reading as NEW: interp.ts sideEffect), or the packet is an answer of this host's.
  if (table === 'raw') {
    const attached = model.rules.filter((r) => r.table === 'raw' && r.effect.type === 'continue').flatMap((r) => (r.effect.type === 'continue' ? r.effect.actions : []));
    // In OUTPUT, the host's own answers (ICMP errors, REJECT's TCP resets) come with the
    // connection of the packet they answer: RELATED (ct-validity.ts canBeAnswer).
    const states = [
      CT_STATE.INVALID,
      ...(attached.some((a) => a.type === 'notrack') ? [CT_STATE.UNTRACKED] : []),
      ...(attached.some((a) => a.type === 'ct-template') ? [CT_STATE.NEW] : []),
      ...(hook === 'OUTPUT' ? [CT_STATE.RELATED] : []),
    ];
    set(FIELD_SLOT.ctstate, normalize(states.map((s) => [BigInt(s), BigInt(s)] as const)));
  }
  else {
    // UNTRACKED: NOTRACK in raw, or ICMPv6 neighbour discovery (conntrack leaves it alone).
    const states = [CT_STATE.NEW, CT_STATE.ESTABLISHED, CT_STATE.RELATED, CT_STATE.INVALID, ...(features.notrack || fam === 'ipv6' ? [CT_STATE.UNTRACKED] : [])];
    set(FIELD_SLOT.ctstate, normalize(states.map((s) => [BigInt(s), BigInt(s)] as const)));
  }
  // Packets arrive unmarked; once a rule sets marks anything is possible after it.
  if (!features.setsMark || firstTable) set(FIELD_SLOT.mark, single(0n));

  // -m pkttype reads unicast after routing unless the packet is delivered here: ip_forward
  // drops the rest, and a socket's packet is PACKET_HOST whatever its destination.
  if (hook === 'FORWARD' || hook === 'OUTPUT' || hook === 'POSTROUTING') set(FIELD_SLOT.pkttype, single(0n));

  const deviceSet = routing.hasHost ? ifaces.indicesOf(routing.devices) : ifaces.nonEmpty();
  const lo = ifaces.indicesOf(['lo']);
  // After routing, packets from a device are not martians (checked by ip_route_input).
  const routed = hook === 'INPUT' || hook === 'FORWARD' || hook === 'POSTROUTING';
  const sane = (b: Box): Box | undefined => {
    if (!routed) return b;
    const src = intersect(dom.values(b, FIELD_SLOT.saddr), routing.saneSources('eth'));
    const dst = intersect(dom.values(b, FIELD_SLOT.daddr), routing.saneDestinations('eth'));
    return src.length && dst.length ? dom.with(dom.with(b, FIELD_SLOT.saddr, src), FIELD_SLOT.daddr, dst) : undefined;
  };
  const withMac = (b: Box): Box[] => {
    // A source MAC exists on the receive side for devices with an Ethernet header (not lo).
    const out: Box[] = [];
    const notLo = subtract(dom.values(b, IIF_SLOT), lo, dom.top(IIF_SLOT));
    const isLo = subtract(dom.values(b, IIF_SLOT), notLo, dom.top(IIF_SLOT));
    const other = notLo.length ? sane(dom.with(dom.with(b, IIF_SLOT, notLo), FIELD_SLOT.macsrc, presentOnly('macsrc'))) : undefined;
    if (other) out.push(other);
    if (isLo.length) {
      let loBox = dom.with(dom.with(b, IIF_SLOT, isLo), FIELD_SLOT.macsrc, absent('macsrc'));
      // A packet this host sent to itself comes back in over lo with its connection already
      // attached: even the raw table sees its real state.
      if (table === 'raw') loBox = dom.with(loBox, FIELD_SLOT.ctstate, normalize([CT_STATE.NEW, CT_STATE.ESTABLISHED, CT_STATE.RELATED, CT_STATE.INVALID, CT_STATE.UNTRACKED].map((x) => [BigInt(x), BigInt(x)] as const)));
      out.push(loBox);
    }
    return out;
  };
  const noSocket = (b: Box): Box => dom.with(dom.with(b, FIELD_SLOT.uid, absent('uid')), FIELD_SLOT.gid, absent('gid'));
  const socket = (b: Box): Box => dom.with(dom.with(b, FIELD_SLOT.uid, presentOnly('uid')), FIELD_SLOT.gid, presentOnly('gid'));
  const empty = single(0n);

  const received = (b: Box): Box => dom.with(b, IIF_SLOT, deviceSet);
  const forwardRoutes = (b: Box): Box[] => {
    const ttl = dom.with(b, FIELD_SLOT.ttl, [[1n, 254n]]);
    if (!routing.hasHost) {
      // Broadcast and multicast destinations are delivered locally, never forwarded.
      const fwd = subtract([[0n, familyMax(fam)]], routing.localDelivery, familyMax(fam));
      const notLo = subtract(ifaces.nonEmpty(), lo, dom.top(OIF_SLOT));
      return [dom.with(dom.with(ttl, OIF_SLOT, notLo), FIELD_SLOT.daddr, fwd)];
    }
    const max = familyMax(fam);
    return routing.routes
      .map((r) => ({ r, region: subtract(r.region, routing.localDelivery, max) }))
      .filter((x) => x.region.length > 0)
      .map((x) => dom.with(dom.with(ttl, FIELD_SLOT.daddr, x.region), OIF_SLOT, ifaces.indicesOf([x.r.device])));
  };
  const outputRoutes = (b: Box): Box[] => {
    if (!routing.hasHost) return [dom.with(b, OIF_SLOT, ifaces.nonEmpty())];
    const out = routing.routes.map((r) => dom.with(dom.with(b, FIELD_SLOT.daddr, r.region), OIF_SLOT, ifaces.indicesOf([r.device])));
    // Own addresses, joined subnet-router anycast addresses and IPv4 0.0.0.0 go over lo (Host.routeOutput).
    if (routing.outputLocal.length) out.push(dom.with(dom.with(b, FIELD_SLOT.daddr, routing.outputLocal), OIF_SLOT, lo));
    // IPv6 groups leave by the first interface, whatever the routes say (Host.routeOutput).
    const first = routing.sim.model?.interfaces[0];
    if (fam === 'ipv6' && first?.addresses.some((a) => a.family === 'ipv6')) out.push(dom.with(dom.with(b, FIELD_SLOT.daddr, routing.multicast), OIF_SLOT, ifaces.indicesOf([first.device])));
    return out;
  };

  switch (hook) {
    case 'PREROUTING':
      return withMac(noSocket(dom.with(received(base), OIF_SLOT, empty)));
    case 'INPUT': {
      let b = dom.with(received(base), OIF_SLOT, empty);
      // Local destinations, and (IPv6) the ingress interface's own link-local address, which
      // can be any of fe80::/64 as far as the host model tells.
      // Link-local subnet-router anycast addresses too, on their own device (RoutingView.strictOn).
      const joined = normalize([...routing.sim.anycastAddresses().keys()].map((a) => [a, a] as const));
      // IPv4 0.0.0.0 too: a local packet to it loops back through lo with its header unchanged.
      if (routing.hasHost) b = dom.with(b, FIELD_SLOT.daddr, union(union(union(routing.localDelivery, routing.linkLocalGuess), fam === 'ipv6' ? joined : []), routing.outputLocal));
      return withMac(noSocket(b));
    }
    case 'FORWARD':
      return forwardRoutes(noSocket(received(base))).flatMap(withMac);
    case 'OUTPUT': {
      const b = socket(dom.with(dom.with(base, IIF_SLOT, empty), FIELD_SLOT.macsrc, absent('macsrc')));
      // After nat (NAT, or a reply's NAT undone), the destination may be another than the one
      // the device was routed for: the tables after it still see the first route's device.
      const afterNat = (TABLE_PRIORITY[table].OUTPUT ?? 0) > (TABLE_PRIORITY.nat.OUTPUT ?? 0);
      if (afterNat && features.nat) return [dom.with(b, OIF_SLOT, ifaces.nonEmpty())];
      return outputRoutes(b);
    }
    case 'POSTROUTING': {
      const noMac = dom.with(base, FIELD_SLOT.macsrc, absent('macsrc'));
      const forwarded = forwardRoutes(noSocket(received(noMac))).flatMap((b) => {
        const x = sane(b);
        return x ? [x] : [];
      });
      const local = socket(dom.with(noMac, IIF_SLOT, empty));
      const generated = outputRoutes(local);
      // nat OUTPUT may have sent a local packet to a group, broadcast or (IPv6) link-local
      // address: rerouted, it keeps to its earlier device or leaves by its source's (rerouteOutput).
      const kept: IntervalSet = fam === 'ipv6' ? union(routing.multicast, [[0xfe80n << 112n, (0xfe80n << 112n) | ((1n << 118n) - 1n)]]) : union(routing.multicast, [[0xffffffffn, 0xffffffffn]]);
      if (features.nat && routing.hasHost) generated.push(dom.with(dom.with(local, FIELD_SLOT.daddr, kept), OIF_SLOT, ifaces.nonEmpty()));
      return [...forwarded, ...generated];
    }
    default: {
      const never: never = hook;
      throw new Error(`unknown hook ${String(never)}`);
    }
  }
}
