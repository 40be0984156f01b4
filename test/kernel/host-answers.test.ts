import { describe, expect, it } from 'vitest';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type KernelRun, type Scenario, at, checkScenario, restore, tcp, udp } from './harness/index.js';

/**
 * Packets the host makes itself, as `-m owner` sees them. ICMP errors leave from the kernel's
 * ICMP control socket (icmp_send / icmp6_send take a per-cpu socket and set its netns for the
 * send), so `--socket-exists` holds; that socket has no file, so xt_owner fails every uid/gid
 * test and every negated one holds. A REJECT reset is built without a socket (nf_send_reset):
 * only the negated tests hold. Found by the differential property (the simulator sent ICMPv6
 * errors without a socket). ~1 s.
 */
const env = harnessAvailable();

const OWNER_RULES = ['-A OUTPUT -m owner --socket-exists', '-A OUTPUT -m owner --uid-owner 0', '-A OUTPUT -m owner ! --uid-owner 0', '-A OUTPUT -m owner ! --socket-exists'];

const counts = (run: KernelRun, family: 'ipv4' | 'ipv6') =>
  run.final.chains.find((c) => c.family === family && c.table === 'filter' && c.chain === 'OUTPUT')!.rules.map((r) => r.packets);

const ownerOfAnswers: Scenario = {
  name: 'ICMP errors the host sends have a socket without owner; REJECT resets have none',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      filter: [
        '-A INPUT -p udp -j REJECT --reject-with icmp-port-unreachable',
        '-A INPUT -p tcp -j REJECT --reject-with tcp-reset',
        ...OWNER_RULES,
      ],
    }),
    ipv6: restore({ filter: ['-A INPUT -p udp -j REJECT --reject-with icmp6-adm-prohibited', ...OWNER_RULES] }),
  },
  inputs: [
    at(0, 'eth0', udp('192.168.18.2:4000', '192.168.18.1:53', 'q')),
    at(0, 'eth0', tcp('192.168.18.2:4001', '192.168.18.1:80', 'S', { seq: 100 })),
    at(0, 'eth0', udp('[fd00:18::2]:4000', '[fd00:18::1]:53', 'q')),
  ],
  expectKernel(run) {
    expect(run.steps.map((s) => s.emitted.map((e) => e.packet.proto))).toEqual([[1], [6], [58]]);
    // ICMP error: socket exists, not uid 0, "not uid 0"; the reset: only "not uid 0" and "no socket".
    expect(counts(run, 'ipv4')).toEqual([1, 0, 2, 1]);
    expect(counts(run, 'ipv6')).toEqual([1, 0, 1, 0]);
  },
};

describe.skipIf(!env.run)('packets the host makes (kernel)', () => {
  it(ownerOfAnswers.name, async () => {
    await checkScenario(ownerOfAnswers);
  });
});
