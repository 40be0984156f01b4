import { readFileSync } from 'node:fs';
import { formatSource } from '../../syntax/format.js';
import { writeFileAtomically } from '../../util/atomic-write.js';
import { type Diagnostic, diag } from '../../util/diagnostics.js';
import { EXIT, printDiagnostics } from '../context.js';
import type { Verb } from '../verb.js';

/**
 * `nfproof fmt POLICY… [--check | --write]`: lays .nfp files out canonically (indentation,
 * spacing, one rule per line, sets), keeping comments and meaning. Prints the result, or with
 * --check exits 1 when a file is not formatted (for CI), or with --write rewrites the files
 * that change (atomically). A file with syntax errors is reported and left alone (exit 2).
 */
export const fmtVerb: Verb = {
  name: 'fmt',
  summary: 'Format .nfp files canonically (--check for CI, --write to rewrite them)',
  configure(cmd) {
    cmd
      .argument('<policy...>', '.nfp files')
      .option('--check', 'change nothing; exit 1 if a file is not formatted')
      .option('--write', 'rewrite the files that are not formatted');
  },
  async run(ctx, args, opts) {
    if (opts.check && opts.write) {
      ctx.stderr.write('nfproof fmt: use either --check or --write\n');
      return EXIT.input;
    }
    let failed = false;
    let unformatted = 0;
    const outputs: string[] = [];
    for (const path of args) {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (e) {
        const span = { file: path, start: { line: 0, col: 0, offset: 0 }, end: { line: 0, col: 0, offset: 0 } };
        const problem: Diagnostic = diag('error', 'E-read', span, `cannot read ${path}: ${e instanceof Error && 'code' in e && e.code === 'ENOENT' ? 'no such file' : String(e)}`);
        printDiagnostics(ctx, [problem]);
        failed = true;
        continue;
      }
      ctx.sources.add(path, text);
      const r = formatSource(text, path);
      printDiagnostics(ctx, r.diagnostics);
      if (r.text === undefined) {
        failed = true;
        continue;
      }
      if (opts.check) {
        if (r.text !== text) {
          unformatted++;
          ctx.stderr.write(`${path}: not formatted (run nfproof fmt --write ${path})\n`);
        }
      } else if (opts.write) {
        if (r.text !== text) {
          try {
            writeFileAtomically(path, r.text);
          } catch (e) {
            ctx.stderr.write(`nfproof: cannot write ${path}: ${e instanceof Error ? e.message : String(e)} (left unchanged)\n`);
            failed = true;
            continue;
          }
          ctx.stderr.write(`formatted ${path}\n`);
        }
      } else {
        outputs.push(r.text);
      }
    }
    if (outputs.length) ctx.stdout.write(outputs.join('\n'));
    if (failed) return EXIT.input;
    return unformatted > 0 ? EXIT.findings : EXIT.ok;
  },
};
