import { readFileSync } from 'node:fs';
import { Option } from 'commander';
import { type AllowList, diffPolicies, parseAllowList } from '../../analyze/diff/index.js';
import type { DiffReport } from '../../analyze/diff/types.js';
import type { Flow, Policy } from '../../ir/policy.js';
import { renderDiffText } from '../../report/diff.js';
import { renderDiffMarkdown } from '../../report/diff-markdown.js';
import { diffToJson, diffToSarif } from '../../report/diff-sarif.js';
import { writeFileAtomically } from '../../util/atomic-write.js';
import { type Diagnostic, diag, sortDiagnostics } from '../../util/diagnostics.js';
import { FAMILIES, type Family } from '../../util/ip.js';
import type { SourceFiles } from '../../util/sources.js';
import { type CliContext, EXIT, printDiagnostics } from '../context.js';
import { POLICY_FORMATS, type PolicyFormat, loadAnyPolicy } from '../load-policy.js';
import type { Verb } from '../verb.js';

export const DIFF_FORMATS = ['text', 'json', 'sarif', 'markdown'] as const;
type Format = (typeof DIFF_FORMATS)[number];

interface SyntaxApi {
  loadPolicy(path: string, sources: SourceFiles): { policy?: Policy; diagnostics: readonly Diagnostic[]; scope?: unknown };
  parseFlow(text: string, file: string, sources: SourceFiles, opts: { scope?: unknown; policy?: Policy }): { flow?: Flow; diagnostics: readonly Diagnostic[] };
}

async function syntax(): Promise<SyntaxApi> {
  const path = '../../syntax/index.js';
  return (await import(path)) as SyntaxApi;
}

/**
 * `nfproof diff OLD NEW`: which packets the change lets in, shuts out, NATs or routes
 * differently — or a proof that it changes nothing. Each side is a .nfp policy or an
 * iptables-save dump (any mix). Exit code 0 equivalent (or every difference expected by
 * --allow), 1 unexpected differences or an open question, 2 unreadable input, 70 internal error.
 */
export const diffVerb: Verb = {
  name: 'diff',
  summary: 'Show exactly which traffic a change lets in, shuts out, NATs or routes differently (or prove it changes nothing)',
  configure(cmd) {
    cmd
      .argument('<old>', 'the policy before: .nfp or iptables-save dump')
      .argument('<new>', 'the policy after: .nfp or iptables-save dump')
      .addOption(new Option('-f, --format <format>', 'output format').choices([...DIFF_FORMATS]).default('text'))
      .option('--allow <file>', 'expected differences, one per line: KIND FLOW (see grammar/diff-allow.md)')
      .addOption(new Option('--family <family>', 'compare only this family').choices([...FAMILIES]))
      .addOption(new Option('--from <format>', 'input format of both files (default: detected per file)').choices([...POLICY_FORMATS]))
      .option('-o, --output <file>', 'write the report to FILE (atomically) instead of stdout')
      .option('--timeout <ms>', 'time limit of one solver query in milliseconds', '5000')
      .option('--max-classes <n>', 'classes shown per kind of change in text/markdown (JSON and SARIF list all)', '20')
      .option('--no-replay', 'do not replay witnesses in the simulator');
  },
  async run(ctx, args, opts) {
    const [oldPath, newPath] = args;
    const from = opts.from as PolicyFormat | undefined;
    const load = async (path: string) => {
      const r = await loadAnyPolicy(path, ctx.sources, from ? { from } : {});
      printDiagnostics(ctx, sortDiagnostics(r.diagnostics.filter((d) => d.severity !== 'info' || !r.policy)));
      return r;
    };
    const a = await load(oldPath);
    const b = await load(newPath);
    if (!a.policy || !b.policy) return EXIT.input;
    const timeoutMs = Number(opts.timeout);
    const maxClasses = Number(opts.maxClasses);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || !Number.isInteger(maxClasses) || maxClasses < 0) {
      ctx.stderr.write('nfproof: --timeout must be a positive number of milliseconds and --max-classes a whole number\n');
      return EXIT.input;
    }
    let allow: AllowList | undefined;
    if (typeof opts.allow === 'string') {
      const file = opts.allow;
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        const span = { file, start: { line: 0, col: 0, offset: 0 }, end: { line: 0, col: 0, offset: 0 } };
        printDiagnostics(ctx, [diag('error', 'E-read', span, `cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`)]);
        return EXIT.input;
      }
      const syn = await syntax();
      // Flows may use the new policy's @defines and interface names.
      const scope = newPath.endsWith('.nfp') && from !== 'iptables-save' ? syn.loadPolicy(newPath, ctx.sources).scope : undefined;
      const parsed = parseAllowList(text, file, ctx.sources, (t, f, s) => syn.parseFlow(t, f, s, { ...(scope ? { scope } : {}), policy: b.policy! }));
      printDiagnostics(ctx, parsed.diagnostics);
      if (!parsed.list) return EXIT.input;
      allow = parsed.list;
    }
    const report: DiffReport = await diffPolicies(
      { path: oldPath, policy: a.policy },
      { path: newPath, policy: b.policy },
      {
        timeoutMs,
        replay: opts.replay !== false,
        ...(opts.family ? { families: [opts.family as Family] } : {}),
        ...(allow ? { allow, flows: allow.entries.map((e) => e.flow) } : {}),
      },
    );
    const format = opts.format as Format;
    const text =
      format === 'json'
        ? diffToJson(report)
        : format === 'sarif'
          ? JSON.stringify(diffToSarif(report), null, 2) + '\n'
          : format === 'markdown'
            ? renderDiffMarkdown(report, { maxClasses })
            : renderDiffText(report, { color: ctx.color, maxClasses });
    if (typeof opts.output === 'string') {
      try {
        writeFileAtomically(opts.output, text);
      } catch (e) {
        ctx.stderr.write(`nfproof: cannot write ${opts.output}: ${e instanceof Error ? e.message : String(e)}\n`);
        return EXIT.input;
      }
    } else ctx.stdout.write(text);
    return diffExitCode(report);
  },
};

export function diffExitCode(r: DiffReport): number {
  if (r.internalErrors.length) return EXIT.internal;
  if (r.classes.length || r.unknown.length) return EXIT.findings;
  return EXIT.ok;
}

// ---- translation validation (`nfproof compile --verify`) -------------------------------

/** One family's emitted text, read back and compared with the policy it came from. */
export interface TranslationCheck {
  readonly family: Family;
  /** What the importer said about the emitted text (errors mean it could not be read back). */
  readonly importDiagnostics: readonly Diagnostic[];
  readonly report?: DiffReport;
}

/**
 * Translation validation: each family's emitted iptables-restore text is read back by the
 * importer and diffed with the source policy (every table, nat included; the host model is the
 * policy's, as the emitted file does not carry one). Equivalent means the compiler kept the
 * meaning of every rule for every packet.
 */
export async function verifyTranslation(
  policy: Policy,
  path: string,
  emitted: readonly { readonly family: Family; readonly text: string }[],
  sources: SourceFiles,
  opts: { readonly timeoutMs?: number; readonly replay?: boolean } = {},
): Promise<TranslationCheck[]> {
  const { importIptablesSave } = await import('../../backends/import/index.js');
  const out: TranslationCheck[] = [];
  for (const { family, text } of emitted) {
    if (policy.rulesets[family].tables.length === 0) continue;
    const file = `${path} (emitted ${family === 'ipv4' ? 'rules.v4' : 'rules.v6'})`;
    sources.add(file, text);
    const r = importIptablesSave(text, file, sources, { family });
    if (!r.policy) {
      out.push({ family, importDiagnostics: r.diagnostics });
      continue;
    }
    const back: Policy = { ...r.policy, ...(policy.host ? { host: policy.host } : {}) };
    const report = await diffPolicies({ path, policy }, { path: file, policy: back }, { families: [family], ...opts });
    out.push({ family, importDiagnostics: r.diagnostics, report });
  }
  return out;
}

/** Prints the outcome of --verify; returns the exit code it calls for. */
export function reportVerification(ctx: CliContext, checks: readonly TranslationCheck[], color: boolean): number {
  let code: number = EXIT.ok;
  for (const c of checks) {
    if (!c.report) {
      printDiagnostics(ctx, c.importDiagnostics.filter((d) => d.severity === 'error'));
      ctx.stderr.write(`verify ${c.family}: the emitted rules cannot be read back by the importer\n`);
      code = EXIT.internal;
      continue;
    }
    const r = c.report;
    if (r.status === 'equivalent') {
      ctx.stderr.write(`verify ${c.family}: the emitted rules are equivalent to the policy (proved)\n`);
      continue;
    }
    ctx.stderr.write(`verify ${c.family}: the emitted rules are NOT proved equivalent to the policy\n`);
    ctx.stderr.write(renderDiffText(r, { color }));
    code = r.internalErrors.length ? EXIT.internal : Math.max(code, EXIT.findings);
  }
  return code;
}
