import { codeFrameColumns } from '@babel/code-frame';
import { type Diagnostic, sortDiagnostics } from '../util/diagnostics.js';
import type { SourceFiles } from '../util/sources.js';
import { formatLocation, isGenerated } from '../util/span.js';

export interface TextOptions {
  /** ANSI colours (on for a TTY unless NO_COLOR is set). */
  readonly color: boolean;
}

/**
 * `file:line:col: error[E-code]: message`, then a code frame with a caret under the span,
 * then the hint. This is the format every nfproof verb uses for user-facing problems.
 */
export function renderDiagnostic(d: Diagnostic, sources: SourceFiles, opts: TextOptions): string {
  const sev = opts.color ? colourSeverity(d.severity) : d.severity;
  const lines = [`${formatLocation(d.span)}: ${sev}[${d.code}]: ${d.message}`];
  const frame = frameFor(d.span, sources, opts);
  if (frame) lines.push(frame);
  for (const r of d.related ?? []) {
    lines.push(`  note: ${formatLocation(r.span)}: ${r.message}`);
    const f = frameFor(r.span, sources, opts);
    if (f) lines.push(f);
  }
  if (d.hint) lines.push(`  hint: ${d.hint}`);
  return lines.join('\n');
}

function frameFor(span: Diagnostic['span'], sources: SourceFiles, opts: TextOptions): string | undefined {
  if (isGenerated(span)) return undefined;
  const text = sources.get(span.file);
  if (text === undefined) return undefined;
  const sameLine = span.end.line === span.start.line;
  return codeFrameColumns(
    text,
    {
      start: { line: span.start.line, column: span.start.col },
      // A one-character caret for empty spans; multi-line spans only mark their first line.
      end: { line: span.start.line, column: sameLine && span.end.col > span.start.col ? span.end.col : span.start.col + 1 },
    },
    { highlightCode: opts.color, forceColor: opts.color, linesAbove: 1, linesBelow: 1 },
  );
}

function colourSeverity(s: Diagnostic['severity']): string {
  const code = s === 'error' ? 31 : s === 'warning' ? 33 : 36;
  return `\u001b[1;${code}m${s}\u001b[0m`;
}

export function renderDiagnostics(ds: readonly Diagnostic[], sources: SourceFiles, opts: TextOptions): string {
  const sorted = sortDiagnostics(ds);
  const body = sorted.map((d) => renderDiagnostic(d, sources, opts)).join('\n\n');
  const errors = ds.filter((d) => d.severity === 'error').length;
  const warnings = ds.filter((d) => d.severity === 'warning').length;
  const summary = [errors && `${errors} error${errors === 1 ? '' : 's'}`, warnings && `${warnings} warning${warnings === 1 ? '' : 's'}`]
    .filter(Boolean)
    .join(', ');
  return summary ? `${body}\n\n${summary}` : body;
}
