import { describe, expect, it } from 'vitest';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type Scenario, at, checkScenario, restore, udp } from './harness/index.js';

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

describe.skipIf(!env.run)('devices seen by rules per hook, on the kernel', () => {
  for (const s of [postroutingIn]) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
