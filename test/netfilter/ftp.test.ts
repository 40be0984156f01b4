import { describe, expect, it } from 'vitest';
import { CT_STATUS } from '../../src/ir/fields.js';
import { expectationLine } from '../../src/netfilter/format.js';
import { addr, at, chain, ctHelper, dnat, dport, host, iif, masquerade, oif, policy, proto, rule, simulate, table, tcp } from './support/build.js';

/**
 * The FTP helper end to end: CT --helper ftp in raw, expectations from 227/PORT, the RELATED
 * data connection, and under NAT the rewritten command with sequence adjustment
 * (nf_conntrack_ftp.c help(), nf_nat_ftp.c, nf_conntrack_seqadj.c; reasoning in each step).
 */
const gw = host({
  interfaces: [
    { name: 'lan', device: 'eth0', addrs: ['10.0.0.1/24'] },
    { name: 'wan', device: 'eth1', addrs: ['203.0.113.5/24'] },
  ],
  routes: [{ dest: 'default', via: '203.0.113.1', device: 'eth1' }],
});

const CLIENT = '198.51.100.7';
const PUBLIC = '203.0.113.5';
const SERVER = '10.0.0.21';

function ftpPolicy() {
  return policy(gw, [
    table('raw', [chain('PREROUTING', [rule([iif('eth1'), proto('tcp'), dport(21)], ctHelper('ftp'))]), chain('OUTPUT', [])]),
    table('nat', [
      chain('PREROUTING', [rule([iif('eth1'), proto('tcp'), dport(21)], dnat(`${SERVER}:21`))]),
      chain('INPUT', []),
      chain('OUTPUT', []),
      chain('POSTROUTING', [rule([oif('eth1')], masquerade())]),
    ]),
  ]);
}

describe('FTP helper behind DNAT (passive mode)', () => {
  it('rewrites the 227 address, expects the data connection, DNATs it RELATED, adjusts acks', () => {
    const sim = simulate(ftpPolicy());
    const c = (t: number, flags: string, seq: number, ack: number, payload = '') =>
      sim.process(at(t, 'eth1', tcp({ src: CLIENT, sport: 40000, dst: PUBLIC, dport: 21, flags, seq, ack, payload })));
    const s = (t: number, flags: string, seq: number, ack: number, payload = '') =>
      sim.process(at(t, 'eth0', tcp({ src: SERVER, sport: 21, dst: CLIENT, dport: 40000, flags, seq, ack, payload })));

    expect(c(0, 'S', 100, 0).egress!.packet.dst).toBe(addr(SERVER));
    s(0.01, 'SA', 5000, 101);
    c(0.02, 'A', 101, 5001);
    expect(sim.entries()[0].helper).toBe('ftp');
    // The first data segment of each direction is never parsed; it teaches the helper where
    // the next line starts (it ends in "\n").
    const banner = '220 ready\r\n';
    s(0.03, 'PA', 5001, 101, banner);
    const pasv = 'PASV\r\n';
    c(0.04, 'PA', 101, 5001 + banner.length, pasv);
    // 227 announces the server's own address and port 195*256+80 = 50000. The connection is
    // NATed, so nf_nat_ftp rewrites it to where the client connected (the public address).
    const reply227 = '227 Entering Passive Mode (10,0,0,21,195,80).\r\n';
    const r = s(0.05, 'PA', 5001 + banner.length, 101 + pasv.length, reply227);
    const sent = new TextDecoder().decode(r.egress!.packet.payload);
    expect(sent).toBe('227 Entering Passive Mode (203,0,113,5,195,80).\r\n');
    // "10,0,0,21" became "203,0,113,5": two bytes longer.
    expect(r.egress!.packet.payload.length).toBe(reply227.length + 2);
    const [control] = sim.entries();
    expect(control.status & CT_STATUS.SEQ_ADJUST).toBeTruthy();

    // The expectation: from the client (any port) to the public address, port 50000 (the
    // announced one, free), for 300 s (the ftp helper's expect policy).
    expect(sim.expectations().map(expectationLine)).toEqual([
      `300 proto=6 src=${CLIENT} dst=${PUBLIC} sport=0 dport=50000 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 master-src=${CLIENT} master-dst=${PUBLIC} sport=40000 dport=21 class=0 helper=ftp`,
    ]);

    // The client acknowledges what it received (2 bytes more); the gateway shifts the ack back.
    const ackAfter = 5001 + banner.length + reply227.length + 2;
    const ackPkt = c(0.06, 'A', 101 + pasv.length, ackAfter);
    expect(ackPkt.ctState).toBe('ESTABLISHED');
    expect(ackPkt.egress!.packet.tcp!.ack).toBe(ackAfter - 2);

    // The data connection: client → public:50000, expected, RELATED, DNATed to the server.
    const data = sim.process(at(0.07, 'eth1', tcp({ src: CLIENT, sport: 40001, dst: PUBLIC, dport: 50000, flags: 'S', seq: 900 })));
    expect(data.ctState).toBe('RELATED');
    expect(data.verdict).toBe('forwarded');
    expect(data.egress!.packet).toMatchObject({ dst: addr(SERVER), dport: 50000, src: addr(CLIENT), sport: 40001 });
    const dataEntry = sim.entries()[1];
    expect(dataEntry.status & CT_STATUS.EXPECTED).toBeTruthy();
    expect(dataEntry.reply).toMatchObject({ src: addr(SERVER), sport: 50000, dst: addr(CLIENT), dport: 40001 });
    // The expectation is used up: a second connection to the same port is new, not RELATED.
    const again = sim.process(at(0.08, 'eth1', tcp({ src: CLIENT, sport: 40002, dst: PUBLIC, dport: 50000, flags: 'S', seq: 900 })));
    expect(again.ctState).toBe('NEW');
  });

  it('a command that does not start a known line is not parsed (no expectation)', () => {
    const sim = simulate(ftpPolicy());
    sim.process(at(0, 'eth1', tcp({ src: CLIENT, sport: 40000, dst: PUBLIC, dport: 21, flags: 'S', seq: 100 })));
    sim.process(at(0.01, 'eth0', tcp({ src: SERVER, sport: 21, dst: CLIENT, dport: 40000, flags: 'SA', seq: 5000, ack: 101 })));
    sim.process(at(0.02, 'eth1', tcp({ src: CLIENT, sport: 40000, dst: PUBLIC, dport: 21, flags: 'A', seq: 101, ack: 5001 })));
    // The 227 is the server's first data segment: the helper has no newline position yet.
    const r = sim.process(at(0.03, 'eth0', tcp({ src: SERVER, sport: 21, dst: CLIENT, dport: 40000, flags: 'PA', seq: 5001, ack: 101, payload: '227 Entering Passive Mode (10,0,0,21,195,80).\r\n' })));
    expect(new TextDecoder().decode(r.egress!.packet.payload)).toContain('10,0,0,21');
    const data = sim.process(at(0.04, 'eth1', tcp({ src: CLIENT, sport: 40001, dst: PUBLIC, dport: 50000, flags: 'S', seq: 900 })));
    expect(data.ctState).toBe('NEW');
  });
});
