import type { Span } from '../../util/span.js';

/**
 * Source text cut into lines, with what is needed to turn a (line, column) into a Span.
 * Columns are 1-based UTF-16 positions, offsets 0-based, as everywhere in nfproof.
 */
export interface SourceLine {
  /** 1-based line number. */
  readonly line: number;
  /** The line without its terminator (and without a trailing `\r`). */
  readonly text: string;
  /** Offset of the line's first character in the file. */
  readonly offset: number;
}

export function splitLines(text: string): SourceLine[] {
  const out: SourceLine[] = [];
  let offset = 0;
  let line = 1;
  while (offset <= text.length) {
    const nl = text.indexOf('\n', offset);
    const end = nl < 0 ? text.length : nl;
    let body = text.slice(offset, end);
    if (body.endsWith('\r')) body = body.slice(0, -1);
    if (nl >= 0 || body !== '') out.push({ line, text: body, offset });
    if (nl < 0) break;
    offset = nl + 1;
    line++;
  }
  return out;
}

/** Span of columns [startCol, endCol) (0-based indexes into the line text). */
export function spanOf(file: string, l: SourceLine, start: number, end: number): Span {
  return {
    file,
    start: { line: l.line, col: start + 1, offset: l.offset + start },
    end: { line: l.line, col: end + 1, offset: l.offset + end },
  };
}

/** Span of the whole line, leading and trailing blanks left out. */
export function lineSpan(file: string, l: SourceLine): Span {
  const t = l.text;
  let start = 0;
  let end = t.length;
  while (start < end && (t[start] === ' ' || t[start] === '\t')) start++;
  while (end > start && (t[end - 1] === ' ' || t[end - 1] === '\t')) end--;
  return spanOf(file, l, start, end);
}
