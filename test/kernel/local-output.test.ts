import { describe, expect, it } from 'vitest';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type Scenario, addr, at, checkScenario, restore, tcp, udp } from './harness/index.js';

/**
 * What a locally generated packet looks like to the hooks it passes, checked with counters
 * (the harness also compares the simulator with the kernel on every counter and entry).
 * ~1 s.
 */
const env = harnessAvailable();
const A = (s: string): bigint => addr(s).value;

type Counted = Parameters<NonNullable<Scenario['expectKernel']>>[0]['final'];
/** Packets counted by rule `index` of `table`/`chain` in one family. */
const counted = (final: Counted, family: 'ipv4' | 'ipv6', table: string, chain: string, index: number): number =>
  final.chains.find((c) => c.family === family && c.table === table && c.chain === chain)!.rules[index].packets;

/**
 * `-m pkttype` of a locally generated packet to a group address reads unicast in OUTPUT and
 * POSTROUTING: the socket's skb carries pkt_type PACKET_HOST (0, as allocated), and xt_pkttype
 * derives multicast/broadcast from the destination only for PACKET_LOOPBACK, which
 * dev_loopback_xmit gives the copy ip_mc_output / ip6_finish_output2 loop back to a member
 * socket (none here: the harness's raw sockets join no group). Found by the analyzer-witnesses
 * kernel test (seed 200, random policy 12).
 */
const PKTTYPES = ['unicast', 'broadcast', 'multicast'] as const;
const pkttypeRules = PKTTYPES.map((t) => `-A OUTPUT -m pkttype --pkt-type ${t}`).concat(PKTTYPES.map((t) => `-A POSTROUTING -m pkttype --pkt-type ${t}`));
const localPkttype: Scenario = {
  name: '-m pkttype of a local packet to a group address is unicast in OUTPUT and POSTROUTING',
  host: GATEWAY,
  rules: { ipv4: restore({ mangle: pkttypeRules }), ipv6: restore({ mangle: pkttypeRules }) },
  inputs: [
    at(0, 'local', udp('192.168.20.1:5000', '239.1.2.3:7000', 'v4 group')),
    at(0, 'local', udp('[fd00:18::1]:5000', '[ff0e::1234]:7000', 'v6 group')),
    // The control: a unicast destination, also unicast.
    at(0, 'local', udp('192.168.20.1:5001', '198.51.100.7:7000', 'v4 unicast')),
  ],
  expectKernel(run) {
    const row = (f: 'ipv4' | 'ipv6', chain: string) => PKTTYPES.map((_, i) => counted(run.final, f, 'mangle', chain, i));
    // unicast, broadcast, multicast
    expect([row('ipv4', 'OUTPUT'), row('ipv4', 'POSTROUTING'), row('ipv6', 'OUTPUT'), row('ipv6', 'POSTROUTING')]).toEqual([
      [2, 0, 0],
      [2, 0, 0],
      [1, 0, 0],
      [1, 0, 0],
    ]);
    expect(run.steps.map((s) => s.emitted.map((e) => e.device))).toEqual([['eth1'], ['eth0'], ['eth1']]);
  },
};

/**
 * A REJECT with a TCP reset of a local packet to a group sends nothing (nf_send_reset looks at
 * the route's RTCF_MULTICAST/RTCF_BROADCAST; nf_send_reset6 at the destination's address
 * class), even though its pkt_type reads unicast.
 */
const localGroupReset: Scenario = {
  name: 'REJECT --reject-with tcp-reset of a local TCP segment to a group address sends no reset',
  host: GATEWAY,
  rules: {
    ipv4: restore({ filter: ['-A OUTPUT -p tcp -m pkttype --pkt-type unicast -j REJECT --reject-with tcp-reset'] }),
    ipv6: restore({ filter: ['-A OUTPUT -p tcp -m pkttype --pkt-type unicast -j REJECT --reject-with tcp-reset'] }),
  },
  inputs: [at(0, 'local', tcp('192.168.20.1:5000', '239.1.2.3:80', 'S')), at(0, 'local', tcp('[fd00:18::1]:5000', '[ff0e::1234]:80', 'S'))],
  expectKernel(run) {
    expect([counted(run.final, 'ipv4', 'filter', 'OUTPUT', 0), counted(run.final, 'ipv6', 'filter', 'OUTPUT', 0)]).toEqual([1, 1]);
    expect(run.steps.map((s) => [s.emitted, s.delivered])).toEqual([
      [[], []],
      [[], []],
    ]);
  },
};

/**
 * A local IPv4 packet to 0.0.0.0 is for this host: ip_route_output_key_hash_rcu gives a flow
 * without a destination a local route on the loopback device (taking the source, or 127.0.0.1,
 * as the flow's destination), whatever the routing table says. The header is not rewritten
 * (the harness sends from a header-included raw socket, as nfproof's local packets are: the
 * header as given), so every hook sees 0.0.0.0: OUTPUT and POSTROUTING by lo, PREROUTING and
 * INPUT in by lo, conntrack's tuple too, and addrtype does not call it LOCAL (0.0.0.0 is
 * BROADCAST to inet_addr_type). Found by the analyzer-witnesses kernel test (seed 200).
 */
const zeroDestination: Scenario = {
  name: 'a local IPv4 packet to 0.0.0.0 goes to the host itself over lo, its header unchanged',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      mangle: ['-A OUTPUT -o lo', '-A OUTPUT -o eth1', '-A OUTPUT -d 0.0.0.0', '-A POSTROUTING -o lo', '-A POSTROUTING -d 0.0.0.0', '-A PREROUTING -i lo -d 0.0.0.0', '-A INPUT -i lo -d 0.0.0.0', '-A INPUT -m addrtype --dst-type LOCAL', '-A INPUT -m conntrack --ctstate NEW'],
    }),
  },
  inputs: [at(0, 'local', udp('192.168.20.1:5000', '0.0.0.0:7000', 'zero')), at(0, 'local', udp('192.168.18.1:5001', '0.0.0.0:7001', 'zero lan'))],
  expectKernel(run) {
    const mangle = run.final.chains.filter((c) => c.table === 'mangle' && c.rules.length).map((c) => [c.chain, c.rules.map((r) => r.packets)]);
    expect(mangle).toEqual([
      ['PREROUTING', [2]],
      ['INPUT', [2, 0, 2]],
      ['OUTPUT', [2, 0, 2]],
      ['POSTROUTING', [2, 2]],
    ]);
    expect(run.steps.map((s) => [s.emitted.length, s.delivered.map((d) => d.packet.dst)])).toEqual([
      [0, [0n]],
      [0, [0n]],
    ]);
    // conntrack lists entries in hash order: sorted here.
    expect(run.final.entries.map((e) => [e.original.src, e.original.dst, e.reply.src, e.reply.dst].map(String)).sort()).toEqual([
      [String(A('192.168.18.1')), '0', '0', String(A('192.168.18.1'))],
      [String(A('192.168.20.1')), '0', '0', String(A('192.168.20.1'))],
    ]);
  },
};

describe.skipIf(!env.run)('locally generated packets on the kernel', () => {
  for (const s of [localPkttype, localGroupReset, zeroDestination]) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
