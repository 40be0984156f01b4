import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type FtpCommand, findFtpCommand, ftpCommandText, ftpHelp, ftpNatRewrite, newFtpHelperState } from '../../../src/netfilter/helpers/ftp.js';

/**
 * Properties of the FTP helper (fixed seed; NFPROOF_SEED to explore): whatever bytes arrive,
 * parsing never throws and a match lies inside the segment; what NAT writes into a command is
 * read back by the same (kernel) rules as the address and port it was given; a rewrite only
 * touches the matched text. Runtime: < 1 s.
 */
const seed = Number(process.env.NFPROOF_SEED ?? 42);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const v4 = fc.integer({ min: 0, max: 0xffffffff }).map(BigInt);
const v6 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });
const port = fc.integer({ min: 1, max: 0xffff });

/** Bytes that look a lot like FTP: command words, digits, separators, line ends. */
const ftpish = fc
  .array(fc.constantFrom('PORT ', 'EPRT ', '227 ', '229 ', 'port ', '(', ')', '|', ',', '.', ':', '1', '0', '9', '2', '\r', '\n', ' ', 'x', '|||'), {
    maxLength: 30,
  })
  .map((parts) => enc(parts.join('')));

describe('FTP helper properties', () => {
  it('parsing arbitrary segments never throws; matches lie inside the segment', () => {
    fc.assert(
      fc.property(fc.oneof(ftpish, fc.uint8Array({ maxLength: 60 })), fc.constantFrom(0 as const, 1 as const), fc.constantFrom('ipv4' as const, 'ipv6' as const), (data, dir, family) => {
        const r = findFtpCommand(data, dir, family, family === 'ipv4' ? 0x0a000001n : 1n);
        if (r.kind === 'found') {
          expect(r.command.matchOffset + r.command.matchLength).toBeLessThanOrEqual(data.length);
          expect(r.command.port).toBeGreaterThan(r.command.type === 'PORT' || r.command.type === 'PASV' ? -1 : 0);
        }
      }),
      { seed, numRuns: 2000 },
    );
  });

  it('what NAT writes is read back as the same address and port', () => {
    const cases = fc.oneof(
      fc.tuple(fc.constant({ type: 'PORT', family: 'ipv4', dir: 0, pre: 'PORT ', post: '\r\n' } as const), v4, port),
      fc.tuple(fc.constant({ type: 'PASV', family: 'ipv4', dir: 1, pre: '227 Entering Passive Mode (', post: ').\r\n' } as const), v4, port),
      fc.tuple(fc.constant({ type: 'EPRT', family: 'ipv4', dir: 0, pre: 'EPRT ', post: '\r\n' } as const), v4, port),
      fc.tuple(fc.constant({ type: 'EPRT', family: 'ipv6', dir: 0, pre: 'EPRT ', post: '\r\n' } as const), v6, port),
      fc.tuple(fc.constant({ type: 'EPSV', family: 'ipv4', dir: 1, pre: '229 Entering Extended Passive Mode (', post: ')\r\n' } as const), v4, port),
    );
    fc.assert(
      fc.property(cases, ([c, addr, p]) => {
        const cmd: FtpCommand = { type: c.type, family: c.family, addr: 0n, port: 0, matchOffset: 0, matchLength: 0 };
        const text = ftpCommandText(cmd, addr, p);
        // EPSV carries no address: it is the sender's.
        const r = findFtpCommand(enc(c.pre + text + c.post), c.dir, c.family, addr);
        expect(r.kind).toBe('found');
        if (r.kind !== 'found') return;
        expect([r.command.type, r.command.addr, r.command.port]).toEqual([c.type, addr, p]);
        expect([r.command.matchOffset, r.command.matchLength]).toEqual([c.pre.length, text.length]);
      }),
      { seed, numRuns: 500 },
    );
  });

  it('a rewrite replaces exactly the matched text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 10 }), v4, port, v4, port, (tail, a1, p1, a2, p2) => {
        const cmd0: FtpCommand = { type: 'PORT', family: 'ipv4', addr: 0n, port: 0, matchOffset: 0, matchLength: 0 };
        const payload = enc(`PORT ${ftpCommandText(cmd0, a1, p1)}\r\n${tail}`);
        const r = findFtpCommand(payload, 0, 'ipv4', a1);
        if (r.kind !== 'found') throw new Error('PORT not found');
        const out = ftpNatRewrite(payload, r.command, a2, p2);
        const text = ftpCommandText(r.command, a2, p2);
        expect(new TextDecoder().decode(out.payload)).toBe(`PORT ${text}\r\n${tail}`);
        expect(out.delta).toBe(out.payload.length - payload.length);
      }),
      { seed, numRuns: 300 },
    );
  });

  it('the helper never throws, whatever the sequence of segments', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(0 as const, 1 as const), ftpish, fc.boolean()), { maxLength: 12 }), (segs) => {
        const state = newFtpHelperState();
        const seq = [1, 1];
        const tuples = { family: 'ipv4' as const, origSrc: 1n, origDst: 2n, replySrc: 2n, replyDst: 1n };
        for (const [dir, payload, established] of segs) {
          const r = ftpHelp(state, { dir, established, seq: seq[dir], payload, tuples });
          expect(['accept', 'drop', 'expect']).toContain(r.action);
          seq[dir] += payload.length;
          expect(state.afterNewline[dir].length).toBeLessThanOrEqual(2);
        }
      }),
      { seed, numRuns: 500 },
    );
  });
});
