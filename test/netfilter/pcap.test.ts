import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROTO, TCP_FLAG } from '../../src/ir/fields.js';
import type { Packet } from '../../src/netfilter/packet.js';
import { LINKTYPE, readCapture, writePcap, writePcapng } from '../../src/netfilter/pcap.js';
import { fromHex, normalizePacket } from '../../src/netfilter/wire.js';
import { parseAddress } from '../../src/util/ip.js';
import { requirement } from '../support/env.js';

const a = (s: string): bigint => parseAddress(s)!.value;

/**
 * Reference captures written by scapy 2.5.0 (wrpcap and PcapNgWriter): an IPv4 TCP SYN at
 * 1700000000.25, an ARP frame at .5 (pcap only) and an IPv6 UDP datagram at 1700000001.0,
 * all on Ethernet. Independent of our writer, so they check the reader.
 */
const SCAPY_PCAP =
  'd4c3b2a1020004000000000000000000ffff00000100000000f1536590d003003600000036000000020000000002020000000001080045000028000100004006d419c0a81202ca0a0a010078001e000003e800000000500203e800c7000000f1536520a107002a0000002a0000000200000000020200000000010806000108000604000102fc00000001c00002020000000000000000000001f15365000000003f0000003f00000002000000000202000000000186dd6000000000091105fd000000000000000000000000000001fd0000000000000000000000000000020001000200098dd478';
const SCAPY_PCAPNG =
  '0a0d0d0a1c0000004d3c2b1a0100000000000000000000001c0000000100000014000000010000000000040014000000060000005800000000000000240a0600901022183600000036000000020000000002020000000001080045000028000100004006d419c0a81202ca0a0a010078001e000003e800000000500203e800c70000000058000000060000006000000000000000240a060040822d183f0000003f00000002000000000202000000000186dd6000000000091105fd000000000000000000000000000001fd0000000000000000000000000000020001000200098dd4780060000000';

const syn: Packet = {
  family: 'ipv4',
  src: a('192.168.18.2'),
  dst: a('202.10.10.1'),
  proto: PROTO.tcp,
  ttl: 64,
  ipId: 1,
  sport: 120,
  dport: 30,
  tcp: { flags: TCP_FLAG.SYN, seq: 1000, ack: 0, window: 1000 },
  payload: new Uint8Array(0),
};
const udp6: Packet = { family: 'ipv6', src: a('fd00::1'), dst: a('fd00::2'), proto: PROTO.udp, ttl: 5, sport: 1, dport: 2, payload: Uint8Array.of(0x78) };

describe('readCapture', () => {
  it('reads a classic pcap written by another tool, skipping non-IP frames with a reason', () => {
    const r = readCapture(fromHex(SCAPY_PCAP));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.format).toBe('pcap');
    expect(r.records.map((x) => x.t)).toEqual([1700000000.25, 1700000000.5, 1700000001]);
    expect(r.records.every((x) => x.linkType === LINKTYPE.ETHERNET)).toBe(true);
    const [first, arp, third] = r.records;
    expect(first.decoded?.ok && first.decoded.packet).toEqual(normalizePacket(syn));
    expect(arp.skipped).toMatch(/ethertype 0x0806 is not IP/);
    expect(third.decoded?.ok && third.decoded.packet).toEqual(normalizePacket(udp6));
  });

  it('reads a pcapng written by another tool', () => {
    const r = readCapture(fromHex(SCAPY_PCAPNG));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.format).toBe('pcapng');
    expect(r.records.map((x) => x.t)).toEqual([1700000000.25, 1700000001]);
    expect(r.records.map((x) => x.decoded?.ok && x.decoded.packet)).toEqual([normalizePacket(syn), normalizePacket(udp6)]);
  });

  it('refuses what is not a capture, and truncated records', () => {
    expect(readCapture(new TextEncoder().encode('{"t":0}\n'))).toMatchObject({ ok: false, error: /unknown magic/ });
    const cut = fromHex(SCAPY_PCAP).subarray(0, 60);
    expect(readCapture(cut)).toMatchObject({ ok: false, error: /record 1/ });
  });
});

describe('writePcap / writePcapng', () => {
  const recs = [
    { t: 10.5, packet: syn, iface: 'eth1' },
    { t: 11.000001, packet: udp6, iface: 'eth0' },
    { t: 12, packet: { ...syn, ttl: 63 }, iface: 'eth1' },
  ];

  it('round-trips through our reader, pcapng keeping the interface names', () => {
    const classic = readCapture(writePcap(recs));
    expect(classic.ok && classic.records.map((r) => [r.t, r.decoded?.ok && r.decoded.packet])).toEqual(
      recs.map((r) => [r.t, normalizePacket(r.packet)]),
    );
    const ng = readCapture(writePcapng(recs));
    expect(ng.ok && ng.records.map((r) => [r.t, r.iface, r.decoded?.ok && r.decoded.packet])).toEqual(
      recs.map((r) => [r.t, r.iface, normalizePacket(r.packet)]),
    );
  });

  it('writes files tcpdump reads', () => {
    const have = spawnSync('sh', ['-c', 'command -v tcpdump']).status === 0;
    const req = requirement('tcpdump', have, 'tcpdump is not installed (apt-get install tcpdump)');
    if (!req.run) return;
    const dir = mkdtempSync(join(tmpdir(), 'nfproof-pcap-'));
    try {
      for (const [name, bytes] of [
        ['out.pcap', writePcap(recs)],
        ['out.pcapng', writePcapng(recs)],
      ] as const) {
        const file = join(dir, name);
        writeFileSync(file, bytes);
        const out = execFileSync('tcpdump', ['-nn', '-tt', '-r', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        const lines = out.trim().split('\n');
        expect(lines).toHaveLength(3);
        expect(lines[0]).toMatch(/^10\.500000 IP 192\.168\.18\.2\.120 > 202\.10\.10\.1\.30: Flags \[S\], seq 1000, win 1000/);
        expect(lines[1]).toMatch(/^11\.000001 IP6 fd00::1\.1 > fd00::2\.2: UDP, length 1/);
        expect(lines[2]).toMatch(/^12\.000000 IP 192\.168\.18\.2\.120 > 202\.10\.10\.1\.30/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
