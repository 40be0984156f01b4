import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ftpHelp, type FtpHelpResult, ftpNatAddress, ftpNatRewrite, type FtpTuples, newFtpHelperState } from '../../src/netfilter/helpers/ftp.js';
import { formatAddress, parseAddress } from '../../src/util/ip.js';
import { c, DEFAULT_ENDPOINTS, type Endpoints, s } from '../netfilter/proto/tcp-script.js';
import { labAvailable, type CapturedPacket, TcpLab } from './tcp-lab.js';

/**
 * The FTP helper against the kernel's nf_conntrack_ftp / nf_nat_ftp. The firewall attaches the
 * helper in raw (`-j CT --helper ftp` for port 21); control sessions are crafted segment by
 * segment. For every line we compare nfproof's prediction (ftpHelp, ftpNatRewrite) with the
 * kernel: the expectation `conntrack -L expect` shows, the payload the other side receives
 * (rewritten behind NAT, absent when the helper dropped it), and finally whether the data
 * connection's SYN is RELATED. Runtime: ~5 s.
 */

const env = labAvailable();

const RULES6 = `*raw
:PREROUTING ACCEPT
-A PREROUTING -p tcp --dport 21 -j CT --helper ftp
COMMIT
`;

const RULES = `*raw
:PREROUTING ACCEPT
-A PREROUTING -p tcp --dport 21 -j CT --helper ftp
COMMIT
*nat
:PREROUTING ACCEPT
:POSTROUTING ACCEPT
-A PREROUTING -d 10.0.1.1 -p tcp --dport 21 -j DNAT --to-destination 10.0.2.2
-A POSTROUTING -o f1 -s 10.0.1.2 -p tcp --sport 46000:46999 -j SNAT --to-source 10.0.2.100
COMMIT
`;

interface Line {
  readonly from: 'c' | 's';
  readonly text: string;
}
const C = (text: string): Line => ({ from: 'c', text });
const S = (text: string): Line => ({ from: 's', text });

interface FtpCase {
  readonly name: string;
  readonly cport: number;
  /** Client connects to 10.0.1.1 (DNAT to the server) instead of the server itself. */
  readonly dnat?: boolean;
  /** Client port in 46000:46999: SNAT to 10.0.2.100. */
  readonly lines: readonly Line[];
  /** Over IPv6 (fd00:1::2 → fd00:2::2), no NAT. */
  readonly ipv6?: boolean;
  /** The data connection to open at the end: who opens it, to which port. */
  readonly data: { readonly from: 'c' | 's'; readonly port: number };
}

const CASES: readonly FtpCase[] = [
  {
    name: 'active FTP: PORT creates an expectation, the data connection is RELATED',
    cport: 45001,
    lines: [S('220 ready\r\n'), C('USER anonymous\r\n'), S('331 ok\r\n'), C('PORT 10,0,1,2,156,64\r\n'), S('200 ok\r\n')],
    data: { from: 's', port: 40000 },
  },
  {
    name: 'PORT as the first line is not seen by the helper',
    cport: 45002,
    lines: [S('220 ready\r\n'), C('PORT 10,0,1,2,156,65\r\n'), S('200 ok\r\n')],
    data: { from: 's', port: 40001 },
  },
  {
    name: 'PORT naming another host creates nothing',
    cport: 45003,
    lines: [C('USER a\r\n'), C('PORT 10,0,1,9,156,66\r\n')],
    data: { from: 's', port: 40002 },
  },
  {
    name: 'a PORT that does not parse is dropped by the helper; lowercase and EPRT work',
    cport: 45004,
    lines: [C('USER a\r\n'), C('PORT 10,0,1,2,156\r\n'), C('port 10,0,1,2,156,67\r\n'), C('EPRT |1|10.0.1.2|40004|\r\n')],
    data: { from: 's', port: 40004 },
  },
  {
    name: 'a line not ending in a newline hides the next command',
    cport: 45005,
    lines: [C('USER a\r\n'), C('NOOP'), C('\r\nPORT 10,0,1,2,156,69\r\n')],
    data: { from: 's', port: 40005 },
  },
  {
    name: 'passive FTP: 227 reply, the client data connection is RELATED',
    cport: 45006,
    lines: [S('220 ready\r\n'), C('USER a\r\n'), C('PASV\r\n'), S('227 Entering Passive Mode (10,0,2,2,195,80).\r\n')],
    data: { from: 'c', port: 50000 },
  },
  {
    name: 'extended passive: 229 reply',
    cport: 45007,
    lines: [S('220 ready\r\n'), C('EPSV\r\n'), S('229 Entering Extended Passive Mode (|||50001|)\r\n')],
    data: { from: 'c', port: 50001 },
  },
  {
    name: 'behind SNAT the PORT command is rewritten to the NAT address (payload grows by 2)',
    cport: 46001,
    // Odd port numbers: a rewrite that garbles the low byte shows.
    lines: [S('220 ready\r\n'), C('USER a\r\n'), S('331 ok\r\n'), C('PORT 10,0,1,2,156,71\r\n'), S('200 ok\r\n'), C('EPRT |1|10.0.1.2|40009|\r\n'), S('200 ok\r\n')],
    data: { from: 's', port: 40009 },
  },
  {
    name: 'IPv6: EPRT |2| creates an expectation (AF_INET6 helper)',
    cport: 45009,
    ipv6: true,
    lines: [S('220 ready\r\n'), C('USER a\r\n'), C('EPRT |2|fd00:1::2|40011|\r\n'), C('EPRT |1|10.0.1.2|40012|\r\n')],
    data: { from: 's', port: 40011 },
  },
  {
    name: 'IPv6: 229 reply',
    cport: 45010,
    ipv6: true,
    lines: [S('220 ready\r\n'), C('EPSV\r\n'), S('229 Entering Extended Passive Mode (|||50011|)\r\n')],
    data: { from: 'c', port: 50011 },
  },
  {
    name: 'behind DNAT the 227 reply is rewritten to the address the client connected to',
    cport: 45008,
    dnat: true,
    lines: [S('220 ready\r\n'), C('USER a\r\n'), C('PASV\r\n'), S('227 Entering Passive Mode (10,0,2,2,195,83).\r\n')],
    data: { from: 'c', port: 50003 },
  },
];

const addr = (t: string): bigint => parseAddress(t)!.value;

describe.skipIf(!env.run)('FTP helper: nfproof vs the Linux kernel', () => {
  let lab: TcpLab;
  beforeAll(() => {
    lab = TcpLab.create(RULES, [['10.0.2.100/24', 'f1']], RULES6);
  });
  afterAll(() => lab?.dispose());

  for (const fc of CASES) {
    it(fc.name, async () => {
      lab.reset();
      const snat = fc.cport >= 46000 && fc.cport <= 46999;
      const ep: Endpoints = {
        ...DEFAULT_ENDPOINTS,
        ...(fc.ipv6 ? { client: 'fd00:1::2', server: 'fd00:2::2' } : {}),
        cport: fc.cport,
        sport: 21,
        ...(fc.dnat ? { serverSeenByClient: '10.0.1.1' } : {}),
        ...(snat ? { clientSeenByServer: '10.0.2.100' } : {}),
      };
      const family = fc.ipv6 ? 'ipv6' : 'ipv4';
      const show = (v: bigint): string => formatAddress(family, v);
      const tuples: FtpTuples = {
        family,
        origSrc: addr(ep.client),
        origDst: addr(ep.serverSeenByClient ?? ep.server),
        replySrc: addr(ep.server),
        replyDst: addr(ep.clientSeenByServer ?? ep.client),
      };
      const natted = snat || fc.dnat === true;

      await lab.startCapture('client');
      await lab.startCapture('server');
      const X = 1000;
      const Y = 7000;
      for (const seg of [c('S', X, 0), s('SA', Y, X + 1), c('A', X + 1, Y + 1)]) await lab.inject(() => lab.sendSeg(seg, ep));

      // Each side's next sequence number, and how many bytes of it the other side has received
      // (more or less than sent when NAT rewrote a command).
      const next = { c: X + 1, s: Y + 1 };
      const received = { c: X + 1, s: Y + 1 };
      const state = newFtpHelperState();
      const expectedPayloads: { from: 'c' | 's'; text: string | undefined }[] = [];
      let expectation: Extract<FtpHelpResult, { action: 'expect' }>['expectation'] | undefined;

      for (const line of fc.lines) {
        const dir = line.from === 'c' ? 0 : 1;
        const payload = new TextEncoder().encode(line.text);
        const r = ftpHelp(state, { dir, established: true, seq: next[line.from], payload, tuples });
        let arrives: string | undefined = line.text;
        if (r.action === 'drop') arrives = undefined;
        if (r.action === 'expect') {
          expectation = r.expectation;
          if (natted) arrives = new TextDecoder().decode(ftpNatRewrite(payload, r.command, ftpNatAddress(dir, tuples), r.command.port).payload);
        }
        expectedPayloads.push({ from: line.from, text: arrives });
        const other = line.from === 'c' ? 's' : 'c';
        const seg = (line.from === 'c' ? c : s)('PA', next[line.from], received[other], { payload: line.text });
        await lab.inject(() => lab.sendSeg(seg, ep));
        if (arrives !== undefined) {
          next[line.from] += payload.length;
          received[line.from] += new TextEncoder().encode(arrives).length;
        }
        // The kernel's expectation table after this line.
        const kernelExp = lab.expectations();
        expect(kernelExp.map((e) => `${e.src}>${e.dst}:${e.dport}`), `after ${JSON.stringify(line.text)}`).toEqual(
          expectation ? [`${show(expectation.src)}>${show(expectation.dst)}:${expectation.dport}`] : [],
        );
      }

      // What reached the other side.
      await new Promise((r) => setTimeout(r, 100));
      const atServer = (await lab.stopCapture('server')).filter((p) => p.sport === ep.cport && p.dport === 21 && p.payload);
      const atClient = (await lab.stopCapture('client')).filter((p) => p.dport === ep.cport && p.sport === 21 && p.payload);
      const text = (p: CapturedPacket): string => Buffer.from(p.payload ?? '', 'hex').toString();
      expect(atServer.map(text)).toEqual(expectedPayloads.filter((e) => e.from === 'c' && e.text !== undefined).map((e) => e.text));
      expect(atClient.map(text)).toEqual(expectedPayloads.filter((e) => e.from === 's' && e.text !== undefined).map((e) => e.text));

      // The data connection.
      const dataEp: Endpoints =
        fc.data.from === 's'
          ? { ...ep, cport: fc.data.port, sport: 20 }
          : { ...ep, sport: fc.data.port, cport: fc.cport + 1000 };
      const dst = addr(fc.data.from === 's' ? (dataEp.clientSeenByServer ?? dataEp.client) : (dataEp.serverSeenByClient ?? dataEp.server));
      const src = addr(fc.data.from === 's' ? dataEp.server : dataEp.client);
      const related = expectation !== undefined && expectation.src === src && expectation.dst === dst && expectation.dport === fc.data.port;
      const state2 = await lab.inject(() => lab.sendSeg((fc.data.from === 's' ? s : c)('S', 9000, 0), dataEp));
      expect(state2).toBe(related ? 'RELATED' : 'NEW');
    });
  }
});
