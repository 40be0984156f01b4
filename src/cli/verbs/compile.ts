import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Option } from 'commander';
import { type EmitResult, emitRuleset } from '../../backends/emit/index.js';
import { sortDiagnostics } from '../../util/diagnostics.js';
import { writeFilesAtomically } from '../../util/atomic-write.js';
import { FAMILIES, type Family } from '../../util/ip.js';
import { EXIT, printDiagnostics } from '../context.js';
import { POLICY_FORMATS, type PolicyFormat, loadAnyPolicy } from '../load-policy.js';
import type { Verb } from '../verb.js';
import { reportVerification, verifyTranslation } from './diff.js';

const FILE_NAME: Record<Family, string> = { ipv4: 'rules.v4', ipv6: 'rules.v6' };

/**
 * `nfproof compile POLICY [-o DIR] [--family ipv4|ipv6]`: the iptables-restore files of a
 * policy. With -o, DIR/rules.v4 and DIR/rules.v6 are written together atomically, and only when
 * the policy and the emitter report no error; without -o the text goes to stdout.
 */
export const compileVerb: Verb = {
  name: 'compile',
  summary: 'Write the iptables-restore / ip6tables-restore files of a policy (rules.v4, rules.v6)',
  configure(cmd) {
    cmd
      .argument('<policy>', '.nfp policy (or an iptables-save dump, to normalise it)')
      .option('-o, --output <dir>', 'write DIR/rules.v4 and DIR/rules.v6 instead of printing')
      .addOption(new Option('--family <family>', 'only this family').choices([...FAMILIES]))
      .addOption(new Option('--from <format>', 'input format (default: detected)').choices([...POLICY_FORMATS]))
      .option('--no-source-comments', 'do not tag each rule with its source file:line')
      .option('--verify', 'prove the emitted rules, read back by the importer, equivalent to the policy (translation validation; nothing is written unless they are)');
  },
  async run(ctx, args, opts) {
    const path = args[0];
    const loaded = await loadAnyPolicy(path, ctx.sources, opts.from ? { from: opts.from as PolicyFormat } : {});
    if (!loaded.policy) {
      printDiagnostics(ctx, sortDiagnostics(loaded.diagnostics));
      return EXIT.input;
    }
    const families: readonly Family[] = opts.family ? [opts.family as Family] : FAMILIES;
    const results = families.map((f) => [f, emitRuleset(loaded.policy!, f, { sourceComments: opts.sourceComments !== false })] as const);
    const diagnostics = [...loaded.diagnostics, ...results.flatMap(([, r]: readonly [Family, EmitResult]) => r.diagnostics)];
    printDiagnostics(ctx, sortDiagnostics(diagnostics));
    if (diagnostics.some((d) => d.severity === 'error')) {
      ctx.stderr.write(`nfproof: nothing written: ${path} cannot be compiled as it is\n`);
      return EXIT.input;
    }
    let verified: number = EXIT.ok;
    if (opts.verify) {
      const checks = await verifyTranslation(loaded.policy, path, results.map(([family, r]) => ({ family, text: r.text })), ctx.sources);
      verified = reportVerification(ctx, checks, ctx.color);
      if (verified !== EXIT.ok && typeof opts.output === 'string') {
        ctx.stderr.write(`nfproof: nothing written: the emitted rules are not proved equivalent to ${path}\n`);
        return verified;
      }
    }
    if (typeof opts.output === 'string') {
      const dir = opts.output;
      try {
        mkdirSync(dir, { recursive: true });
        writeFilesAtomically(results.map(([f, r]) => ({ path: join(dir, FILE_NAME[f]), content: r.text })));
      } catch (e) {
        ctx.stderr.write(`nfproof: cannot write to ${dir}: ${e instanceof Error ? e.message : String(e)} (nothing was changed)\n`);
        return EXIT.input;
      }
      for (const [f, r] of results) {
        ctx.stderr.write(`wrote ${join(dir, FILE_NAME[f])}: ${r.stats.lines} rules from ${r.stats.rules} policy rules${r.stats.auxChains ? `, ${r.stats.auxChains} auxiliary chains` : ''}\n`);
      }
      return EXIT.ok;
    }
    ctx.stdout.write(results.map(([, r]) => r.text).join('\n'));
    return verified;
  },
};
