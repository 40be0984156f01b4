/** A position in a source file. `line` and `col` are 1-based, `offset` is 0-based (UTF-16 units). */
export interface SourcePos {
  readonly line: number;
  readonly col: number;
  readonly offset: number;
}

/** Where a construct came from: a `.nfp` file, an iptables-save dump, or something nfproof made up. */
export interface Span {
  readonly file: string;
  readonly start: SourcePos;
  readonly end: SourcePos;
}

/** A span for things that have no source text (generated policies, defaults). */
export const NO_SPAN: Span = Object.freeze({
  file: '<generated>',
  start: Object.freeze({ line: 0, col: 0, offset: 0 }),
  end: Object.freeze({ line: 0, col: 0, offset: 0 }),
});

export function isGenerated(span: Span): boolean {
  return span.start.line === 0;
}

/** `file:line:col`, the form editors and CI annotations understand. */
export function formatLocation(span: Span): string {
  return isGenerated(span) ? span.file : `${span.file}:${span.start.line}:${span.start.col}`;
}

/** `file:line`, used in emitted `-m comment` so a kernel rule points back at its source. */
export function formatFileLine(span: Span): string {
  return isGenerated(span) ? span.file : `${span.file}:${span.start.line}`;
}

/** Smallest span covering both. Both must be in the same file. */
export function joinSpans(a: Span, b: Span): Span {
  const start = a.start.offset <= b.start.offset ? a.start : b.start;
  const end = a.end.offset >= b.end.offset ? a.end : b.end;
  return { file: a.file, start, end };
}
