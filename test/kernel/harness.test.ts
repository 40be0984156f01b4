import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROTO, TCP_FLAG } from '../../src/ir/fields.js';
import { readCapture } from '../../src/netfilter/pcap.js';
import { normalizePacket } from '../../src/netfilter/wire.js';
import { harnessAvailable } from './harness/env.js';
import { type Topology, addr, at, hostModel, replay, tcp, udp, withTopology } from './harness/index.js';

/**
 * The harness checks itself: what it promises (peers never answer, every effect of a packet is
 * captured in that packet's step, local delivery is seen after conntrack confirm and the local
 * stack stays quiet, REJECT answers still go out, IPv6 works without neighbour discovery,
 * nothing is left behind) is asserted here on the kernel. ~2 s.
 */
const env = harnessAvailable();

const host = hostModel({
  interfaces: { lan: ['eth0', '192.168.18.1/24', 'fd00:18::1/64'], wan: ['eth1', '192.168.20.1/24', 'fd00:20::1/64'] },
  routes: ['default via 192.168.20.254 dev wan', 'default6 via fd00:20::fe dev wan'],
});

/** A filter table that needs conntrack (so entries exist) and rejects telnet/tftp. */
const FILTER_V4 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset
-A INPUT -p udp -m udp --dport 69 -j REJECT --reject-with icmp-port-unreachable
-A INPUT -m conntrack --ctstate NEW
COMMIT
`;

const FILTER_V6 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate NEW
COMMIT
`;

async function withFirewall(fn: (t: Topology) => Promise<void>): Promise<void> {
  await withTopology(host, {}, async (topo) => {
    topo.loadRules('ipv4', FILTER_V4);
    topo.loadRules('ipv6', FILTER_V6);
    await fn(topo);
  });
}

describe.skipIf(!env.run)('kernel harness self-checks', () => {
  it('captures each packet in its own step, and peers never answer', async () => {
    await withFirewall(async (topo) => {
      const inputs = Array.from({ length: 150 }, (_, i) => at(0, 'eth0', udp(`192.168.18.2:${10000 + i}`, '198.51.100.7:53', `q${i}`)));
      const run = await replay(topo, inputs, { families: ['ipv4'] });
      expect(run.stray).toEqual([]);
      run.steps.forEach((s, i) => {
        expect(s.emitted.map((e) => [e.device, e.packet.sport, e.packet.ttl])).toEqual([['eth1', 10000 + i, 63]]);
        expect(s.other).toEqual([]);
      });
      expect(run.final.count).toBe(150);
    });
  });

  it('sees local delivery after conntrack confirm, and the local stack sends nothing back', async () => {
    await withFirewall(async (topo) => {
      const syn = tcp('192.168.18.2:40000', '192.168.18.1:22', 'S', { seq: 7 });
      const run = await replay(topo, [at(0, 'eth0', syn)], { families: ['ipv4'] });
      const [s] = run.steps;
      expect(s.delivered).toEqual([{ packet: normalizePacket(syn), indev: 'eth0' }]);
      // No socket listens on port 22, yet no RST: the harness drops delivered packets after confirm.
      expect(s.emitted).toEqual([]);
      expect(run.final.entries).toHaveLength(1);
      expect(run.final.entries[0]).toMatchObject({ tcpState: 'SYN_SENT', original: { dport: 22 } });
    });
  });

  it('lets REJECT answers out: a TCP reset and an ICMP port unreachable', async () => {
    await withFirewall(async (topo) => {
      const run = await replay(
        topo,
        [
          at(0, 'eth0', tcp('192.168.18.2:40001', '192.168.18.1:23', 'S', { seq: 100 })),
          at(0, 'eth0', udp('192.168.18.2:40002', '192.168.18.1:69', 'x')),
        ],
        { families: ['ipv4'] },
      );
      const [rst, unreach] = run.steps;
      expect(rst.delivered).toEqual([]);
      expect(rst.emitted).toHaveLength(1);
      expect(rst.emitted[0].device).toBe('eth0');
      // A reset answering a SYN acknowledges it (seq+1) and carries sequence number 0.
      expect(rst.emitted[0].packet).toMatchObject({ src: addr('192.168.18.1').value, sport: 23, dport: 40001, tcp: { flags: TCP_FLAG.RST | TCP_FLAG.ACK, seq: 0, ack: 101 } });
      expect(unreach.emitted).toHaveLength(1);
      expect(unreach.emitted[0].packet.icmp).toMatchObject({ type: 3, code: 3, inner: { sport: 40002, dport: 69 } });
      expect(rst.emitted[0].checksumOk && unreach.emitted[0].checksumOk).toBe(true);
    });
  });

  it('sends locally generated packets through OUTPUT, to the wire or back in by loopback', async () => {
    await withFirewall(async (topo) => {
      const out = udp('192.168.20.1:5000', '198.51.100.7:53', 'q');
      const self = udp('192.168.18.1:5001', '192.168.20.1:53', 'r');
      const run = await replay(topo, [at(0, 'local', out), at(0, 'local', self)], { families: ['ipv4'] });
      expect(run.steps[0].emitted.map((e) => [e.device, e.packet.ttl, e.packet.sport])).toEqual([['eth1', 64, 5000]]);
      expect(run.steps[1].emitted).toEqual([]);
      expect(run.steps[1].delivered.map((d) => [d.indev, d.packet.sport])).toEqual([['lo', 5001]]);
    });
  });

  it('forwards IPv6 without neighbour discovery', async () => {
    await withFirewall(async (topo) => {
      const run = await replay(topo, [at(0, 'eth0', udp('[fd00:18::2]:5000', '[2001:db8::9]:53', 'v6'))], { families: ['ipv6'] });
      expect(run.stray).toEqual([]);
      expect(run.steps[0].emitted.map((e) => [e.device, e.packet.ttl, e.packet.proto])).toEqual([['eth1', 63, PROTO.udp]]);
      expect(run.final.entries.map((e) => e.family)).toEqual(['ipv6']);
    });
  });

  it('agrees with tcpdump on what left the firewall (and our pcap reader reads tcpdump)', async () => {
    await withFirewall(async (topo) => {
      const dir = mkdtempSync(join(tmpdir(), 'nfproof-harness-'));
      try {
        const file = join(dir, 'wan.pcap');
        const wan = topo.link('eth1');
        const dump = spawn('ip', ['netns', 'exec', wan.peer.name, 'tcpdump', '-i', wan.peerDevice, '-U', '-n', '-c', '3', '-w', file, 'ip'], { stdio: ['ignore', 'ignore', 'pipe'] });
        const exited = new Promise<number>((resolve) => dump.on('exit', (c) => resolve(c ?? -1)));
        // tcpdump says "listening on …" once its capture is open: wait for that, not for a time.
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('tcpdump did not start')), 5000);
          dump.stderr.on('data', (d: Buffer) => {
            if (d.toString().includes('listening on')) {
              clearTimeout(timer);
              resolve();
            }
          });
        });
        const inputs = [0, 1, 2].map((i) => at(0, 'eth0', tcp(`192.168.18.2:${2000 + i}`, '198.51.100.7:80', 'S', { seq: i, mss: 1460, wscale: 7, sackPerm: true })));
        const run = await replay(topo, inputs, { families: ['ipv4'] });
        const timeout = setTimeout(() => dump.kill('SIGINT'), 5000);
        expect(await exited).toBe(0);
        clearTimeout(timeout);
        const cap = readCapture(readFileSync(file));
        expect(cap.ok).toBe(true);
        if (!cap.ok) return;
        expect(cap.records.map((r) => r.decoded?.ok && r.decoded.packet)).toEqual(run.steps.map((s) => s.emitted[0].packet));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  it('removes its namespaces and agent, also when the body throws', async () => {
    let names: string[] = [];
    let agentDone: Promise<void> | undefined;
    await expect(
      withTopology(host, {}, async (topo) => {
        names = [topo.fw.name, ...[...topo.links.values()].map((l) => l.peer.name)];
        agentDone = topo.agent.done;
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(names).toHaveLength(3);
    for (const n of names) expect(left).not.toContain(n);
    // The agent exits once its stdin closes (resolves, or the test times out).
    await agentDone;
  });
});
