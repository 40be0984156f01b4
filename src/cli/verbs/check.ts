import { Option } from 'commander';
import cliProgress from 'cli-progress';
import { type CheckOptions, checkPolicy } from '../../analyze/check.js';
import type { CheckReport } from '../../analyze/types.js';
import { renderCheckText } from '../../report/findings-text.js';
import { toJson } from '../../report/json.js';
import { toJunit } from '../../report/junit.js';
import { toSarif } from '../../report/sarif.js';
import { writeFileAtomically } from '../../util/atomic-write.js';
import { type Diagnostic, sortDiagnostics } from '../../util/diagnostics.js';
import { EXIT, printDiagnostics } from '../context.js';
import type { CliContext } from '../context.js';
import { POLICY_FORMATS, type PolicyFormat, loadAnyPolicy } from '../load-policy.js';
import type { Verb } from '../verb.js';

export const CHECK_FORMATS = ['text', 'json', 'sarif', 'junit'] as const;
type Format = (typeof CHECK_FORMATS)[number];

/**
 * `nfproof check POLICY`: proves the policy's `expect` statements and reports unreachable,
 * shadowed and redundant rules, unused chains, NAT rules that never fire and rule anomalies,
 * each with a witness packet replayed in the simulator.
 *
 * Exit code: 0 clean; 1 a finding at or above --fail-on, or an expectation that fails or cannot
 * be decided; 2 the policy cannot be read; 70 nfproof contradicted itself (internal error).
 */
export const checkVerb: Verb = {
  name: 'check',
  summary: 'Prove the expectations of a policy and find unreachable, shadowed and redundant rules',
  configure(cmd) {
    cmd
      .argument('<policy>', '.nfp policy or iptables-save dump')
      .addOption(new Option('-f, --format <format>', 'output format').choices([...CHECK_FORMATS]).default('text'))
      .addOption(new Option('--fail-on <severity>', 'lowest finding severity that fails the check').choices(['error', 'warning']).default('error'))
      .option('-o, --output <file>', 'write the report to FILE (atomically) instead of stdout')
      .option('--timeout <ms>', 'time limit of one solver query in milliseconds', '5000')
      .option('--anomalies', 'also report rules whose order decides overlapping packets (generalization, correlation) as info')
      .option('--no-replay', 'do not replay witnesses in the simulator')
      .option('-v, --verbose', 'also list the expectations that hold')
      .addOption(new Option('--from <format>', 'input format (default: detected)').choices([...POLICY_FORMATS]));
  },
  async run(ctx, args, opts) {
    const path = args[0];
    const loaded = await loadAnyPolicy(path, ctx.sources, opts.from ? { from: opts.from as PolicyFormat } : {});
    if (!loaded.policy) {
      printDiagnostics(ctx, sortDiagnostics(loaded.diagnostics));
      return EXIT.input;
    }
    // The analyzer reports unused chains itself, with more to say about them.
    const { shown, folded } = foldRepeated(sortDiagnostics(loaded.diagnostics.filter((d) => d.severity !== 'info' && d.code !== 'W-unreachable-chain')), 3);
    printDiagnostics(ctx, shown);
    for (const [code, n] of folded) ctx.stderr.write(`note: ${n} more ${code} like the ones above, not shown\n\n`);
    const timeoutMs = Number(opts.timeout);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      ctx.stderr.write(`nfproof: --timeout must be a positive number of milliseconds, not "${String(opts.timeout)}"\n`);
      return EXIT.input;
    }
    const format = opts.format as Format;
    const progress = startProgress(ctx, format);
    const checkOpts: CheckOptions = {
      timeoutMs,
      anomalies: opts.anomalies === true,
      replay: opts.replay !== false,
      ...(progress ? { onProgress: progress.update } : {}),
    };
    let report: CheckReport;
    try {
      report = await checkPolicy(loaded.policy, checkOpts);
    } finally {
      progress?.stop();
    }
    if (loaded.assumptions?.interfaces.length) {
      (report.assumptions as string[]).unshift(`interfaces seen in the dump and nothing else known about them: ${loaded.assumptions.interfaces.join(', ')}`);
    }
    const failOn = opts.failOn as 'error' | 'warning';
    const text = render(report, format, ctx, failOn, opts.verbose === true);
    if (typeof opts.output === 'string') {
      try {
        writeFileAtomically(opts.output, text);
      } catch (e) {
        ctx.stderr.write(`nfproof: cannot write ${opts.output}: ${e instanceof Error ? e.message : String(e)}\n`);
        return EXIT.input;
      }
      if (format !== 'text') ctx.stderr.write(renderCheckText(report, ctx.sources, { color: ctx.color }).split('\n').filter(Boolean).pop() + '\n');
    } else ctx.stdout.write(text);
    return exitCode(report, failOn);
  },
};

/**
 * The same input warning on many lines (an old dump writing `-d ! x` everywhere) is shown a few
 * times and then counted, so that the analysis results stay in view.
 */
export function foldRepeated(ds: readonly Diagnostic[], keep: number): { shown: Diagnostic[]; folded: Map<string, number> } {
  const seen = new Map<string, number>();
  const shown: Diagnostic[] = [];
  const folded = new Map<string, number>();
  for (const d of ds) {
    const n = (seen.get(d.code) ?? 0) + 1;
    seen.set(d.code, n);
    if (d.severity === 'error' || n <= keep) shown.push(d);
    else folded.set(d.code, (folded.get(d.code) ?? 0) + 1);
  }
  return { shown, folded };
}

function render(report: CheckReport, format: Format, ctx: CliContext, failOn: 'error' | 'warning', verbose: boolean): string {
  switch (format) {
    case 'text':
      return renderCheckText(report, ctx.sources, { color: ctx.color, verbose });
    case 'json':
      return toJson(report) + '\n';
    case 'sarif':
      return JSON.stringify(toSarif(report), null, 2) + '\n';
    case 'junit':
      return toJunit(report, { failOn });
  }
}

export function exitCode(report: CheckReport, failOn: 'error' | 'warning'): number {
  if (report.internalErrors.length) return EXIT.internal;
  const failing = report.findings.some((f) => f.severity === 'error' || (failOn === 'warning' && f.severity === 'warning'));
  const expectFail = report.expectations.some((e) => e.status !== 'proved');
  return failing || expectFail ? EXIT.findings : EXIT.ok;
}

/** A progress bar on stderr for long runs on a terminal; nothing otherwise. */
function startProgress(ctx: CliContext, format: Format): { update: NonNullable<CheckOptions['onProgress']>; stop: () => void } | undefined {
  const tty = Boolean((ctx.stderr as NodeJS.WriteStream).isTTY);
  if (!tty || format !== 'text' || process.env.CI) return undefined;
  const started = Date.now();
  let bar: cliProgress.SingleBar | undefined;
  let phase = '';
  return {
    update: (p) => {
      // Only runs that take a while get a bar; short ones stay quiet.
      if (!bar && Date.now() - started < 700) return;
      if (!bar) {
        bar = new cliProgress.SingleBar(
          { stream: ctx.stderr as NodeJS.WriteStream, format: '{phase} [{bar}] {value}/{total} {duration_formatted}', clearOnComplete: true, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(p.total, p.done, { phase: p.phase });
        phase = p.phase;
      }
      if (p.phase !== phase) {
        bar.setTotal(p.total);
        phase = p.phase;
      }
      bar.update(p.done, { phase: p.phase });
    },
    stop: () => bar?.stop(),
  };
}
