import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { CliContext } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import { readCapture, writePcapng } from '../../src/netfilter/pcap.js';
import { tcp } from './support/build.js';
import { SourceFiles } from '../../src/util/sources.js';

/**
 * `nfproof simulate`: the seed example from files, the report, JSON output, pcap output, and
 * input errors (exit 2, `FILE:line:` message, nothing on stdout).
 */
function run(args: string[]): { code: Promise<number>; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  const sink = (f: (s: string) => void) => new Writable({ write: (c, _e, cb) => (f(String(c)), cb()) });
  const ctx: CliContext = { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)), color: false, isTTY: false, sources: new SourceFiles() };
  return { code: main(['node', 'nfproof', ...args], ctx), out: () => out, err: () => err };
}

// Our own made-up gateway, in the iptables-save form the importer reads (no host model: the
// packet file gives each packet's route), and the same in the DSL with a host model.
const SAVE = [
  '*nat',
  ':PREROUTING ACCEPT [0:0]',
  ':INPUT ACCEPT [0:0]',
  ':OUTPUT ACCEPT [0:0]',
  ':POSTROUTING ACCEPT [0:0]',
  '-A POSTROUTING -s 192.168.18.0/24 -o eth1 -p tcp -j SNAT --to-source 192.168.20.1:450',
  'COMMIT',
  '',
].join('\n');

const NFP = `host gw {
  interface lan dev eth0 address 192.168.18.1/24
  interface wan dev eth1 address 192.168.20.1/24
  route default via 192.168.20.254 dev wan
}
table ip nat {
  chain postrouting {
    oif wan saddr 192.168.18.0/24 tcp snat to 192.168.20.1:450
  }
}
`;

const PACKETS = [
  '# the seed example',
  '{"t": 0, "iface": "lan", "src": "192.168.18.2", "dst": "202.10.10.1", "proto": "tcp", "sport": 120, "dport": 30, "flags": "S", "seq": 1000}',
  '{"t": 0.01, "iface": "wan", "src": "202.10.10.1", "dst": "192.168.20.1", "proto": "tcp", "sport": 30, "dport": 450, "flags": "SA"}',
  '',
].join('\n');

function files(policyText: string, name: string, packets = PACKETS): { dir: string; policy: string; packets: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nfp-sim-'));
  writeFileSync(join(dir, name), policyText);
  writeFileSync(join(dir, 'p.jsonl'), packets);
  return { dir, policy: join(dir, name), packets: join(dir, 'p.jsonl') };
}

describe('nfproof simulate', () => {
  it('prints the path, the SNAT entry in both formats and the counters', async () => {
    const f = files(NFP, 'gw.nfp');
    const r = run(['simulate', f.policy, '--packets', f.packets]);
    expect(await r.code).toBe(0);
    const out = r.out();
    expect(out).toContain(`POSTROUTING nat      POSTROUTING #1 (${f.policy}:8): snat to 192.168.20.1:450`);
    expect(out).toContain('=> forwarded out of eth1: tcp 192.168.20.1:450 → 202.10.10.1:30 [S] seq=1000 ttl=63');
    // The reply (seq/ack left out: filled from the connection) is delivered to the client.
    expect(out).toContain('=> forwarded out of eth0: tcp 202.10.10.1:30 → 192.168.18.2:120 [SA]');
    expect(out).toMatch(/tcp {6}6 \d+ SYN_RECV src=192\.168\.18\.2 dst=202\.10\.10\.1 sport=120 dport=30 src=202\.10\.10\.1 dst=192\.168\.20\.1 sport=30 dport=450 mark=0 use=1/);
    expect(out).toMatch(/ipv4 {5}2 tcp {6}6 \d+ SYN_RECV src=192\.168\.18\.2 .* zone=0 use=2/);
    expect(out).toContain('net.netfilter.nf_conntrack_count = 1');
    expect(out).toContain('Chain POSTROUTING (policy ACCEPT 0 packets, 0 bytes)');
  });

  it('--format json gives the outcome of each packet and the table', async () => {
    const f = files(NFP, 'gw.nfp');
    const r = run(['simulate', f.policy, '--packets', f.packets, '--format', 'json']);
    expect(await r.code).toBe(0);
    const doc = JSON.parse(r.out());
    expect(doc.packets).toHaveLength(2);
    expect(doc.packets[0]).toMatchObject({ line: 2, verdict: 'forwarded', ctState: 'NEW', egress: { iface: 'eth1', packet: { src: '192.168.20.1', sport: 450 } } });
    expect(doc.packets[1].packet.ack).toBe(1001);
    expect(doc.conntrack[0]).toMatchObject({ original: { src: '192.168.18.2', sport: 120 }, reply: { dst: '192.168.20.1', dport: 450 } });
    expect(doc.count).toBe(1);
  });

  it('runs an imported dump when the packets carry their route', async () => {
    const packets = [
      '{"t": 0, "iface": "eth0", "route": "eth1", "src": "192.168.18.2", "dst": "202.10.10.1", "proto": "tcp", "sport": 120, "dport": 30, "flags": "S", "seq": 1000}',
      '',
    ].join('\n');
    const f = files(SAVE, 'gw.save', packets);
    const r = run(['simulate', f.policy, '--packets', f.packets, '--format', 'json']);
    expect(await r.code).toBe(0);
    const doc = JSON.parse(r.out());
    expect(doc.packets[0].egress).toMatchObject({ iface: 'eth1', packet: { src: '192.168.20.1', sport: 450 } });
  });

  it('writes what leaves to a pcapng file with the interfaces', async () => {
    const f = files(NFP, 'gw.nfp');
    const out = join(f.dir, 'out.pcapng');
    const r = run(['simulate', f.policy, '--packets', f.packets, '--pcap-out', out]);
    expect(await r.code).toBe(0);
    const cap = readCapture(readFileSync(out));
    expect(cap.ok).toBe(true);
    if (!cap.ok) return;
    expect(cap.records.map((x) => x.iface)).toEqual(['eth1', 'eth0']);
  });

  it('reads packets from a capture (pcapng interface names say where each arrived)', async () => {
    const f = files(NFP, 'gw.nfp');
    const cap = join(f.dir, 'in.pcapng');
    const syn = tcp({ src: '192.168.18.2', sport: 120, dst: '202.10.10.1', dport: 30, flags: 'S', seq: 1000 });
    writeFileSync(cap, writePcapng([{ t: 1700000000.5, packet: syn, iface: 'eth0' }]));
    const r = run(['simulate', f.policy, '--pcap', cap, '--format', 'json']);
    expect(await r.code).toBe(0);
    const doc = JSON.parse(r.out());
    // Times are taken relative to the first packet of the capture.
    expect(doc.packets[0]).toMatchObject({ t: 0, iface: 'eth0', verdict: 'forwarded', egress: { packet: { src: '192.168.20.1', sport: 450 } } });
  });

  it.each([
    ['a malformed line', '{"t": 0, "iface": "lan", "src": "192.168.18.2"', /p\.jsonl:1: not valid JSON/],
    ['an unknown interface', '{"t": 0, "iface": "eth9", "src": "192.168.18.2", "dst": "1.2.3.4", "proto": "udp", "sport": 1, "dport": 2}', /p\.jsonl:1: unknown interface "eth9"/],
    ['a family mismatch', '{"t": 0, "iface": "lan", "src": "192.168.18.2", "dst": "2001:db8::1", "proto": "udp", "sport": 1, "dport": 2}', /p\.jsonl:1: address family mismatch/],
    ['time going backwards', '{"t": 1, "iface": "lan", "src": "192.168.18.2", "dst": "1.2.3.4", "proto": "icmp"}\n{"t": 0, "iface": "lan", "src": "192.168.18.2", "dst": "1.2.3.4", "proto": "icmp"}', /p\.jsonl:2: "t" goes backwards/],
    ['TCP without flags', '{"t": 0, "iface": "lan", "src": "192.168.18.2", "dst": "1.2.3.4", "proto": "tcp", "sport": 1, "dport": 2}', /p\.jsonl:1: a TCP packet needs "flags"/],
  ])('rejects %s with FILE:line, exit 2 and no output', async (_what, line, message) => {
    const f = files(NFP, 'gw.nfp', `${line}\n`);
    const r = run(['simulate', f.policy, '--packets', f.packets]);
    expect(await r.code).toBe(2);
    expect(r.err()).toMatch(message);
    expect(r.out()).toBe('');
  });

  it('rejects an unknown sysctl and a bad --max-entries', async () => {
    const f = files(NFP, 'gw.nfp');
    const a = run(['simulate', f.policy, '--packets', f.packets, '--sysctl', 'nf_conntrack_bogus=1']);
    expect(await a.code).toBe(2);
    expect(a.err()).toContain('unknown sysctl');
    const b = run(['simulate', f.policy, '--packets', f.packets, '--max-entries', 'lots']);
    expect(await b.code).toBe(2);
    expect(b.out()).toBe('');
  });
});
