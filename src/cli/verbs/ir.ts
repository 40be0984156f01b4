import { Option } from 'commander';
import { sortDiagnostics } from '../../util/diagnostics.js';
import { FAMILIES, type Family } from '../../util/ip.js';
import { type Span, formatLocation } from '../../util/span.js';
import { EXIT, printDiagnostics } from '../context.js';
import { POLICY_FORMATS, type PolicyFormat, loadAnyPolicy } from '../load-policy.js';
import type { Verb } from '../verb.js';

function isSpan(v: unknown): v is Span {
  return typeof v === 'object' && v !== null && 'file' in v && 'start' in v && 'end' in v;
}

/** JSON for the IR: bigints as decimal strings, spans as "file:line:col". */
export function irJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : isSpan(v) ? formatLocation(v) : v), 2);
}

/**
 * `nfproof ir POLICY`: the typed IR of a policy as JSON — what every other part of nfproof
 * works on. Bigints (addresses, marks) are decimal strings, spans `file:line:col`.
 */
export const irVerb: Verb = {
  name: 'ir',
  summary: 'Print the typed IR of a policy as JSON',
  configure(cmd) {
    cmd
      .argument('<policy>', '.nfp policy (or an iptables-save dump)')
      .addOption(new Option('--family <family>', 'print only the ruleset of this family').choices([...FAMILIES]))
      .addOption(new Option('--from <format>', 'input format (default: detected)').choices([...POLICY_FORMATS]));
  },
  async run(ctx, args, opts) {
    const loaded = await loadAnyPolicy(args[0], ctx.sources, opts.from ? { from: opts.from as PolicyFormat } : {});
    printDiagnostics(ctx, sortDiagnostics(loaded.diagnostics));
    if (!loaded.policy) return EXIT.input;
    const value = opts.family ? loaded.policy.rulesets[opts.family as Family] : loaded.policy;
    ctx.stdout.write(irJson(value) + '\n');
    return EXIT.ok;
  },
};
