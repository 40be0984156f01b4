import { describe, expect, it } from 'vitest';
import { CT_STATUS } from '../../src/ir/fields.js';
import { harnessAvailable } from './harness/env.js';
import { addr, at, hostModel, replay, tcp, withTopology } from './harness/index.js';

/**
 * The source document's worked example on the real kernel: 192.168.18.2:120 connects to
 * 202.10.10.1:30 through a gateway that SNATs to 192.168.20.1:450. Expected values are the
 * document's (BRIEF.md), derived by hand, not taken from a run.
 */
const env = harnessAvailable();

const host = hostModel({
  interfaces: { lan: ['eth0', '192.168.18.1/24'], wan: ['eth1', '192.168.20.1/24'] },
  routes: ['default via 192.168.20.254 dev wan'],
});

const RULES = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 192.168.18.0/24 -o eth1 -p tcp -j SNAT --to-source 192.168.20.1:450
COMMIT
`;

describe.skipIf(!env.run)('seed scenario: SNAT reply tuple (kernel)', () => {
  it('rewrites the source, records the reply tuple and delivers the reply back', async () => {
    await withTopology(host, {}, async (topo) => {
      topo.loadRules('ipv4', RULES);
      const run = await replay(
        topo,
        [
          at(0, 'eth0', tcp('192.168.18.2:120', '202.10.10.1:30', 'S', { seq: 1000 })),
          at(0, 'eth1', tcp('202.10.10.1:30', '192.168.20.1:450', 'SA', { seq: 5000, ack: 1001 })),
          at(0, 'eth0', tcp('192.168.18.2:120', '202.10.10.1:30', 'A', { seq: 1001, ack: 5001 })),
        ],
        { families: ['ipv4'] },
      );
      expect(run.stray).toEqual([]);
      const [syn, synack, ack] = run.steps;
      // The SYN leaves by wan with the SNAT source, one hop fewer.
      expect(syn.emitted).toHaveLength(1);
      expect(syn.emitted[0]).toMatchObject({ device: 'eth1', checksumOk: true });
      expect(syn.emitted[0].packet).toMatchObject({ src: addr('192.168.20.1').value, sport: 450, dst: addr('202.10.10.1').value, dport: 30, ttl: 63 });
      // The reply to 192.168.20.1:450 is de-NATed and delivered to 192.168.18.2:120.
      expect(synack.emitted).toHaveLength(1);
      expect(synack.emitted[0].device).toBe('eth0');
      expect(synack.emitted[0].packet).toMatchObject({ src: addr('202.10.10.1').value, sport: 30, dst: addr('192.168.18.2').value, dport: 120 });
      expect(ack.emitted.map((e) => e.device)).toEqual(['eth1']);

      const entries = run.final.entries;
      expect(entries).toHaveLength(1);
      const e = entries[0];
      expect(e.original).toMatchObject({ src: addr('192.168.18.2').value, dst: addr('202.10.10.1').value, sport: 120, dport: 30 });
      expect(e.reply).toMatchObject({ src: addr('202.10.10.1').value, dst: addr('192.168.20.1').value, sport: 30, dport: 450 });
      expect(e.tcpState).toBe('ESTABLISHED');
      expect(e.status & CT_STATUS.ASSURED).toBeTruthy();
      expect(e.status & CT_STATUS.SRC_NAT).toBeTruthy();
      expect(run.final.count).toBe(1);
      // The nat table sees only the first packet of the connection: one SNAT hit.
      const post = run.final.chains.find((c) => c.table === 'nat' && c.chain === 'POSTROUTING')!;
      expect(post.rules[0]).toMatchObject({ packets: 1, bytes: 40 });
      expect(post.policy).toMatchObject({ packets: 0 });
    });
  });
});
