import { type Span, formatLocation } from './span.js';

export type Severity = 'error' | 'warning' | 'info';

/**
 * One message about the user's input. Diagnostics are data: phases collect them and keep going,
 * so a file with five mistakes reports five. Only the CLI decides how to print them.
 */
export interface Diagnostic {
  readonly severity: Severity;
  /** Stable identifier, e.g. `E-undefined-chain`; documented in grammar/diagnostics.md. */
  readonly code: string;
  readonly message: string;
  readonly span: Span;
  /** What the user could do about it. */
  readonly hint?: string;
  /** Other places worth showing (the earlier definition of a duplicate, the loop's other edge…). */
  readonly related?: readonly { readonly span: Span; readonly message: string }[];
}

export function diag(
  severity: Severity,
  code: string,
  span: Span,
  message: string,
  hint?: string,
  related?: Diagnostic['related'],
): Diagnostic {
  return { severity, code, message, span, ...(hint ? { hint } : {}), ...(related ? { related } : {}) };
}

/** A growing list of diagnostics shared by the phases of one run. */
export class DiagnosticBag {
  private readonly items: Diagnostic[] = [];

  add(d: Diagnostic): void {
    this.items.push(d);
  }

  error(code: string, span: Span, message: string, hint?: string, related?: Diagnostic['related']): void {
    this.add(diag('error', code, span, message, hint, related));
  }

  warning(code: string, span: Span, message: string, hint?: string, related?: Diagnostic['related']): void {
    this.add(diag('warning', code, span, message, hint, related));
  }

  addAll(ds: Iterable<Diagnostic>): void {
    for (const d of ds) this.items.push(d);
  }

  get all(): readonly Diagnostic[] {
    return this.items;
  }

  get hasErrors(): boolean {
    return this.items.some((d) => d.severity === 'error');
  }

  get errorCount(): number {
    return this.items.filter((d) => d.severity === 'error').length;
  }
}

/**
 * Thrown for a mistake in the user's input when a phase cannot go on at all (unreadable file,
 * include cycle). The CLI prints the diagnostics and exits 2; never a stack trace.
 */
export class UserInputError extends Error {
  readonly diagnostics: readonly Diagnostic[];

  constructor(diagnostics: readonly Diagnostic[] | Diagnostic) {
    const list = Array.isArray(diagnostics) ? diagnostics : [diagnostics as Diagnostic];
    super(list.map((d) => `${formatLocation(d.span)}: ${d.message}`).join('\n'));
    this.name = 'UserInputError';
    this.diagnostics = list;
  }
}

/** Sort by file, then position, keeping the original order for ties. */
export function sortDiagnostics(ds: readonly Diagnostic[]): Diagnostic[] {
  return ds
    .map((d, i) => ({ d, i }))
    .sort(
      (a, b) =>
        a.d.span.file.localeCompare(b.d.span.file) ||
        a.d.span.start.offset - b.d.span.start.offset ||
        a.i - b.i,
    )
    .map((x) => x.d);
}
