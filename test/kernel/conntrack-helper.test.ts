import { describe, expect, it } from 'vitest';
import { CT_STATUS } from '../../src/ir/fields.js';
import type { Packet } from '../../src/netfilter/packet.js';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type KernelRun, type Scenario, addr, answer, at, restore, checkScenario, tcp } from './harness/index.js';

/**
 * Conntrack helpers, after the kernel selftest nft_conntrack_helper.sh: the FTP helper is
 * attached explicitly (raw `CT --helper ftp`; automatic assignment is off), shows as
 * helper=ftp on the control connection only, learns the data connection from PASV and PORT,
 * and makes it RELATED. Behind masquerade the address in PORT is rewritten, and when that
 * changes the length, sequence numbers are adjusted. ~2 s.
 */
const env = harnessAvailable();
const A = (s: string): bigint => addr(s).value;
const text = (p: Packet | undefined) => Buffer.from(p?.payload ?? []).toString('latin1');

const RULES = restore({
  raw: ['-A PREROUTING -i eth0 -p tcp -m tcp --dport 21 -j CT --helper ftp'],
  nat: ['-A POSTROUTING -o eth1 -j MASQUERADE'],
  filter: {
    policies: { FORWARD: 'DROP' },
    rules: ['-A FORWARD -m conntrack --ctstate RELATED -j ACCEPT', '-A FORWARD -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT'],
  },
});

const BANNER = '220 nfproof ftp\r\n';
const USER = 'USER ftp\r\n';
const LOGGED_IN = '230 ok\r\n';
/** Sequence numbers once the control connection is open and logged in. */
const CLIENT_SEQ = 1001 + USER.length;
const SERVER_SEQ = 5001 + BANNER.length + LOGGED_IN.length;
const PASV_REPLY = '227 Entering Passive Mode (198,51,100,7,19,137).\r\n';

/**
 * Control connection set-up shared by the sessions: handshake, the server's banner, a login.
 * The login matters: the kernel's helper parses a command only when it starts right after a
 * line end it has seen in that direction (nf_conntrack_ftp.c, find_nl_seq), so a client's
 * very first line is never parsed. Inputs 0-5; input 0 is the client's SYN.
 */
function controlOpen(client: string): Scenario['inputs'] {
  const c = (flags: string, seq: number, ack: number, payload?: string) => tcp(`${client}:40000`, '198.51.100.7:21', flags, { seq, ack, ...(payload ? { payload } : {}) });
  return [
    at(0, 'eth0', c('S', 1000, 0)),
    (ctx) => at(0, 'eth1', answer(ctx.out(0) as Packet, 'SA', { seq: 5000, ack: 1001 })),
    at(0, 'eth0', c('A', 1001, 5001)),
    (ctx) => at(0, 'eth1', answer(ctx.out(0) as Packet, 'PA', { seq: 5001, ack: 1001, payload: BANNER })),
    at(0, 'eth0', c('PA', 1001, 5001 + BANNER.length, USER)),
    (ctx) => at(0, 'eth1', answer(ctx.out(0) as Packet, 'PA', { seq: 5001 + BANNER.length, ack: CLIENT_SEQ, payload: LOGGED_IN })),
  ];
}

const relatedCount = (run: KernelRun) => run.final.chains.find((c) => c.table === 'filter' && c.chain === 'FORWARD')!.rules[0].packets;

const passive: Scenario = {
  name: 'PASV: the helper learns the data port from the 227 reply; the data connection is RELATED',
  host: GATEWAY,
  rules: { ipv4: RULES },
  inputs: [
    ...controlOpen('192.168.18.2'),
    at(0, 'eth0', tcp('192.168.18.2:40000', '198.51.100.7:21', 'PA', { seq: CLIENT_SEQ, ack: SERVER_SEQ, payload: 'PASV\r\n' })),
    (ctx) => at(0, 'eth1', answer(ctx.out(0) as Packet, 'PA', { seq: SERVER_SEQ, ack: CLIENT_SEQ + 6, payload: PASV_REPLY })),
    at(0, 'eth0', tcp('192.168.18.2:40001', '198.51.100.7:5001', 'S', { seq: 77 })),
    // A data connection to a port nobody announced is just NEW.
    at(0, 'eth0', tcp('192.168.18.2:40002', '198.51.100.7:5002', 'S', { seq: 88 })),
  ],
  expectKernel(run) {
    expect(run.steps.map((s) => s.emitted.length)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(text(run.steps[7].emitted[0].packet)).toBe(PASV_REPLY);
    // Only the data SYN to 5001 went through the RELATED rule.
    expect(relatedCount(run)).toBe(1);
    const control = run.final.entries.find((e) => e.original.dport === 21)!;
    expect(control.helper).toBe('ftp');
    expect(control.tcpState).toBe('ESTABLISHED');
    const data = run.final.entries.find((e) => e.original.dport === 5001)!;
    expect(data.helper).toBeUndefined();
    expect(data.reply.dst).toBe(A('192.168.20.1'));
    // The expectation was used up by the data connection.
    expect(run.final.expectations).toEqual([]);
  },
};

const PORT_CMD = 'PORT 192,168,18,20,19,136\r\n';
const PORT_NATTED = 'PORT 192,168,20,1,19,136\r\n';

const active: Scenario = {
  name: 'PORT behind masquerade: the address is rewritten, seq/ack adjusted, the server’s data connection is RELATED and DNATed',
  host: GATEWAY,
  rules: { ipv4: RULES },
  inputs: [
    ...controlOpen('192.168.18.20'),
    at(0, 'eth0', tcp('192.168.18.20:40000', '198.51.100.7:21', 'PA', { seq: CLIENT_SEQ, ack: SERVER_SEQ, payload: PORT_CMD })),
    // The server saw the rewritten, one byte shorter command and acknowledges that.
    (ctx) => at(0, 'eth1', answer(ctx.out(6) as Packet, 'PA', { seq: SERVER_SEQ, ack: CLIENT_SEQ + PORT_NATTED.length, payload: '200 PORT ok\r\n' })),
    at(0, 'eth1', tcp('198.51.100.7:20', '192.168.20.1:5000', 'S', { seq: 9000 })),
    (ctx) => at(0, 'eth0', answer(ctx.out(8) as Packet, 'SA', { seq: 3000, ack: 9001 })),
  ],
  expectKernel(run) {
    const port = run.steps[6].emitted[0].packet;
    expect(text(port)).toBe(PORT_NATTED);
    expect(port.tcp?.seq).toBe(CLIENT_SEQ);
    // CLIENT_SEQ + 26 in the server's numbering is CLIENT_SEQ + 27 in the client's.
    expect(run.steps[7].emitted[0].packet.tcp?.ack).toBe(CLIENT_SEQ + PORT_CMD.length);
    expect(run.steps[8].emitted[0]).toMatchObject({ device: 'eth0', packet: { dst: A('192.168.18.20'), dport: 5000 } });
    expect(run.steps[9].emitted[0]).toMatchObject({ device: 'eth1', packet: { src: A('192.168.20.1'), sport: 5000 } });
    expect(relatedCount(run)).toBe(1);
    const data = run.final.entries.find((e) => e.original.sport === 20)!;
    expect(data.reply).toMatchObject({ src: A('192.168.18.20'), sport: 5000 });
    expect(data.status & CT_STATUS.DST_NAT).toBeTruthy();
  },
};

const noHelper: Scenario = {
  name: 'no helper on a control connection to another port: PASV there creates nothing',
  host: GATEWAY,
  rules: { ipv4: RULES.replace('--dport 21', '--dport 2121') },
  inputs: [
    ...controlOpen('192.168.18.2'),
    at(0, 'eth0', tcp('192.168.18.2:40000', '198.51.100.7:21', 'PA', { seq: CLIENT_SEQ, ack: SERVER_SEQ, payload: 'PASV\r\n' })),
    (ctx) => at(0, 'eth1', answer(ctx.out(0) as Packet, 'PA', { seq: SERVER_SEQ, ack: CLIENT_SEQ + 6, payload: PASV_REPLY })),
    at(0, 'eth0', tcp('192.168.18.2:40001', '198.51.100.7:5001', 'S', { seq: 77 })),
  ],
  expectKernel(run) {
    expect(run.final.entries.find((e) => e.original.dport === 21)?.helper).toBeUndefined();
    expect(relatedCount(run)).toBe(0);
  },
};

describe.skipIf(!env.run)('conntrack helpers on the kernel (nft_conntrack_helper.sh ideas)', () => {
  for (const s of [passive, active, noHelper]) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
