import { describe, expect, it } from 'vitest';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type Scenario, addr, at, checkScenario, hostModel, restore, tcp, udp } from './harness/index.js';

/**
 * Routing decisions that decide a packet's fate before any filter rule: which source and
 * destination addresses are martian. Derived from the kernel source, checked on the kernel:
 * since Linux 5.3 ipv4_is_zeronet() (include/linux/in.h) is true only for 0.0.0.0, so the rest
 * of 0.0.0.0/8 is ordinary unicast; a loopback source arriving from outside is martian
 * (route_localnet is off). Found by the differential property (the simulator called
 * 0.107.100.11 a martian source). ~1 s.
 */
const env = harnessAvailable();
const A = (s: string): bigint => addr(s).value;

const zeroNet: Scenario = {
  name: '0.0.0.0/8 addresses other than 0.0.0.0 are routed like any unicast address',
  host: GATEWAY,
  rules: { ipv4: restore({ filter: ['-A FORWARD -m conntrack --ctstate NEW,ESTABLISHED'] }) },
  inputs: [
    at(0, 'eth0', udp('192.168.18.2:5000', '0.1.2.3:53', 'to zeronet')),
    at(0, 'eth1', udp('0.1.2.3:53', '192.168.18.2:5000', 'from zeronet')),
    at(0, 'eth1', udp('0.9.9.9:53', '192.168.18.1:5000', 'to the router')),
  ],
  expectKernel(run) {
    expect(run.steps[0].emitted.map((e) => [e.device, e.packet.dst])).toEqual([['eth1', A('0.1.2.3')]]);
    expect(run.steps[1].emitted.map((e) => [e.device, e.packet.src])).toEqual([['eth0', A('0.1.2.3')]]);
    expect(run.steps[2].delivered.map((d) => d.packet.src)).toEqual([A('0.9.9.9')]);
  },
};

const loopbackSource: Scenario = {
  name: 'a loopback source from outside is a martian: dropped after PREROUTING, no entry confirmed',
  host: GATEWAY,
  rules: { ipv4: restore({ filter: ['-A FORWARD -m conntrack --ctstate NEW,ESTABLISHED'] }) },
  inputs: [at(0, 'eth1', udp('127.0.0.9:53', '192.168.18.2:5000', 'spoofed'))],
  expectKernel(run) {
    expect(run.steps[0].emitted).toEqual([]);
    expect(run.steps[0].delivered).toEqual([]);
    expect(run.final.entries).toEqual([]);
  },
};

/**
 * ICMP errors the router makes about forwarded packets, when the sender is reached by another
 * interface than the one the packet came in by. IPv4 (icmp_send, net/ipv4/icmp.c) takes the
 * source from the route back to the sender (icmp_errors_use_inbound_ifaddr is 0), so the
 * outgoing interface's address; IPv6 (icmp6_send, net/ipv6/icmp.c) takes the address of the
 * interface the packet came in by when the route back has no preferred source. Found by the
 * differential property (the simulator used the outgoing interface's address for IPv6).
 */
const errorSource: Scenario = {
  name: 'time exceeded: IPv4 answers from the outgoing interface, IPv6 from the incoming one',
  host: GATEWAY,
  rules: {
    ipv4: restore({ filter: ['-A FORWARD -m conntrack --ctstate NEW,ESTABLISHED'] }),
    ipv6: restore({ filter: ['-A FORWARD -m conntrack --ctstate NEW,ESTABLISHED'] }),
  },
  inputs: [
    // Senders beyond the wan default route, arriving on lan with one hop left.
    at(0, 'eth0', udp('198.51.100.77:4000', '192.168.20.9:53', 'v4', { ttl: 1 })),
    at(0, 'eth0', udp('[2001:db8:77::5]:4000', '[fd00:20::9]:53', 'v6', { ttl: 1 })),
  ],
  expectKernel(run) {
    const [v4, v6] = run.steps.map((s) => s.emitted);
    expect(v4.map((e) => [e.device, e.packet.src, e.packet.icmp?.type])).toEqual([['eth1', A('192.168.20.1'), 11]]);
    expect(v6.map((e) => [e.device, e.packet.src, e.packet.icmp?.type])).toEqual([['eth1', A('fd00:18::1'), 3]]);
  },
};

/**
 * addrtype of an address the host has no route for. IPv4 (inet_dev_addr_type, fib_frontend.c)
 * starts from RTN_UNICAST and only a route that is found can change it, so no route means
 * UNICAST, never UNREACHABLE. IPv6 (match_type6, xt_addrtype.c) decides UNICAST by the
 * address class alone, and UNREACHABLE when the route lookup fails — so both hold at once.
 * Found by the differential property (the simulator called an unrouted IPv6 source not UNICAST).
 */
const unrouted: Scenario = {
  name: 'addrtype of an unrouted source: IPv4 UNICAST only, IPv6 UNICAST and UNREACHABLE',
  host: hostModel({ interfaces: { lan: ['eth0', '192.168.18.1/24', 'fd00:18::1/64'], wan: ['eth1', '192.168.20.1/24', 'fd00:20::1/64'] } }),
  rules: {
    ipv4: restore({ filter: ['-A FORWARD -m addrtype --src-type UNICAST', '-A FORWARD -m addrtype --src-type UNREACHABLE'] }),
    ipv6: restore({ filter: ['-A FORWARD -m addrtype --src-type UNICAST', '-A FORWARD -m addrtype --src-type UNREACHABLE'] }),
  },
  inputs: [at(0, 'eth1', udp('203.0.113.5:53', '192.168.18.2:5000', 'v4')), at(0, 'eth1', udp('[2001:db8:99::5]:53', '[fd00:18::2]:5000', 'v6'))],
  expectKernel(run) {
    expect(run.steps.map((s) => s.emitted.map((e) => e.device))).toEqual([['eth0'], ['eth0']]);
    const counts = (f: 'ipv4' | 'ipv6') => run.final.chains.find((c) => c.family === f && c.table === 'filter' && c.chain === 'FORWARD')!.rules.map((r) => r.packets);
    expect(counts('ipv4')).toEqual([1, 0]);
    expect(counts('ipv6')).toEqual([1, 1]);
  },
};

/**
 * Several IPv6 types in one addrtype test: match_type6 (xt_addrtype.c) requires every class type
 * asked for (UNICAST, MULTICAST, UNSPEC: the address class) and any one of the route types
 * (LOCAL, ANYCAST, UNREACHABLE: the route lookup), where IPv4 takes any of them. So
 * UNICAST,LOCAL matches an own address, UNICAST,MULTICAST nothing, and the negation of
 * UNICAST,LOCAL,ANYCAST,MULTICAST everything. The diff's walk read each type alone (found by
 * the diff's trust property, seed 32).
 */
const ipv6TypeLists: Scenario = {
  name: 'IPv6 addrtype lists: class types all, route types any',
  host: GATEWAY,
  rules: {
    ipv6: restore({
      filter: [
        '-A INPUT -m addrtype --dst-type UNICAST,LOCAL',
        '-A INPUT -m addrtype --dst-type UNICAST,MULTICAST',
        '-A INPUT -m addrtype ! --src-type UNICAST,LOCAL,ANYCAST,MULTICAST',
        '-A INPUT -m addrtype --src-type UNICAST,LOCAL,ANYCAST',
      ],
    }),
  },
  inputs: [at(0, 'eth0', udp('[fd00:18::5]:4000', '[fd00:18::1]:53', 'own address'))],
  expectKernel(run) {
    const counts = run.final.chains.find((c) => c.family === 'ipv6' && c.table === 'filter' && c.chain === 'INPUT')!.rules.map((r) => r.packets);
    expect(counts).toEqual([1, 0, 1, 0]);
  },
};

/**
 * A locally generated packet to a destination without a route never reaches a netfilter hook:
 * the socket routes it first (raw_sendmsg/ip_route_output_flow; udp_sendmsg likewise) and the
 * sender gets ENETUNREACH. So OUTPUT counts nothing. Found by the differential property (the
 * simulator ran OUTPUT before finding there was no route).
 */
const localNoRoute: Scenario = {
  name: 'a local packet without a route is refused by the socket before OUTPUT',
  host: hostModel({ interfaces: { lan: ['eth0', '192.168.18.1/24'] } }),
  rules: { ipv4: restore({ filter: ['-A OUTPUT -m conntrack --ctstate NEW'] }) },
  inputs: [at(0, 'local', udp('192.168.18.1:5000', '203.0.113.9:53', 'nowhere'))],
  expectKernel(run) {
    expect(run.steps[0].sendError).toBe('ENETUNREACH');
    expect(run.steps[0].emitted).toEqual([]);
    const out = run.final.chains.find((c) => c.table === 'filter' && c.chain === 'OUTPUT')!;
    expect([out.rules[0].packets, out.policy?.packets]).toEqual([0, 0]);
    expect(run.final.entries).toEqual([]);
  },
};

/**
 * "No route" answers for forwarded IPv4 are rate limited per sender by the routing code itself
 * (ip_error in net/ipv4/route.c: a token bucket of ip_rt_error_burst = 5 s worth, each answer
 * costing ip_rt_error_cost = 1 s), independently of icmp_ratelimit/icmp_ratemask, and those
 * sysctls are not per network namespace. So within a second the first five packets from one
 * sender get an answer — network unreachable (code 0), since a failed route lookup is
 * ENETUNREACH — and the rest get nothing. Found by the differential property (the
 * simulator answered every packet).
 */
const noRouteBurst: Scenario = {
  name: 'IPv4 network unreachable for unroutable forwards: five per sender, then silence (ip_error token bucket)',
  host: hostModel({ interfaces: { lan: ['eth0', '192.168.18.1/24'], wan: ['eth1', '192.168.20.1/24'] } }),
  rules: { ipv4: restore({ filter: ['-A OUTPUT -p icmp'] }) },
  inputs: Array.from({ length: 7 }, (_, i) => at(0, 'eth0', udp(`192.168.18.2:${5000 + i}`, '203.0.113.9:53', 'x'))),
  expectKernel(run) {
    expect(run.steps.map((s) => s.emitted.map((e) => `${e.device} ${e.packet.icmp?.type}/${e.packet.icmp?.code}`))).toEqual([
      ...Array.from({ length: 5 }, () => ['eth0 3/0']),
      [],
      [],
    ]);
  },
};

/**
 * The same burst with the ICMP limiter of a default host (icmp_ratemask 0x1818 holds type 3).
 * ip_error's bucket and icmp_send's limiter (inet_peer_xrlim_allow) keep their tokens in the
 * same inet_peer of the sender, so each answer costs two tokens: ip_error takes one of its 5,
 * then the limiter (capped at 6 × icmp_ratelimit) takes another. Worked by hand: 5→4→3 (sent),
 * 3→2→1 (sent), 1→0 then the limiter finds 0 (suppressed), then ip_error finds 0. Two answers.
 */
const noRouteDefaultLimits: Scenario = {
  ...noRouteBurst,
  name: 'IPv4 network unreachable with the default ICMP rate mask: ip_error and the ICMP limiter share one bucket, two answers',
  sysctls: { 'net.ipv4.icmp_ratemask': '6168' },
  inputs: noRouteBurst.inputs.slice(0, 5),
  expectKernel(run) {
    expect(run.steps.map((s) => s.emitted.length)).toEqual([1, 1, 0, 0, 0]);
  },
};

/**
 * A multicast destination (here made by DNAT in PREROUTING, so the routing decision sees it)
 * is delivered only when the incoming interface has joined the group, and a host without
 * multicast routing never forwards it. Groups the kernel joins by itself: 224.0.0.1 on IPv4
 * (ip_mc_up); ff02::1 and ff01::1 on IPv6 (ipv6_add_dev), ff02::2 with forwarding on, the
 * solicited-node group of each address (not checked here: addrconf_join_solict skips NOARP
 * devices, and the harness's veths are NOARP). ip_route_input_rcu (ip_check_mc_rcu) and
 * ip6_mc_input (ipv6_chk_mcast_addr) drop the rest; the entries die unconfirmed. Found by the
 * differential property (the simulator delivered a DNAT to ffff:…:fff2 locally).
 */
const multicastGroups: Scenario = {
  name: 'a DNAT to a multicast group is delivered only for groups the interface has joined',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      nat: [
        '-A PREROUTING -p udp -m udp --dport 1001 -j DNAT --to-destination 224.0.0.1',
        '-A PREROUTING -p udp -m udp --dport 1002 -j DNAT --to-destination 239.1.2.3',
      ],
    }),
    ipv6: restore({
      nat: [
        '-A PREROUTING -p udp -m udp --dport 1001 -j DNAT --to-destination ff02::1',
        '-A PREROUTING -p udp -m udp --dport 1002 -j DNAT --to-destination ffff::fff2',
        '-A PREROUTING -p udp -m udp --dport 1003 -j DNAT --to-destination ff02::2',
        '-A PREROUTING -p udp -m udp --dport 1005 -j DNAT --to-destination ff02::1:ff00:77',
      ],
    }),
  },
  inputs: [
    at(0, 'eth1', udp('198.51.100.7:4000', '192.168.20.1:1001', 'all-hosts')),
    at(0, 'eth1', udp('198.51.100.7:4000', '192.168.20.1:1002', 'not joined')),
    at(0, 'eth1', udp('[2001:db8:77::5]:4000', '[fd00:20::1]:1001', 'all-nodes')),
    at(0, 'eth1', udp('[2001:db8:77::5]:4000', '[fd00:20::1]:1002', 'not joined')),
    at(0, 'eth1', udp('[2001:db8:77::5]:4000', '[fd00:20::1]:1003', 'all-routers')),
    at(0, 'eth1', udp('[2001:db8:77::5]:4000', '[fd00:20::1]:1005', 'solicited nobody')),
  ],
  expectKernel(run) {
    expect(run.steps.map((s) => s.delivered.length)).toEqual([1, 0, 1, 0, 1, 0]);
    expect(run.steps.map((s) => s.emitted.length)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(run.final.entries.length).toBe(3);
  },
};

/**
 * IPv6 drops some addresses before any hook (ip6_rcv_core, RFC 4291): a multicast source, a
 * loopback source or destination from outside, a multicast destination of scope 0 or of
 * interface-local scope 1 from outside. Unlike IPv4's martians (decided by routing, after
 * PREROUTING) no rule counts them. The last packet is a control that PREROUTING does count.
 */
const ipv6EarlyDrops: Scenario = {
  name: 'IPv6 packets with impossible addresses die before PREROUTING (ip6_rcv_core)',
  host: GATEWAY,
  rules: { ipv6: restore({ raw: ['-A PREROUTING -p udp'] }) },
  inputs: [
    at(0, 'eth1', udp('[ff02::5]:4000', '[fd00:20::1]:53', 'mcast source')),
    at(0, 'eth1', udp('[::1]:4000', '[fd00:20::1]:53', 'loopback source')),
    at(0, 'eth1', udp('[2001:db8:77::5]:4000', '[::1]:53', 'loopback destination')),
    at(0, 'eth1', udp('[2001:db8:77::5]:4000', '[ff00::1]:53', 'scope 0')),
    at(0, 'eth1', udp('[2001:db8:77::5]:4000', '[ff01::1]:53', 'interface-local')),
    at(0, 'eth1', udp('[2001:db8:77::5]:4000', '[ff02::1]:53', 'link-local all nodes')),
  ],
  expectKernel(run) {
    const raw = run.final.chains.find((c) => c.family === 'ipv6' && c.table === 'raw' && c.chain === 'PREROUTING')!;
    expect(raw.rules[0].packets).toBe(1);
    expect(run.steps.map((s) => s.delivered.length)).toEqual([0, 0, 0, 0, 0, 1]);
  },
};

/**
 * Route metrics: IPv4 keeps a route's metric as given, so `metric 0` beats `metric 2`; IPv6
 * turns a metric of 0 into IP6_RT_PRIO_USER, 1024 (ip6_route_info_create, net/ipv6/route.c),
 * so there `metric 2` wins. Found by the differential property (seed 1001: the simulator sent
 * IPv6 out by the metric-0 default route).
 */
const metricZero: Scenario = {
  name: 'metric 0 is the best IPv4 metric, but 1024 for IPv6',
  host: hostModel({
    interfaces: { lan: ['eth0', '192.168.18.1/24', 'fd00:18::1/64'], wan: ['eth1', '192.168.20.1/24', 'fd00:20::1/64'], dmz: ['wan0', '10.10.0.1/24', 'fd00:dd::1/64'] },
    routes: ['default via 192.168.18.254 dev lan metric 0', 'default via 192.168.20.254 dev wan metric 2', 'default6 via fd00:18::fe dev lan metric 0', 'default6 via fd00:20::fe dev wan metric 2'],
  }),
  rules: { ipv4: restore({ filter: ['-A FORWARD'] }), ipv6: restore({ filter: ['-A FORWARD'] }) },
  inputs: [at(0, 'wan0', udp('10.10.0.5:4000', '198.51.100.7:53', 'v4')), at(0, 'wan0', udp('[fd00:dd::5]:4000', '[2001:db8:ffff::b]:53', 'v6'))],
  expectKernel(run) {
    expect(run.steps.map((s) => s.emitted.map((e) => e.device))).toEqual([['eth0'], ['eth1']]);
  },
};

/**
 * DNAT to the loopback (or a link-local) address of a packet from outside. IPv4
 * (ip_route_input_slow): a loopback destination arriving on another device is a martian
 * (route_localnet is off), dropped without a word. IPv6: ip6_rcv_core's loopback check ran
 * before PREROUTING; the route lookup binds loopback and link-local destinations to the
 * incoming interface (rt6_need_strict: only routes by that device count), and ::1 lives on lo.
 * So with the default route by the incoming device (wan) the packet goes back out of it, and
 * where no route of the incoming device covers it (lan) the sender gets destination
 * unreachable, no route, whose source and quoted packet conntrack turns back to the address
 * the sender used. Found by the differential property (seed 1003: the simulator dropped the
 * IPv6 packet as a martian).
 */
const dnatToLoopback: Scenario = {
  name: 'DNAT to ::1 or fe80::1 from outside routes by the incoming interface only (IPv4: 127.0.0.1 is a martian)',
  host: GATEWAY,
  rules: {
    ipv4: restore({ nat: ['-A PREROUTING -p udp --dport 8080 -j DNAT --to-destination 127.0.0.1'] }),
    ipv6: restore({ nat: ['-A PREROUTING -p udp --dport 8080 -j DNAT --to-destination ::1', '-A PREROUTING -p udp --dport 8081 -j DNAT --to-destination fe80::1'] }),
  },
  inputs: [
    at(0, 'eth1', udp('198.51.100.7:4000', '192.168.20.1:8080', 'v4')),
    at(0, 'eth1', udp('[2001:db8:77::5]:4000', '[fd00:20::1]:8080', 'v6 wan')),
    at(0, 'eth0', udp('[fd00:18::5]:4000', '[fd00:18::1]:8080', 'v6 lan')),
    at(0, 'eth1', udp('[2001:db8:77::5]:4001', '[fd00:20::1]:8081', 'll wan')),
    at(0, 'eth0', udp('[fd00:18::5]:4001', '[fd00:18::1]:8081', 'll lan')),
  ],
  expectKernel(run) {
    const out = run.steps.map((s) => s.emitted.map((e) => [e.device, e.packet.dst, e.packet.icmp ? `${e.packet.icmp.type}/${e.packet.icmp.code} from ${e.packet.src}` : 'carried on']));
    expect(out).toEqual([
      [],
      [['eth1', A('::1'), 'carried on']],
      [['eth0', A('fd00:18::5'), `1/0 from ${A('fd00:18::1')}`]],
      [['eth1', A('fe80::1'), 'carried on']],
      [['eth0', A('fd00:18::5'), `1/0 from ${A('fd00:18::1')}`]],
    ]);
    expect(run.steps.flatMap((s) => s.delivered)).toEqual([]);
  },
};

/**
 * A locally generated packet that nat OUTPUT sends to a multicast (or link-local) address is
 * routed again (ip_route_me_harder, ip6_route_me_harder), and not by the routing table alone.
 * IPv4: with a source address of ours, a multicast destination leaves by the device that owns
 * the source (ip_route_output_key_hash_rcu), here lan although the default route is wan.
 * IPv6: a multicast or link-local destination binds the lookup to the device the packet was
 * routed to before the rewrite; every interface that is up has ff00::/8, so the multicast
 * stays on wan, and fe80::1 goes where a route of that device covers it — wan's default
 * route does, lan has none (dropped, the sender gets EPERM). Found by the differential
 * property (seeds 1003 and 1004: the simulator routed the rewritten packets by the table).
 */
const localToMulticast: Scenario = {
  name: 'nat OUTPUT to a multicast or link-local address: IPv4 leaves by the source address, IPv6 by the device routed to before',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      nat: ['-A OUTPUT -p udp --dport 7000 -j DNAT --to-destination 239.1.2.3', '-A OUTPUT -p udp --dport 7002 -j DNAT --to-destination 239.1.2.3'],
      filter: ['-A OUTPUT -p udp --dport 7002 -j REJECT'],
    }),
    ipv6: restore({
      nat: ['-A OUTPUT -p udp --dport 7000 -j DNAT --to-destination ff0e::1234', '-A OUTPUT -p udp --dport 7001 -j DNAT --to-destination fe80::1', '-A OUTPUT -p udp --dport 7002 -j DNAT --to-destination ff0e::1234'],
      filter: ['-A OUTPUT -p udp --dport 7002 -j REJECT'],
    }),
  },
  inputs: [
    at(0, 'local', udp('192.168.18.1:5000', '198.51.100.7:7000', 'v4 mc')),
    at(0, 'local', udp('[fd00:18::1]:5000', '[2001:db8:77::5]:7000', 'v6 mc')),
    at(0, 'local', udp('[fd00:18::1]:5001', '[2001:db8:77::5]:7001', 'll wan')),
    at(0, 'local', udp('[fd00:18::1]:5002', '[fd00:18::7]:7001', 'll lan')),
    // REJECT of such a packet: no ICMP error about a packet to a group (icmp_send, icmp6_send),
    // which would come back to the sender through lo.
    at(0, 'local', udp('192.168.18.1:5003', '198.51.100.7:7002', 'v4 rej')),
    at(0, 'local', udp('[fd00:18::1]:5003', '[2001:db8:77::5]:7002', 'v6 rej')),
  ],
  expectKernel(run) {
    expect(run.steps.map((s) => s.emitted.map((e) => [e.device, e.packet.dst]))).toEqual([
      [['eth0', A('239.1.2.3')]],
      [['eth1', A('ff0e::1234')]],
      [['eth1', A('fe80::1')]],
      [],
      [],
      [],
    ]);
    expect(run.steps.flatMap((s) => s.delivered)).toEqual([]);
    const rejects = (f: 'ipv4' | 'ipv6') => run.final.chains.find((c) => c.family === f && c.table === 'filter' && c.chain === 'OUTPUT')!.rules[0].packets;
    expect([rejects('ipv4'), rejects('ipv6')]).toEqual([1, 1]);
  },
};

/**
 * A locally generated IPv6 packet to a group address, from a socket bound to no device: it
 * takes the ff00::/8 route of the interface that came up first (lan here: the harness creates
 * the interfaces in the host model's order); source selection for a group looks only at that
 * device's addresses, so where it has no IPv6 address the socket refuses with EADDRNOTAVAIL.
 * Found by the differential property (seed 1012: a reply to an address nat INPUT had turned
 * into a group address; the simulator sent it by the default route).
 */
const localGroup = (name: string, lan: [string, ...string[]], expected: readonly string[][]): Scenario => ({
  name,
  host: hostModel({ interfaces: { lan, wan: ['eth1', '192.168.20.1/24', 'fd00:20::1/64'] }, routes: ['default6 via fd00:20::fe dev wan'] }),
  rules: { ipv6: restore({ filter: ['-A OUTPUT'] }) },
  inputs: [at(0, 'local', udp('[fd00:20::1]:4000', '[ff0e::5]:53', 'mc')), at(0, 'local', udp('[fd00:20::1]:4000', '[ffff::ffe2]:53', 'mc'))],
  expectKernel(run) {
    expect(run.steps.map((s) => s.emitted.map((e) => e.device))).toEqual(expected);
  },
});
const localGroupFirst = localGroup('a local IPv6 packet to a group leaves by the first interface', ['eth0', '192.168.18.1/24', 'fd00:18::1/64'], [['eth0'], ['eth0']]);
const localGroupNoAddress = localGroup('a local IPv6 packet to a group is refused when the first interface has no IPv6 address', ['eth0', '192.168.18.1/24'], [[], []]);

/**
 * ip6_rcv_core checks the header of a packet looping back through lo as well: a local packet
 * to ourselves whose source POSTROUTING turned into a group address (RFC 4291 2.7) is dropped
 * there, before PREROUTING, after conntrack confirmed it on the way out. Found by the
 * differential property (seed 1013: the simulator delivered it).
 */
const loopbackGroupSource: Scenario = {
  name: 'a local IPv6 packet SNATed to a group source dies when it loops back through lo',
  host: GATEWAY,
  rules: { ipv6: restore({ nat: ['-A POSTROUTING -p udp --dport 7003 -j SNAT --to-source ff0e::77'], filter: ['-A INPUT -p udp'] }) },
  inputs: [at(0, 'local', udp('[fd00:18::1]:5000', '[fd00:20::1]:7003', 'self'))],
  expectKernel(run) {
    expect([run.steps[0].emitted, run.steps[0].delivered]).toEqual([[], []]);
    expect(run.final.chains.find((c) => c.family === 'ipv6' && c.table === 'filter' && c.chain === 'INPUT')!.rules[0].packets).toBe(0);
    expect(run.final.entries.map((e) => e.reply.dst)).toEqual([A('ff0e::77')]);
  },
};

/**
 * IPv6 subnet-router anycast. With forwarding on (the harness's firewall, and the simulator's
 * default) the kernel joins, on each interface, the anycast address of every prefix of its
 * addresses shorter than /127 (the prefix with all host bits zero; addrconf_join_anycast,
 * net/ipv6/addrconf.c) and puts an `anycast` route for it in the local table, which sends it
 * to ip6_input: delivered here from any interface, and a local packet to it goes over lo.
 * xt_addrtype reads the route's RTF_ANYCAST: ANYCAST, not LOCAL. An answer about such a
 * packet comes from the anycast address itself (icmp6_send takes the destination as source
 * when ipv6_chk_acast_addr_src finds it; REJECT's reset swaps the addresses). Found by the
 * analyzer-witnesses kernel test (seed 42: analyzer and simulator forwarded it).
 */
const subnetRouterAnycast: Scenario = {
  name: 'IPv6 subnet-router anycast addresses of a forwarding host are delivered locally (addrtype ANYCAST, not LOCAL)',
  host: GATEWAY,
  rules: {
    ipv6: restore({
      filter: [
        '-A INPUT -m addrtype --dst-type LOCAL',
        '-A INPUT -m addrtype --dst-type ANYCAST',
        '-A INPUT -p udp -m udp --dport 9 -j REJECT',
        '-A INPUT -p tcp -j REJECT --reject-with tcp-reset',
        '-A FORWARD',
      ],
    }),
  },
  inputs: [
    at(0, 'eth1', udp('[2001:db8:77::5]:4000', '[fd00:20::]:53', 'anycast of wan')),
    at(0, 'eth1', udp('[2001:db8:77::5]:4000', '[fd00:18::]:53', 'anycast of lan, from wan')),
    at(0, 'eth1', udp('[2001:db8:77::5]:4001', '[fd00:20::]:9', 'rejected')),
    at(0, 'eth1', tcp('[2001:db8:77::5]:4002', '[fd00:20::]:80', 'S')),
    at(0, 'local', udp('[fd00:18::1]:5000', '[fd00:20::]:53', 'from here')),
    at(0, 'eth1', udp('[2001:db8:77::5]:4000', '[fd00:18::2]:53', 'control: forwarded')),
  ],
  expectKernel(run) {
    expect(run.steps.map((s) => s.delivered.length)).toEqual([1, 1, 0, 0, 1, 0]);
    expect(run.steps.map((s) => s.emitted.map((e) => [e.device, e.packet.src, e.packet.dst]))).toEqual([
      [],
      [],
      [['eth1', A('fd00:20::'), A('2001:db8:77::5')]],
      [['eth1', A('fd00:20::'), A('2001:db8:77::5')]],
      [],
      [['eth0', A('2001:db8:77::5'), A('fd00:18::2')]],
    ]);
    expect(run.steps[2].emitted[0].packet.icmp?.type).toBe(1);
    const input = run.final.chains.find((c) => c.family === 'ipv6' && c.table === 'filter' && c.chain === 'INPUT')!.rules.map((r) => r.packets);
    // LOCAL counts none of them; ANYCAST all five that reached INPUT.
    expect(input.slice(0, 2)).toEqual([0, 5]);
  },
};

/**
 * A local IPv6 packet to a group of scope 0 (reserved) or 1 (interface-local) that routing
 * sends out of a device other than lo: OUTPUT and POSTROUTING see it and conntrack confirms
 * its entry, then ip6_finish_output2 throws it away ("invalid scope", net/ipv6/ip6_output.c).
 * Groups the device has not joined, so no copy loops back to the host; ff02:: (link scope)
 * is the control that leaves. Found by the analyzer-witnesses kernel test (seed 4: analyzer
 * and simulator sent ffe0:ff:0:1:: out of the interface).
 */
const localGroupScope: Scenario = {
  name: 'a local IPv6 packet to a group of scope 0 or 1 passes POSTROUTING and is discarded (invalid scope)',
  host: GATEWAY,
  rules: { ipv6: restore({ filter: ['-A OUTPUT -m conntrack --ctstate NEW'], mangle: ['-A POSTROUTING -p udp'] }) },
  inputs: [
    at(0, 'local', udp('[fd00:18::1]:5000', '[ff01::1234]:53', 'interface-local')),
    at(0, 'local', udp('[fd00:18::1]:5001', '[ffe0:ff:0:1::]:53', 'reserved scope')),
    at(0, 'local', udp('[fd00:18::1]:5002', '[ff02::1234]:53', 'link scope')),
  ],
  expectKernel(run) {
    expect(run.steps.map((s) => s.emitted.map((e) => e.device))).toEqual([[], [], ['eth0']]);
    expect(run.steps.flatMap((s) => s.delivered)).toEqual([]);
    const count = (table: string, chain: string) => run.final.chains.find((c) => c.family === 'ipv6' && c.table === table && c.chain === chain)!.rules[0].packets;
    expect([count('filter', 'OUTPUT'), count('mangle', 'POSTROUTING')]).toEqual([3, 3]);
    expect(run.final.entries.length).toBe(3);
  },
};

/**
 * Where no subnet-router anycast address is joined: a /127 (RFC 6164 point-to-point links;
 * addrconf_join_anycast leaves prefixes of 127 bits and more alone), and every prefix once
 * forwarding is turned off (dev_forward_change leaves them all). Then the prefix's first
 * address is an ordinary destination on the link.
 */
const noAnycast = (name: string, lan: string, dst: string, sysctls: Record<string, string>, expected: readonly string[][]): Scenario => ({
  name,
  host: hostModel({ interfaces: { lan: ['eth0', '192.168.18.1/24', 'fd00:18::1/64'], wan: ['eth1', '192.168.20.1/24', lan] } }),
  sysctls,
  rules: { ipv6: restore({ filter: ['-A FORWARD', '-A INPUT -p udp'] }) },
  inputs: [at(0, 'eth0', udp('[fd00:18::5]:4000', `[${dst}]:53`, 'to the first address'))],
  expectKernel(run) {
    expect(run.steps.map((s) => [...s.emitted.map((e) => e.device), ...s.delivered.map(() => 'local')])).toEqual(expected);
  },
});
const anycast127 = noAnycast('a /127 joins no subnet-router anycast address: its first address is forwarded', '2001:db8:ff::1/127', '2001:db8:ff::', {}, [['eth1']]);
const anycast126 = noAnycast('a /126 does join it: delivered locally (the control of the /127 case)', '2001:db8:ff::1/126', '2001:db8:ff::', {}, [['local']]);
const anycastNoForwarding = noAnycast('without IPv6 forwarding no subnet-router anycast address is joined (the packet is not forwarded either)', 'fd00:20::1/64', 'fd00:20::', { 'net.ipv6.conf.all.forwarding': '0' }, [[]]);

describe.skipIf(!env.run)('routing decisions on the kernel', () => {
  for (const s of [zeroNet, loopbackSource, errorSource, unrouted, ipv6TypeLists, localNoRoute, noRouteBurst, noRouteDefaultLimits, multicastGroups, ipv6EarlyDrops, metricZero, dnatToLoopback, localToMulticast, localGroupFirst, localGroupNoAddress, loopbackGroupSource, subnetRouterAnycast, anycast127, anycast126, anycastNoForwarding, localGroupScope]) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
