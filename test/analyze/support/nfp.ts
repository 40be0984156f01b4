import { checkPolicy } from '../../../src/analyze/check.js';
import type { CheckReport, Finding } from '../../../src/analyze/types.js';
import type { Policy } from '../../../src/ir/policy.js';
import { parsePolicyText } from '../../../src/syntax/index.js';
import { SourceFiles } from '../../../src/util/sources.js';

/** A .nfp policy from text (test-written, made up), failing the test on any error. */
export function nfp(text: string, file = 'test.nfp'): Policy {
  const r = parsePolicyText(text, file, new SourceFiles());
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (!r.policy || errors.length) throw new Error(`test policy does not parse: ${errors.map((d) => `${d.span.start.line}: ${d.message}`).join('; ')}`);
  return r.policy;
}

export async function check(text: string, opts: { anomalies?: boolean } = {}): Promise<CheckReport> {
  return checkPolicy(nfp(text), { timeoutMs: 10_000, anomalies: opts.anomalies ?? false });
}

/** The findings on a 1-based source line. */
export function at(report: CheckReport, line: number): Finding[] {
  return report.findings.filter((f) => (f.rule?.span ?? f.chain?.span)?.start.line === line);
}

/** Line number of the first line containing `marker` (tests tag lines with # L1 comments). */
export function lineOf(text: string, marker: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(marker));
  if (i < 0) throw new Error(`no line with ${marker}`);
  return i + 1;
}
