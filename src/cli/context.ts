import type { Writable } from 'node:stream';
import { renderDiagnostics } from '../report/text.js';
import type { Diagnostic } from '../util/diagnostics.js';
import { SourceFiles } from '../util/sources.js';

/** Exit codes every verb uses. */
export const EXIT = { ok: 0, findings: 1, input: 2, internal: 70 } as const;

/** What a verb needs from the outside world; tests pass their own streams. */
export interface CliContext {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly color: boolean;
  readonly isTTY: boolean;
  readonly sources: SourceFiles;
}

export function defaultContext(): CliContext {
  const isTTY = Boolean(process.stdout.isTTY);
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    color: Boolean(process.stderr.isTTY) && !process.env.NO_COLOR,
    isTTY,
    sources: new SourceFiles(),
  };
}

/** Prints diagnostics to stderr with code frames. */
export function printDiagnostics(ctx: CliContext, ds: readonly Diagnostic[]): void {
  if (ds.length === 0) return;
  ctx.stderr.write(renderDiagnostics(ds, ctx.sources, { color: ctx.color }) + '\n');
}
