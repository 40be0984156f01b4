import { Option } from 'commander';
import { queryFlow } from '../../analyze/query.js';
import type { Flow, Policy } from '../../ir/policy.js';
import { renderQueryText } from '../../report/findings-text.js';
import { toJson } from '../../report/json.js';
import { type Diagnostic, sortDiagnostics } from '../../util/diagnostics.js';
import type { SourceFiles } from '../../util/sources.js';
import { EXIT, printDiagnostics } from '../context.js';
import { POLICY_FORMATS, type PolicyFormat, loadAnyPolicy } from '../load-policy.js';
import type { Verb } from '../verb.js';

interface SyntaxApi {
  loadPolicy(path: string, sources: SourceFiles): { policy?: Policy; diagnostics: readonly Diagnostic[]; scope?: unknown };
  parseFlow(text: string, file: string, sources: SourceFiles, opts: { scope?: unknown; policy?: Policy }): { flow?: Flow; diagnostics: readonly Diagnostic[] };
}

async function syntax(): Promise<SyntaxApi> {
  const path = '../../syntax/index.js';
  return (await import(path)) as SyntaxApi;
}

/**
 * `nfproof query POLICY 'tcp from 10.0.0.0/8 to 192.168.1.10 dport 22'`: the verdicts that
 * traffic can get, a witness packet for each, and the rules that decide it.
 * Exit code 0 (answered), 2 (the policy or the flow cannot be read), 70 (internal error).
 */
export const queryVerb: Verb = {
  name: 'query',
  summary: 'Show every verdict a flow of packets can get, with a witness and the deciding rules',
  configure(cmd) {
    cmd
      .argument('<policy>', '.nfp policy or iptables-save dump')
      .argument('<flow>', "the packets to ask about, e.g. 'tcp from 10.0.0.0/8 to 192.168.1.10 dport 22'")
      .addOption(new Option('-f, --format <format>', 'output format').choices(['text', 'json']).default('text'))
      .option('--timeout <ms>', 'time limit of one solver query in milliseconds', '5000')
      .option('--no-replay', 'do not replay witnesses in the simulator')
      .addOption(new Option('--from <format>', 'input format (default: detected)').choices([...POLICY_FORMATS]));
  },
  async run(ctx, args, opts) {
    const [path, flowText] = args;
    const syn = await syntax();
    let policy: Policy | undefined;
    let scope: unknown;
    const isNfp = opts.from ? opts.from === 'nfp' : path.endsWith('.nfp');
    if (isNfp) {
      const r = syn.loadPolicy(path, ctx.sources);
      printDiagnostics(ctx, r.diagnostics.filter((d) => d.severity !== 'info' || !r.policy));
      policy = r.policy;
      scope = r.scope;
    } else {
      const loaded = await loadAnyPolicy(path, ctx.sources, opts.from ? { from: opts.from as PolicyFormat } : {});
      printDiagnostics(ctx, sortDiagnostics(loaded.diagnostics.filter((d) => d.severity !== 'info' || !loaded.policy)));
      policy = loaded.policy;
    }
    if (!policy) return EXIT.input;
    const parsed = syn.parseFlow(flowText, '<flow>', ctx.sources, { ...(scope ? { scope } : {}), policy });
    if (!parsed.flow) {
      printDiagnostics(ctx, parsed.diagnostics);
      return EXIT.input;
    }
    const timeoutMs = Number(opts.timeout);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      ctx.stderr.write(`nfproof: --timeout must be a positive number of milliseconds, not "${String(opts.timeout)}"\n`);
      return EXIT.input;
    }
    const report = await queryFlow(policy, parsed.flow, { timeoutMs, replay: opts.replay !== false });
    ctx.stdout.write(opts.format === 'json' ? toJson(report) + '\n' : renderQueryText(report, { color: ctx.color }));
    return report.internalErrors.length ? EXIT.internal : EXIT.ok;
  },
};
