import { describe, expect, it } from 'vitest';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type Scenario, at, checkScenario, restore, tcp, udp } from './harness/index.js';

/**
 * The host's own answers carry the connection of the packet they answer before any table sees
 * them: icmp_send's icmp_glue_bits (and icmpv6_getfrag) and nf_send_reset call nf_ct_attach,
 * so the ICMP error of a REJECT and its TCP reset are RELATED already in raw/OUTPUT — in the
 * reply direction of the connection of the packet that came in. A raw/OUTPUT rule about
 * RELATED packets therefore stops them, and the port-9 rule below (it reads the connection's
 * original destination port) tells the two UDP connections apart. Found by the diff's trust
 * property (seed 2: widening a raw/OUTPUT `ct direction original` rule was called a no-op).
 * ~1 s.
 */
const env = harnessAvailable();

const answers: Scenario = {
  name: 'a REJECT\u2019s ICMP error and TCP reset are RELATED in raw/OUTPUT, with the connection they answer',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      raw: ['-A OUTPUT -p icmp -m conntrack --ctstate RELATED --ctdir REPLY --ctorigdstport 9 -j DROP', '-A OUTPUT -p tcp -m conntrack --ctstate RELATED -j DROP', '-A OUTPUT -m conntrack --ctstate RELATED'],
      filter: ['-A INPUT -p udp -j REJECT', '-A INPUT -p tcp -j REJECT --reject-with tcp-reset'],
    }),
  },
  inputs: [
    at(0, 'eth0', udp('192.168.18.5:4000', '192.168.18.1:9', 'port 9')),
    at(0, 'eth0', udp('192.168.18.5:4001', '192.168.18.1:10', 'port 10')),
    at(0, 'eth0', tcp('192.168.18.5:4002', '192.168.18.1:22', 'S')),
  ],
  expectKernel(run) {
    // Only the answer about port 10 leaves (an ICMP error back to the sender).
    expect(run.steps.map((s) => s.emitted.map((e) => [e.device, e.packet.proto]))).toEqual([[], [['eth0', 1]], []]);
    const raw = run.final.chains.find((c) => c.family === 'ipv4' && c.table === 'raw' && c.chain === 'OUTPUT')!.rules.map((r) => r.packets);
    expect(raw).toEqual([1, 1, 1]);
  },
};

describe.skipIf(!env.run)('the host\u2019s own answers in raw/OUTPUT (kernel)', () => {
  it(answers.name, async () => {
    await checkScenario(answers);
  });
});
