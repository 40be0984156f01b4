import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Policy } from '../../src/ir/policy.js';
import { renderDiagnostics } from '../../src/report/text.js';
import { parsePolicyText, printPolicy } from '../../src/syntax/index.js';
import { SourceFiles } from '../../src/util/sources.js';
import { type PolicyGenOptions, policyArb } from '../gen/policy.js';
import { SEED, withoutSpans } from './support.js';

/**
 * The round-trip property: a random valid IR policy, printed as .nfp and parsed again, is the
 * same IR (spans aside). It exercises every registered kind's print/parse pair, the printer's
 * inet merging and defines, host blocks and expectations. ~3 s.
 */
function comparable(p: Policy) {
  return withoutSpans({ host: p.host, rulesets: p.rulesets, expectations: p.expectations });
}

function roundTrip(p: Policy): void {
  const text = printPolicy(p);
  const sources = new SourceFiles();
  const back = parsePolicyText(text, 'roundtrip.nfp', sources);
  const errors = back.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(`printed policy does not parse:\n${renderDiagnostics(errors, sources, { color: false })}\n--- printed:\n${text}`);
  try {
    expect(comparable(back.policy!)).toEqual(comparable(p));
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- printed:\n${text}`);
  }
}

/** Like fc.assert, but reports the printed policy instead of fast-check's dump of the IR. */
function check(opts: PolicyGenOptions, numRuns: number): void {
  const r = fc.check(fc.property(policyArb(opts), roundTrip), { seed: SEED, numRuns, endOnFailure: true });
  if (r.failed) throw new Error(`round trip failed (seed ${SEED}, run ${r.numRuns}):\n${(r.errorInstance as Error | undefined)?.message ?? String(r.errorInstance)}`);
}

describe('print → parse round trip', () => {
  it('holds for random policies of every kind (both families, all tables)', () => {
    check({}, 150);
  });

  it('holds for single-family policies without a host model', () => {
    check({ families: ['ipv6'], host: false, expectations: false }, 50);
    check({ families: ['ipv4'], host: false, defines: false }, 50);
  });
});
