import { describe, expect, it } from 'vitest';
import { CT_STATUS } from '../../src/ir/fields.js';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type Scenario, addr, at, restore, checkScenario, tcp } from './harness/index.js';

/**
 * The source document's worked example on the real kernel: 192.168.18.2:120 connects to
 * 202.10.10.1:30 through a gateway that SNATs to 192.168.20.1:450. The expected values are the
 * document's (BRIEF.md), derived by hand, not taken from a run; the simulator must agree with
 * the kernel on every packet, the entry and the counters. ~1 s.
 */
const env = harnessAvailable();
const A = (s: string): bigint => addr(s).value;

export const SEED: Scenario = {
  name: 'seed: SNAT to 192.168.20.1:450, reply tuple and reply delivery',
  host: GATEWAY,
  rules: { ipv4: restore({ nat: ['-A POSTROUTING -s 192.168.18.0/24 -o eth1 -p tcp -j SNAT --to-source 192.168.20.1:450'] }) },
  inputs: [
    at(0, 'eth0', tcp('192.168.18.2:120', '202.10.10.1:30', 'S', { seq: 1000 })),
    at(0, 'eth1', tcp('202.10.10.1:30', '192.168.20.1:450', 'SA', { seq: 5000, ack: 1001 })),
    at(0, 'eth0', tcp('192.168.18.2:120', '202.10.10.1:30', 'A', { seq: 1001, ack: 5001 })),
  ],
  expectKernel(run) {
    const [syn, synack, ack] = run.steps;
    // The SYN leaves by wan with the SNAT source, one hop fewer.
    expect(syn.emitted).toHaveLength(1);
    expect(syn.emitted[0]).toMatchObject({ device: 'eth1', checksumOk: true });
    expect(syn.emitted[0].packet).toMatchObject({ src: A('192.168.20.1'), sport: 450, dst: A('202.10.10.1'), dport: 30, ttl: 63 });
    // The reply to 192.168.20.1:450 is de-NATed and delivered to 192.168.18.2:120.
    expect(synack.emitted).toHaveLength(1);
    expect(synack.emitted[0].device).toBe('eth0');
    expect(synack.emitted[0].packet).toMatchObject({ src: A('202.10.10.1'), sport: 30, dst: A('192.168.18.2'), dport: 120 });
    expect(ack.emitted.map((e) => e.device)).toEqual(['eth1']);

    expect(run.final.entries).toHaveLength(1);
    const e = run.final.entries[0];
    expect(e.original).toMatchObject({ src: A('192.168.18.2'), dst: A('202.10.10.1'), sport: 120, dport: 30 });
    expect(e.reply).toMatchObject({ src: A('202.10.10.1'), dst: A('192.168.20.1'), sport: 30, dport: 450 });
    expect(e.tcpState).toBe('ESTABLISHED');
    expect(e.status & CT_STATUS.ASSURED).toBeTruthy();
    expect(e.status & CT_STATUS.SRC_NAT).toBeTruthy();
    expect(run.final.count).toBe(1);
    // The nat table sees only the first packet of the connection: one SNAT hit (a 40-byte SYN).
    const post = run.final.chains.find((c) => c.table === 'nat' && c.chain === 'POSTROUTING')!;
    expect(post.rules[0]).toMatchObject({ packets: 1, bytes: 40 });
    expect(post.policy).toMatchObject({ packets: 0 });
  },
};

describe.skipIf(!env.run)('seed scenario: SNAT reply tuple (kernel)', () => {
  it(SEED.name, async () => {
    await checkScenario(SEED);
  });

  it('the same with the rules loaded by iptables-nft (nf_tables) instead of iptables-legacy', async () => {
    await checkScenario({ ...SEED, topology: { backend: 'nft' } });
  });
});
