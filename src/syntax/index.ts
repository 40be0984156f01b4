import type { Definition } from '../kinds/dsl.js';
import { checkPolicy } from '../ir/check/index.js';
import { lowerPolicy, resolveFlowInterfaces } from '../ir/lower.js';
import type { Flow, Policy } from '../ir/policy.js';
import { type Diagnostic, diag, sortDiagnostics } from '../util/diagnostics.js';
import type { SourceFiles } from '../util/sources.js';
import type { ClauseScope } from './clauses.js';
import { parseFlowWords } from './expect.js';
import { parseWordList } from './parser.js';
import { type Scope, buildProgram } from './program.js';

/**
 * The .nfp front end: text → IR with diagnostics, and IR → text.
 *
 *   loadPolicy(path, sources)           read a policy file and its includes
 *   parsePolicyText(text, file, sources) the same for text in hand (includes relative to `file`)
 *   parseFlow(text, file, sources, opts) one flow, as `nfproof query` takes it
 *   printPolicy(policy)                 canonical .nfp text (parses back to the same IR)
 *   formatSource(text, file)            `nfproof fmt`: the same file, laid out canonically
 *
 * `policy` is undefined when any error was reported; warnings come with a policy.
 */
export interface LoadResult {
  readonly policy?: Policy;
  /** Sorted by file and position. */
  readonly diagnostics: readonly Diagnostic[];
  /** Defines, services and host of the policy, for parsing flows against it (parseFlow). */
  readonly scope?: PolicyScope;
}

/** What a flow written outside the policy may refer to: @defines, services, interface names. */
export type PolicyScope = Scope;

export function loadPolicy(path: string, sources: SourceFiles): LoadResult {
  let text: string;
  try {
    text = sources.read(path);
  } catch (e) {
    const code = e instanceof Error && 'code' in e ? String((e as { code: unknown }).code) : '';
    const span = { file: path, start: { line: 0, col: 0, offset: 0 }, end: { line: 0, col: 0, offset: 0 } };
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : e instanceof Error ? e.message : String(e);
    return { diagnostics: [diag('error', 'E-read', span, `cannot read ${path}: ${reason}`)] };
  }
  return parsePolicyText(text, path, sources);
}

export function parsePolicyText(text: string, file: string, sources: SourceFiles): LoadResult {
  const diagnostics: Diagnostic[] = [];
  const seen = new Set<string>();
  // A define's mistake is met at every use; say it once.
  const report = (d: Diagnostic) => {
    const key = `${d.code}\u0000${d.span.file}\u0000${d.span.start.offset}\u0000${d.span.end.offset}\u0000${d.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      diagnostics.push(d);
    }
  };
  const { surface, scope } = buildProgram(file, text, sources, report);
  const policy = lowerPolicy(surface, report);
  checkPolicy(policy).forEach(report);
  const sorted = sortDiagnostics(diagnostics);
  const failed = sorted.some((d) => d.severity === 'error');
  return { ...(failed ? {} : { policy }), diagnostics: sorted, scope };
}

/**
 * The IR of a policy before the semantic checks of src/ir/check (jumps, loops, hooks, kinds'
 * validation): for tests that ask the kernel about policies nfproof refuses. `policy` is
 * undefined when parsing or lowering reported an error.
 */
export function lowerPolicyText(text: string, file: string, sources: SourceFiles): LoadResult {
  const diagnostics: Diagnostic[] = [];
  const { surface, scope } = buildProgram(file, text, sources, (d) => diagnostics.push(d));
  const policy = lowerPolicy(surface, (d) => diagnostics.push(d));
  const failed = diagnostics.some((d) => d.severity === 'error');
  return { ...(failed ? {} : { policy }), diagnostics: sortDiagnostics(diagnostics), scope };
}

const EMPTY_SCOPE: ClauseScope = {
  defines: new Map<string, Definition>(),
  brokenDefines: new Set(),
  service: (name, use, report) => {
    report(diag('error', 'E-undefined-service', use, `no service \`${name}\``, 'services come from a policy: pass one to resolve them'));
    return undefined;
  },
  serviceNames: () => [],
  markDefineUsed: () => undefined,
};

/**
 * Parses one flow (`tcp from 10.0.0.0/8 to 192.168.1.10 dport 22`). With `scope` (from
 * loadPolicy) it may use the policy's @defines and services; with `policy` its interface
 * names are resolved against the host model.
 */
export function parseFlow(
  text: string,
  file: string,
  sources: SourceFiles,
  opts: { readonly scope?: PolicyScope; readonly policy?: Policy } = {},
): { flow?: Flow; diagnostics: readonly Diagnostic[] } {
  sources.add(file, text);
  const diagnostics: Diagnostic[] = [];
  const report = (d: Diagnostic) => diagnostics.push(d);
  const { words, diagnostics: syntax } = parseWordList(text, file);
  diagnostics.push(...syntax);
  const start = { line: 1, col: 1, offset: 0 };
  const whole = { file, start, end: start };
  const parsed = parseFlowWords(words, whole, opts.scope ?? EMPTY_SCOPE, report);
  const flow = parsed ? resolveFlowInterfaces(parsed, opts.policy?.host, report) : undefined;
  const failed = diagnostics.some((d) => d.severity === 'error');
  return { ...(flow && !failed ? { flow } : {}), diagnostics: sortDiagnostics(diagnostics) };
}

export { printPolicy, printFlow, type PrintOptions } from './print.js';
export { formatSource, type FormatResult } from './format.js';
