import { readFileSync } from 'node:fs';
import { type ImportAssumptions, importIptablesSave, looksLikeIptables } from '../backends/import/index.js';
import type { Policy } from '../ir/policy.js';
import { loadPolicy } from '../syntax/index.js';
import { type Diagnostic, diag } from '../util/diagnostics.js';
import type { Family } from '../util/ip.js';
import type { SourceFiles } from '../util/sources.js';

/**
 * Loads what a verb is given, whatever it is: a `.nfp` policy (the syntax front end) or an
 * iptables-save dump / iptables script (the importer). The format is forced with `from`, else
 * a `.nfp` name means the DSL and anything else is sniffed (src/backends/import: iptables
 * tables, chain lines, `-A` rules or `iptables …` commands).
 */
export type PolicyFormat = 'nfp' | 'iptables-save';
export const POLICY_FORMATS: readonly PolicyFormat[] = ['nfp', 'iptables-save'];

export interface LoadedPolicy {
  readonly policy?: Policy;
  readonly diagnostics: readonly Diagnostic[];
  readonly format: PolicyFormat;
  /** For an imported dump: what stands in for the missing host model. */
  readonly assumptions?: ImportAssumptions;
}

export interface LoadOptions {
  readonly from?: PolicyFormat;
  /** Family of an iptables-save dump (detected when absent). */
  readonly family?: Family;
}

function unreadable(path: string, e: unknown): LoadedPolicy {
  const reason = e instanceof Error && 'code' in e && e.code === 'ENOENT' ? 'no such file' : e instanceof Error ? e.message : String(e);
  const span = { file: path, start: { line: 0, col: 0, offset: 0 }, end: { line: 0, col: 0, offset: 0 } };
  return { diagnostics: [diag('error', 'E-read', span, `cannot read ${path}: ${reason}`)], format: 'nfp' };
}

export async function loadAnyPolicy(path: string, sources: SourceFiles, opts: LoadOptions = {}): Promise<LoadedPolicy> {
  let text: string;
  try {
    text = sources.get(path) ?? readFileSync(path, 'utf8');
  } catch (e) {
    return unreadable(path, e);
  }
  const format: PolicyFormat = opts.from ?? (path.endsWith('.nfp') ? 'nfp' : looksLikeIptables(text) ? 'iptables-save' : 'nfp');
  if (format === 'iptables-save') {
    const r = importIptablesSave(text, path, sources, opts.family ? { family: opts.family } : {});
    return { ...(r.policy ? { policy: r.policy } : {}), diagnostics: r.diagnostics, format, assumptions: r.assumptions };
  }
  sources.add(path, text);
  const r = loadPolicy(path, sources);
  return { ...(r.policy ? { policy: r.policy } : {}), diagnostics: r.diagnostics, format };
}
