import type { Policy } from '../../src/ir/policy.js';
import { renderDiagnostics } from '../../src/report/text.js';
import { type LoadResult, parsePolicyText } from '../../src/syntax/index.js';
import type { Diagnostic } from '../../src/util/diagnostics.js';
import { SourceFiles } from '../../src/util/sources.js';

/** Test helpers for the front end. */
export const SEED = Number(process.env.NFPROOF_SEED ?? 42);

/** A deep copy without spans (and without fields that text cannot carry), for comparing IR. */
export function withoutSpans<T>(v: T): T {
  if (Array.isArray(v)) return v.map(withoutSpans) as T;
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (k !== 'span' && x !== undefined) out[k] = withoutSpans(x);
    return out as T;
  }
  return v;
}

export function parse(text: string, file = 'test.nfp'): LoadResult & { sources: SourceFiles } {
  const sources = new SourceFiles();
  return { ...parsePolicyText(text, file, sources), sources };
}

/** Parses text that must be free of errors; returns the policy. */
export function policyOf(text: string): Policy {
  const r = parse(text);
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length || !r.policy) throw new Error(`unexpected errors:\n${renderDiagnostics(errors, r.sources, { color: false })}`);
  return r.policy;
}

export function codes(ds: readonly Diagnostic[], severity?: Diagnostic['severity']): string[] {
  return ds.filter((d) => !severity || d.severity === severity).map((d) => d.code);
}

export function errorsOf(text: string): Diagnostic[] {
  return parse(text).diagnostics.filter((d) => d.severity === 'error');
}
