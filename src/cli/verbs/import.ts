import { readFileSync } from 'node:fs';
import { Option } from 'commander';
import { idiomatic } from '../../backends/import/idiom.js';
import { importIptablesSave } from '../../backends/import/index.js';
import { printPolicy } from '../../syntax/index.js';
import { writeFileAtomically } from '../../util/atomic-write.js';
import { diag, sortDiagnostics } from '../../util/diagnostics.js';
import { FAMILIES, type Family } from '../../util/ip.js';
import { EXIT, printDiagnostics } from '../context.js';
import type { Verb } from '../verb.js';

/**
 * `nfproof import FILE [-o POLICY.nfp]`: an iptables-save dump or iptables script as an
 * idiomatic .nfp policy (runs of rules folded into sets, repeated sets into defines, comments
 * kept). Unmodelled extensions are kept verbatim (`xt match …`, `xt target …`) with a warning.
 */
export const importVerb: Verb = {
  name: 'import',
  summary: 'Turn an iptables-save dump or iptables script into a .nfp policy',
  configure(cmd) {
    cmd
      .argument('<file>', 'iptables-save / ip6tables-save output, or a script of iptables commands (- reads stdin)')
      .option('-o, --output <policy>', 'write the policy to this file instead of stdout')
      .addOption(new Option('--family <family>', 'family of a dump (default: detected)').choices([...FAMILIES]))
      .option('--literal', 'one .nfp rule per iptables rule: no folding into sets and defines');
  },
  async run(ctx, args, opts) {
    const file = args[0] === '-' ? '<stdin>' : args[0];
    let text: string;
    try {
      text = readFileSync(args[0] === '-' ? 0 : file, 'utf8');
    } catch (e) {
      const span = { file, start: { line: 0, col: 0, offset: 0 }, end: { line: 0, col: 0, offset: 0 } };
      printDiagnostics(ctx, [diag('error', 'E-read', span, `cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`)]);
      return EXIT.input;
    }
    const r = importIptablesSave(text, file, ctx.sources, opts.family ? { family: opts.family as Family } : {});
    printDiagnostics(ctx, sortDiagnostics(r.diagnostics));
    if (!r.policy) return EXIT.input;
    const policy = opts.literal ? r.policy : idiomatic(r.policy);
    const opaque = [...r.stats.opaqueMatches.values(), ...r.stats.opaqueTargets.values()].reduce((a, b) => a + b, 0);
    const header = [
      `# Imported by nfproof from ${file} (${r.format}): ${r.stats.rules} rules, ${r.stats.modelledRules} fully modelled` +
        (opaque ? `, ${opaque} matches/targets kept verbatim (xt …)` : '') +
        '.',
      ...(r.assumptions.interfaces.length ? [`# No host model: interfaces assumed from -i/-o: ${r.assumptions.interfaces.join(', ')}.`] : []),
      '',
    ].join('\n');
    const out = header + printPolicy(policy);
    if (typeof opts.output === 'string') {
      try {
        writeFileAtomically(opts.output, out);
      } catch (e) {
        ctx.stderr.write(`nfproof: cannot write ${opts.output}: ${e instanceof Error ? e.message : String(e)} (nothing was changed)\n`);
        return EXIT.input;
      }
      ctx.stderr.write(`wrote ${opts.output}: ${r.stats.rules} rules (${r.stats.modelledRules} fully modelled)\n`);
    } else {
      ctx.stdout.write(out);
    }
    return EXIT.ok;
  },
};
