import { describe, expect, it } from 'vitest';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type Scenario, at, checkScenario, restore, udp } from './harness/index.js';

/**
 * When the kernel tracks connections at all: conntrack's hooks are registered per namespace
 * and per family only when a rule asks for them (nf_ct_netns_get in the extensions' checkentry).
 * `CT --notrack` and the old `NOTRACK` target do not ask (xt_ct_tg_check, notrack_chk). ~1 s.
 */
const env = harnessAvailable();

/**
 * IPv4 has only NOTRACK rules: nothing is tracked, for the packets they mark or any other.
 * IPv6 asks for conntrack with a state match: its packets get entries. Found by the
 * differential property (seed 1006: the simulator tracked IPv6 because of a notrack rule).
 */
const notrackAlone: Scenario = {
  name: 'NOTRACK alone does not turn conntrack on; a state match does, per family',
  host: GATEWAY,
  rules: {
    ipv4: restore({ raw: ['-A PREROUTING -p udp --dport 53 -j CT --notrack', '-A PREROUTING -p udp --dport 54 -j NOTRACK'], filter: ['-A FORWARD -p udp'] }),
    ipv6: restore({ filter: ['-A FORWARD -m conntrack --ctstate NEW'] }),
  },
  inputs: [
    at(0, 'eth0', udp('192.168.18.5:4000', '198.51.100.7:53', 'marked')),
    at(0, 'eth0', udp('192.168.18.5:4000', '198.51.100.7:54', 'marked')),
    at(0, 'eth0', udp('192.168.18.5:4000', '198.51.100.7:80', 'other')),
    at(0, 'eth0', udp('[fd00:18::5]:4000', '[2001:db8:77::5]:80', 'v6')),
  ],
  expectKernel(run) {
    expect(run.steps.map((s) => s.emitted.map((e) => e.device))).toEqual([['eth1'], ['eth1'], ['eth1'], ['eth1']]);
    expect(run.final.entries.map((e) => e.family)).toEqual(['ipv6']);
    expect(run.final.count).toBe(1);
  },
};

describe.skipIf(!env.run)('conntrack activation on the kernel', () => {
  for (const s of [notrackAlone]) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
