import { describe, expect, it } from 'vitest';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type Scenario, addr, at, checkScenario, hostModel, restore, udp } from './harness/index.js';

/**
 * The address MASQUERADE takes when the outgoing device has none of its own.
 * nf_nat_masquerade_ipv4 asks inet_select_addr(out, nexthop, RT_SCOPE_UNIVERSE): lo only has
 * 127.0.0.1, of host scope, so it is skipped, and so is a device without IPv4 address; the
 * kernel then takes the first primary address of the namespace's devices in order (lo first,
 * then the interfaces as they were created). IPv6 (ipv6_dev_get_saddr) picks among every
 * device's addresses for a global destination, and prefers the destination itself when it is
 * one of ours (rule 1), so a packet to ourselves keeps its destination as source. Found by the differential property (the
 * simulator masqueraded a locally delivered packet to 127.0.0.1). ~1 s.
 */
const env = harnessAvailable();
const A = (s: string): bigint => addr(s).value;

const outOfLo: Scenario = {
  name: 'MASQUERADE of a packet to ourselves (out of lo) takes the first interface address, not 127.0.0.1',
  host: GATEWAY,
  rules: { ipv4: restore({ nat: ['-A POSTROUTING -j MASQUERADE'] }) },
  inputs: [at(0, 'local', udp('192.168.20.1:5000', '192.168.18.1:80', 'self'))],
  expectKernel(run) {
    expect(run.steps[0].delivered.map((d) => [d.packet.src, d.packet.dst])).toEqual([[A('192.168.18.1'), A('192.168.18.1')]]);
  },
};

const outOfLo6: Scenario = {
  name: 'IPv6 MASQUERADE of a packet to ourselves (out of lo) takes the destination itself, unless it is an anycast address',
  host: GATEWAY,
  rules: { ipv6: restore({ nat: ['-A POSTROUTING -j MASQUERADE'] }) },
  inputs: [
    at(0, 'local', udp('[fd00:20::1]:5000', '[fd00:18::1]:80', 'own')),
    at(0, 'local', udp('[fd00:18::1]:5001', '[::1]:80', 'loopback')),
    // The subnet-router anycast address of the lan prefix (joined: the firewall forwards) is
    // no address to send from: the longest matching prefix picks the lan address.
    at(0, 'local', udp('[fd00:20::1]:5002', '[fd00:18::]:80', 'anycast')),
  ],
  expectKernel(run) {
    expect(run.steps.map((s) => s.delivered.map((d) => [d.packet.src, d.packet.dst]))).toEqual([
      [[A('fd00:18::1'), A('fd00:18::1')]],
      [[A('::1'), A('::1')]],
      [[A('fd00:18::1'), A('fd00:18::')]],
    ]);
  },
};

const noAddressOnTheWay: Scenario = {
  name: 'MASQUERADE out of a device without an address of the family borrows another device\u2019s',
  host: hostModel({
    interfaces: { lan: ['eth0', '192.168.18.1/24', 'fd00:18::1/64'], wan: ['eth1'] },
    routes: ['default dev wan', 'default6 dev wan'],
  }),
  rules: { ipv4: restore({ nat: ['-A POSTROUTING -o eth1 -j MASQUERADE'] }), ipv6: restore({ nat: ['-A POSTROUTING -o eth1 -j MASQUERADE'] }) },
  inputs: [at(0, 'eth0', udp('192.168.18.2:5000', '203.0.113.9:53', 'v4')), at(0, 'eth0', udp('[fd00:18::2]:5000', '[2001:db8::9]:53', 'v6'))],
  expectKernel(run) {
    expect(run.steps.map((s) => s.emitted.map((e) => [e.device, e.packet.src]))).toEqual([[['eth1', A('192.168.18.1')]], [['eth1', A('fd00:18::1')]]]);
  },
};

describe.skipIf(!env.run)('MASQUERADE source address (kernel)', () => {
  for (const s of [outOfLo, outOfLo6, noAddressOnTheWay]) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
