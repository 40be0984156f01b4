import { describe, expect, it } from 'vitest';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type Scenario, addr, at, checkScenario, restore, udp } from './harness/index.js';

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

describe.skipIf(!env.run)('routing decisions on the kernel', () => {
  for (const s of [zeroNet, loopbackSource]) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
