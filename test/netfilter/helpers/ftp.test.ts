import { describe, expect, it } from 'vitest';
import {
  findFtpCommand,
  ftpCommandText,
  ftpHelp,
  ftpNatAddress,
  ftpNatRewrite,
  type FtpTuples,
  newFtpHelperState,
} from '../../../src/netfilter/helpers/ftp.js';
import { formatAddress, parseAddress } from '../../../src/util/ip.js';

/**
 * The FTP helper's parsing and decisions, derived by hand from net/netfilter/nf_conntrack_ftp.c
 * and nf_nat_ftp.c (function names in the comments). The end-to-end behaviour, with the real
 * kernel helper attached, is checked in test/kernel/ftp-helper.test.ts.
 */

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const a = (text: string): bigint => parseAddress(text)!.value;
const v4 = (v: bigint): string => formatAddress('ipv4', v);
const CLIENT = a('10.0.1.2');
const SERVER = a('10.0.2.2');

describe('findFtpCommand (find_pattern and the number parsers)', () => {
  it('PORT: six numbers, address and port, and where the text is', () => {
    const r = findFtpCommand(enc('PORT 10,0,1,2,156,64\r\n'), 0, 'ipv4', CLIENT);
    expect(r.kind).toBe('found');
    if (r.kind !== 'found') return;
    expect(v4(r.command.addr)).toBe('10.0.1.2');
    expect(r.command.port).toBe(156 * 256 + 64);
    // The match is the number text only: "PORT " is 5 bytes, "10,0,1,2,156,64" is 15.
    expect([r.command.matchOffset, r.command.matchLength]).toEqual([5, 15]);
  });

  it('commands are matched case-insensitively, only at the start of the segment', () => {
    expect(findFtpCommand(enc('port 1,2,3,4,0,21\r\n'), 0, 'ipv4', CLIENT).kind).toBe('found');
    expect(findFtpCommand(enc('NOOP\r\nPORT 1,2,3,4,0,21\r\n'), 0, 'ipv4', CLIENT).kind).toBe('none');
  });

  it('each direction has its own commands', () => {
    expect(findFtpCommand(enc('PORT 1,2,3,4,0,21\r\n'), 1, 'ipv4', SERVER).kind).toBe('none');
    expect(findFtpCommand(enc('227 Entering Passive Mode (1,2,3,4,0,21)\r\n'), 0, 'ipv4', CLIENT).kind).toBe('none');
  });

  it('a command that starts right but does not parse is a partial match (the kernel drops it)', () => {
    for (const text of [
      'PORT 10,0,1,2,156\r\n', // five numbers
      'PORT 1,2,3,4,5,6,7\r\n', // seven numbers
      'PORT 10,0,1,2,156,64\n', // no CR: try_number wants the terminator '\r'
      'PORT 10,0,1,2,156,64', // no terminator at all
      'PORT\r\n', // no space to skip to
      'PORTAL x\r\n', // starts with PORT
      'PO', // shorter than the command: may continue in the next segment
      'EPRT |1|10.0.1.2|0|\r\n', // port 0
      'EPRT |2|10.0.1.2|5000|\r\n', // IPv6 form on an IPv4 connection
      'EPRT |1|10.0.1.2|5000\r\n', // no closing delimiter
    ]) {
      expect(findFtpCommand(enc(text), 0, 'ipv4', CLIENT), JSON.stringify(text)).toMatchObject({ kind: 'partial' });
    }
    for (const text of ['227 nothing here\r\n', '229 no parenthesis\r\n', '229 (1112)\r\n', '22']) {
      expect(findFtpCommand(enc(text), 1, 'ipv4', SERVER), JSON.stringify(text)).toMatchObject({ kind: 'partial' });
    }
  });

  it('numbers wrap like the kernel u32/u16 arithmetic', () => {
    // (300 << 24) | 1 mod 2^32 = 0x2c000001 = 44.0.0.1; port (256 << 8 | 1) & 0xffff = 1.
    const r = findFtpCommand(enc('PORT 300,0,0,1,256,1\r\n'), 0, 'ipv4', CLIENT);
    expect(r.kind === 'found' && [v4(r.command.addr), r.command.port]).toEqual(['44.0.0.1', 1]);
  });

  it('EPRT with IPv4 and IPv6; the match covers the delimiters', () => {
    const r4 = findFtpCommand(enc('EPRT |1|10.0.1.2|40001|\r\n'), 0, 'ipv4', CLIENT);
    expect(r4.kind === 'found' && [r4.command.type, v4(r4.command.addr), r4.command.port, r4.command.matchOffset, r4.command.matchLength]).toEqual([
      'EPRT',
      '10.0.1.2',
      40001,
      5,
      '|1|10.0.1.2|40001|'.length,
    ]);
    const r6 = findFtpCommand(enc('EPRT |2|2001:db8::2|5000|\r\n'), 0, 'ipv6', a('2001:db8::2'));
    expect(r6.kind === 'found' && [r6.command.addr === a('2001:db8::2'), r6.command.port]).toEqual([true, 5000]);
  });

  it('227 reply: the numbers start at the first digit after "227 "', () => {
    const text = '227 Entering Passive Mode (10,0,2,2,195,80).\r\n';
    const r = findFtpCommand(enc(text), 1, 'ipv4', SERVER);
    expect(r.kind === 'found' && [r.command.type, v4(r.command.addr), r.command.port]).toEqual(['PASV', '10.0.2.2', 195 * 256 + 80]);
    expect(r.kind === 'found' && [r.command.matchOffset, r.command.matchLength]).toEqual([text.indexOf('10,'), '10,0,2,2,195,80'.length]);
  });

  it('229 reply: only a port; the address is the server itself', () => {
    const text = '229 Entering Extended Passive Mode (|||50001|)\r\n';
    const r = findFtpCommand(enc(text), 1, 'ipv4', SERVER);
    expect(r.kind === 'found' && [r.command.type, r.command.addr === SERVER, r.command.port]).toEqual(['EPSV', true, 50001]);
    expect(r.kind === 'found' && [r.command.matchOffset, r.command.matchLength]).toEqual([text.indexOf('|'), '|||50001|'.length]);
  });

  it('PORT on an IPv6 connection only replaces the first 32 bits of the sender address', () => {
    // try_rfc959 writes cmd->u3.ip, the first four bytes of the in6_addr.
    const sender = a('2001:db8::2');
    const r = findFtpCommand(enc('PORT 10,0,1,2,0,21\r\n'), 0, 'ipv6', sender);
    // 2001:db8::2 with its first four bytes replaced by 10.0.1.2 (0a 00 01 02).
    expect(r.kind === 'found' && formatAddress('ipv6', r.command.addr)).toBe('a00:102::2');
  });
});

const TUPLES: FtpTuples = { family: 'ipv4', origSrc: CLIENT, origDst: SERVER, replySrc: SERVER, replyDst: CLIENT };

/** Drives the helper over a control session: lines in order, each direction's sequence numbers advancing. */
function session(lines: readonly (readonly [0 | 1, string])[], tuples = TUPLES, loose = false) {
  const state = newFtpHelperState();
  const seq = [1001, 5001];
  return lines.map(([dir, text]) => {
    const payload = enc(text);
    const r = ftpHelp(state, { dir, established: true, seq: seq[dir], payload, tuples, loose });
    seq[dir] = (seq[dir] + payload.length) >>> 0;
    return r;
  });
}

describe('ftpHelp (help())', () => {
  it('the first segment with data in a direction is never parsed', () => {
    // seq_aft_nl is empty until a segment ending in "\n" was seen (find_nl_seq fails).
    const [r] = session([[0, 'PORT 10,0,1,2,156,64\r\n']]);
    expect(r).toMatchObject({ action: 'accept' });
  });

  it('PORT after a first line: expectation from the server to the client port', () => {
    const r = session([
      [1, '220 ready\r\n'],
      [0, 'USER a\r\n'],
      [1, '331 ok\r\n'],
      [0, 'PORT 10,0,1,2,156,64\r\n'],
    ]);
    expect(r.slice(0, 3).map((x) => x.action)).toEqual(['accept', 'accept', 'accept']);
    const e = r[3];
    expect(e.action).toBe('expect');
    if (e.action !== 'expect') return;
    // nf_ct_expect_init(exp, …, &ct->tuplehash[!dir].tuple.src.u3, daddr = tuplehash[!dir].dst.u3, …, port)
    expect([v4(e.expectation.src), v4(e.expectation.dst), e.expectation.dport, e.expectation.dir]).toEqual(['10.0.2.2', '10.0.1.2', 40000, 1]);
  });

  it('227 from the server: expectation from the client to the server port', () => {
    const r = session([
      [1, '220 ready\r\n'],
      [1, '227 Entering Passive Mode (10,0,2,2,195,80).\r\n'],
    ]);
    expect(r[1].action === 'expect' && [v4(r[1].expectation.src), v4(r[1].expectation.dst), r[1].expectation.dport, r[1].expectation.dir]).toEqual([
      '10.0.1.2',
      '10.0.2.2',
      50000,
      0,
    ]);
  });

  it('a command naming another host creates nothing, unless loose', () => {
    const lines = [
      [0, 'USER a\r\n'],
      [0, 'PORT 10,0,1,9,156,64\r\n'],
    ] as const;
    const strict = session(lines);
    expect(strict[1]).toMatchObject({ action: 'accept', reason: expect.stringMatching(/announces 10\.0\.1\.9, not the sender's 10\.0\.1\.2/) });
    const loose = session(lines, TUPLES, true);
    expect(loose[1].action === 'expect' && v4(loose[1].expectation.dst)).toBe('10.0.1.9');
  });

  it('a partial command is dropped and its newline not learnt', () => {
    const state = newFtpHelperState();
    const tuples = TUPLES;
    expect(ftpHelp(state, { dir: 0, established: true, seq: 100, payload: enc('USER a\r\n'), tuples }).action).toBe('accept');
    expect(ftpHelp(state, { dir: 0, established: true, seq: 108, payload: enc('PORT 1,2\r\n'), tuples })).toMatchObject({ action: 'drop' });
    // The position after the dropped segment (118) was not remembered: a PORT there is not parsed.
    expect(ftpHelp(state, { dir: 0, established: true, seq: 118, payload: enc('PORT 10,0,1,2,0,21\r\n'), tuples }).action).toBe('accept');
    // The retransmission at 108 is parsed again.
    expect(ftpHelp(state, { dir: 0, established: true, seq: 108, payload: enc('PORT 10,0,1,2,0,21\r\n'), tuples }).action).toBe('expect');
  });

  it('a segment that does not end a line gives no position for the next one', () => {
    const r = session([
      [0, 'USER a\r\n'],
      [0, 'NOOP'],
      [0, '\r\nPORT 10,0,1,2,0,21\r\n'],
      [0, 'PORT 10,0,1,2,0,22\r\n'],
    ]);
    expect(r.map((x) => x.action)).toEqual(['accept', 'accept', 'accept', 'expect']);
  });

  it('remembers two line starts per direction, replacing the older', () => {
    const state = newFtpHelperState();
    for (const seq of [10, 20, 30]) ftpHelp(state, { dir: 0, established: true, seq: seq - 2, payload: enc('x\n'), tuples: TUPLES });
    // Positions 10, 20, 30 were offered; 10 (the oldest) was replaced by 30.
    expect(state.afterNewline[0]).toEqual([30, 20]);
  });

  it('only ESTABLISHED packets are inspected', () => {
    const state = newFtpHelperState();
    const r = ftpHelp(state, { dir: 0, established: false, seq: 1, payload: enc('x\n'), tuples: TUPLES });
    expect(r).toMatchObject({ action: 'accept' });
    expect(state.afterNewline[0]).toEqual([]);
  });
});

describe('FTP NAT (nf_nat_ftp)', () => {
  const SNAT: FtpTuples = { family: 'ipv4', origSrc: CLIENT, origDst: SERVER, replySrc: SERVER, replyDst: a('10.0.2.100') };
  const DNAT: FtpTuples = { family: 'ipv4', origSrc: CLIENT, origDst: a('10.0.1.1'), replySrc: SERVER, replyDst: CLIENT };

  it('a client PORT behind SNAT announces the SNAT address; the payload grows and the delta is reported', () => {
    const payload = enc('PORT 10,0,1,2,156,64\r\n');
    const r = findFtpCommand(payload, 0, 'ipv4', CLIENT);
    if (r.kind !== 'found') throw new Error('no PORT');
    const addr = ftpNatAddress(0, SNAT);
    expect(v4(addr)).toBe('10.0.2.100');
    const out = ftpNatRewrite(payload, r.command, addr, r.command.port);
    // kernel: the server received exactly this text (test/kernel/ftp-helper.test.ts).
    expect(dec(out.payload)).toBe('PORT 10,0,2,100,156,64\r\n');
    expect(out.delta).toBe(2);
  });

  it('a server 227 behind DNAT announces the address the client connected to', () => {
    const payload = enc('227 Entering Passive Mode (10,0,2,2,195,80).\r\n');
    const r = findFtpCommand(payload, 1, 'ipv4', SERVER);
    if (r.kind !== 'found') throw new Error('no 227');
    const out = ftpNatRewrite(payload, r.command, ftpNatAddress(1, DNAT), 50000);
    expect(dec(out.payload)).toBe('227 Entering Passive Mode (10,0,1,1,195,80).\r\n');
    expect(out.delta).toBe(0);
  });

  it('formats: EPRT (IPv4 and full IPv6), EPSV, and a changed port', () => {
    const cmd = (type: 'EPRT' | 'EPSV', family: 'ipv4' | 'ipv6') => ({ type, family, addr: 0n, port: 0, matchOffset: 0, matchLength: 0 }) as const;
    expect(ftpCommandText(cmd('EPRT', 'ipv4'), a('10.0.2.100'), 40001)).toBe('|1|10.0.2.100|40001|');
    expect(ftpCommandText(cmd('EPRT', 'ipv6'), a('2001:db8::1'), 5)).toBe('|2|2001:0db8:0000:0000:0000:0000:0000:0001|5|');
    expect(ftpCommandText(cmd('EPSV', 'ipv4'), 0n, 50001)).toBe('|||50001|');
    const port = findFtpCommand(enc('PORT 10,0,1,2,156,64\r\n'), 0, 'ipv4', CLIENT);
    if (port.kind !== 'found') throw new Error('no PORT');
    expect(dec(ftpNatRewrite(enc('PORT 10,0,1,2,156,64\r\n'), port.command, a('10.0.2.1'), 40002).payload)).toBe('PORT 10,0,2,1,156,66\r\n');
  });
});
