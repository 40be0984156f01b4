import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatSource } from '../../src/syntax/format.js';
import { parseFlow, parsePolicyText, printPolicy } from '../../src/syntax/index.js';
import { SourceFiles } from '../../src/util/sources.js';
import { policyArb } from '../gen/policy.js';
import { SEED } from './support.js';

/**
 * A user mistake never becomes a stack trace: random token soup and random damage to valid
 * policies give diagnostics (each inside the text it points at), never an exception. ~4 s.
 */
const PIECES = [
  'table', 'chain', 'host', 'define', 'service', 'include', 'expect', 'policy', 'filter', 'nat', 'raw', 'input', 'forward',
  'postrouting', 'ip', 'ip6', 'tcp', 'udp', 'icmp', 'saddr', 'daddr', 'dport', 'sport', 'iif', 'oif', 'ct', 'state', 'new',
  'accept', 'drop', 'jump', 'goto', 'return', 'log', 'prefix', 'snat', 'dnat', 'to', 'masquerade', 'reject', 'with', 'mark',
  'set', 'limit', 'rate', 'reachable', 'only', 'within', 'or', 'via', 'translated', 'reply', 'no', 'rules', 'interface', 'dev',
  'address', 'route', 'default', 'sysctl', 'comment', 'xt', 'match', 'target', 'type', 'flags', 'any', 'from',
  '10.0.0.1', '10.0.0.0/8', 'fd00::1', '::/0', '1.2.3.4-1.2.3.9', '22', '80-90', '0x10/0xff', '10/second', 'eth0', 'eth+', '[fd00::1]:80',
  '1.2.3.4:80', '@x', '@', '{', '}', ',', ';', '!', '!=', '=', '"str"', '"a\\"b"', '"open', '# c', '\n', '\n', '\n', ' ', '\t', 'é', '\u00a0',
];

function checkNoThrow(text: string): void {
  const sources = new SourceFiles();
  let r: ReturnType<typeof parsePolicyText>;
  try {
    r = parsePolicyText(text, 'fuzz.nfp', sources);
  } catch (e) {
    throw new Error(`parsePolicyText threw on:\n${text}\n${(e as Error).stack}`);
  }
  for (const d of r.diagnostics) {
    if (d.span.file !== 'fuzz.nfp') continue;
    expect(d.span.start.offset).toBeGreaterThanOrEqual(0);
    expect(d.span.end.offset).toBeLessThanOrEqual(text.length);
    expect(d.span.start.offset).toBeLessThanOrEqual(d.span.end.offset);
  }
  expect(r.policy === undefined).toBe(r.diagnostics.some((d) => d.severity === 'error'));
  expect(() => formatSource(text, 'fuzz.nfp')).not.toThrow();
  expect(() => parseFlow(text, 'flow', new SourceFiles())).not.toThrow();
}

describe('robustness', () => {
  it('never throws on token soup', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...PIECES), { maxLength: 60 }), (pieces) => checkNoThrow(pieces.join(' '))),
      { seed: SEED, numRuns: 400 },
    );
  });

  it('never throws on damaged valid policies (words dropped, swapped, duplicated)', () => {
    fc.assert(
      fc.property(policyArb({ maxRules: 3 }), fc.array(fc.tuple(fc.nat(), fc.nat(), fc.constantFrom('drop', 'dup', 'swap', 'cut')), { minLength: 1, maxLength: 6 }), (policy, edits) => {
        const words = printPolicy(policy).split(/( |\n)/);
        for (const [a, b, op] of edits) {
          const i = a % words.length;
          const j = b % words.length;
          if (op === 'drop') words.splice(i, 1);
          else if (op === 'dup') words.splice(i, 0, words[j]);
          else if (op === 'swap') [words[i], words[j]] = [words[j], words[i]];
          else words[i] = words[i].slice(0, Math.max(0, words[i].length - 1 - (j % 3)));
        }
        checkNoThrow(words.join(''));
      }),
      { seed: SEED, numRuns: 60 },
    );
  });
});
