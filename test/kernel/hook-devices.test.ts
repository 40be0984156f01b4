import { describe, expect, it } from 'vitest';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type Scenario, at, checkScenario, hostModel, restore, udp } from './harness/index.js';

/**
 * Which devices `-i`/`-o` see in each hook, where iptables lets a rule ask (in a user chain,
 * which iptables does not check against the hook it is called from). ~1 s.
 */
const env = harnessAvailable();

const CHECK = (chain: string) => [`-A ${chain} -j chk`, '-A chk -i eth0', '-A chk -i eth1', '-A chk -i lo', '-A chk'];

/**
 * POSTROUTING: ip_output and ip6_output pass the packet's device so far (skb->dev) as the hook's
 * input device, which for a forwarded packet is the one it came in by: a `-i` test sees it.
 * A locally generated packet has none (the raw socket's packets match neither eth0, eth1 nor
 * lo, also when they loop back through lo). Found by the differential property (seed 1002: the
 * simulator saw no input device in POSTROUTING and decremented the hop limit of a packet that
 * `! -i eth1` should have spared).
 */
const postroutingIn: Scenario = {
  name: 'POSTROUTING sees the input device of a forwarded packet, none for a local one',
  host: GATEWAY,
  rules: {
    ipv4: restore({ mangle: CHECK('POSTROUTING') }),
    ipv6: restore({ mangle: CHECK('POSTROUTING') }),
  },
  inputs: [
    at(0, 'eth0', udp('192.168.18.5:4000', '198.51.100.7:53', 'fwd4')),
    at(0, 'eth0', udp('[fd00:18::5]:4000', '[2001:db8:77::5]:53', 'fwd6')),
    at(0, 'local', udp('192.168.20.1:4000', '198.51.100.7:53', 'out4')),
    at(0, 'local', udp('[fd00:20::1]:4000', '[2001:db8:77::5]:53', 'out6')),
    at(0, 'local', udp('192.168.20.1:4000', '192.168.18.1:53', 'self4')),
    at(0, 'local', udp('[fd00:20::1]:4000', '[fd00:18::1]:53', 'self6')),
  ],
  expectKernel(run) {
    const counts = (f: 'ipv4' | 'ipv6') => run.final.chains.find((c) => c.family === f && c.table === 'mangle' && c.chain === 'chk')!.rules.map((r) => r.packets);
    // -i eth0, -i eth1, -i lo, everything: the forwarded packet and the two local ones.
    expect([counts('ipv4'), counts('ipv6')]).toEqual([
      [1, 0, 0, 3],
      [1, 0, 0, 3],
    ]);
  },
};

/**
 * OUTPUT after nat OUTPUT rerouted a packet: the hook's output device was fixed when OUTPUT
 * began (__ip_local_out and __ip6_local_out pass the first route's device), so filter OUTPUT
 * still sees that device; POSTROUTING sees the one the packet leaves by. Here NETMAP sends
 * packets for a wan address out of mgmt, and `-o` answers wan until POSTROUTING. Found by the
 * differential property (seed 1014: the simulator's filter OUTPUT saw the new device).
 */
const DEVS = (chain: string) => ['eth1', 'veth'].map((d) => `-A ${chain} -o ${d}`);
const outputAfterReroute: Scenario = {
  name: 'filter OUTPUT still sees the first route\'s device after nat OUTPUT rerouted; POSTROUTING the new one',
  host: hostModel({
    interfaces: { wan: ['eth1', '192.168.20.1/24', '2001:db8::1/64'], mgmt: ['veth', '172.16.0.1/24', 'fd00:ee::1/64'] },
    routes: ['default via 172.16.0.254 dev mgmt', 'default6 via fd00:ee::fe dev mgmt'],
  }),
  rules: {
    ipv4: restore({ nat: ['-A OUTPUT -p udp -j NETMAP --to 198.51.100.0/24'], filter: DEVS('OUTPUT'), mangle: DEVS('POSTROUTING') }),
    ipv6: restore({ nat: ['-A OUTPUT -p udp -j NETMAP --to 2001:db8:77::/64'], filter: DEVS('OUTPUT'), mangle: DEVS('POSTROUTING') }),
  },
  inputs: [at(0, 'local', udp('192.168.20.1:4000', '192.168.20.7:53', 'v4')), at(0, 'local', udp('[2001:db8::1]:4000', '[2001:db8::7]:53', 'v6'))],
  expectKernel(run) {
    expect(run.steps.map((s) => s.emitted.map((e) => e.device))).toEqual([['veth'], ['veth']]);
    const counts = (f: 'ipv4' | 'ipv6', table: string, chain: string) => run.final.chains.find((c) => c.family === f && c.table === table && c.chain === chain)!.rules.map((r) => r.packets);
    // -o eth1, -o veth
    for (const f of ['ipv4', 'ipv6'] as const) {
      expect(counts(f, 'filter', 'OUTPUT')).toEqual([1, 0]);
      expect(counts(f, 'mangle', 'POSTROUTING')).toEqual([0, 1]);
    }
  },
};

describe.skipIf(!env.run)('devices seen by rules per hook, on the kernel', () => {
  for (const s of [postroutingIn, outputAfterReroute]) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
