import type { IToken } from 'chevrotain';
import type { Word } from '../kinds/dsl.js';
import type { Diagnostic } from '../util/diagnostics.js';
import type { Span } from '../util/span.js';
import type { ChainAst, Line, Statement } from './ast.js';
import { parseFile } from './parser.js';

/**
 * `nfproof fmt`: a .nfp file laid out canonically, with its meaning, words and comments kept.
 *
 * - one statement or rule per line (`a; b` is split), two spaces per block level;
 * - single spaces between words, `!=` spaced, `!x` and `a,b` kept tight as written;
 * - sets as `{ a, b }` on one line, or one element per line when the line would be longer
 *   than 100 columns or the set holds comments;
 * - `#` comments stay where they were: on their own line (indented with what follows) or after
 *   the code of their line; blank lines are kept, at most one in a row.
 *
 * Only layout changes: the formatted text parses to the same IR (a test checks it on random
 * policies). A file with syntax errors is not formatted.
 */
export interface FormatResult {
  /** The formatted text; absent when the file has syntax errors. */
  readonly text?: string;
  readonly diagnostics: readonly Diagnostic[];
}

const WIDTH = 100;
const INDENT = '  ';

interface Comment {
  readonly line: number;
  readonly offset: number;
  readonly text: string;
}

export function formatSource(source: string, file: string): FormatResult {
  const parsed = parseFile(source, file);
  if (parsed.diagnostics.some((d) => d.severity === 'error')) return { diagnostics: parsed.diagnostics };
  const f = new Formatter(source, parsed.comments);
  for (const s of parsed.ast.statements) f.statement(s);
  return { text: f.finish(), diagnostics: parsed.diagnostics };
}

class Formatter {
  private readonly out: string[] = [];
  private readonly comments: Comment[];
  private next = 0;
  /** Last source line printed, to keep (one) blank line where the source had one. */
  private lastLine = 0;
  private readonly blank: boolean[];
  private readonly source: string;

  constructor(source: string, comments: readonly IToken[]) {
    this.comments = comments.map((c) => ({ line: c.startLine ?? 0, offset: c.startOffset, text: c.image.trimEnd() }));
    this.source = source;
    this.blank = source.split('\n').map((l) => l.trim() === '');
  }

  finish(): string {
    this.commentsBefore(Infinity, 0);
    while (this.out.length && this.out[this.out.length - 1] === '') this.out.pop();
    return this.out.join('\n') + '\n';
  }

  /** A blank line in the source between the last printed line and `line`. */
  private gapBefore(line: number): boolean {
    for (let l = this.lastLine + 1; l < line; l++) if (this.blank[l - 1]) return true;
    return false;
  }

  private emit(depth: number, text: string, line: number): void {
    if (this.out.length && this.lastLine > 0 && this.gapBefore(line) && this.out[this.out.length - 1] !== '') this.out.push('');
    this.out.push(INDENT.repeat(depth) + text);
    this.lastLine = Math.max(this.lastLine, line);
  }

  /** Own-line comments that come before `line`. */
  private commentsBefore(line: number, depth: number): void {
    while (this.next < this.comments.length && this.comments[this.next].line < line) {
      const c = this.comments[this.next++];
      this.emit(depth, c.text, c.line);
    }
  }

  /**
   * Appends the comment that ends the source line, if nothing but punctuation stands between
   * the construct just printed (ending at `end`) and the comment.
   */
  private trailing(end: number): void {
    const c = this.comments[this.next];
    if (c && c.offset >= end && /^[ \t,;{]*$/.test(this.source.slice(end, c.offset))) {
      this.out[this.out.length - 1] += `  ${c.text}`;
      this.next++;
    }
  }

  /** One output line for a construct spanning [span]; comments inside it go after it. */
  private line(depth: number, text: string, span: Span): void {
    this.commentsBefore(span.start.line, depth);
    this.emit(depth, text, span.start.line);
    // Comments inside a construct printed on one line (rare: a multi-line set without a
    // comment-free layout) are kept as own-line comments after it.
    while (this.next < this.comments.length && this.comments[this.next].line < span.end.line) {
      const c = this.comments[this.next++];
      this.emit(depth, c.text, c.line);
    }
    this.trailing(span.end.offset);
    this.lastLine = Math.max(this.lastLine, span.end.line);
  }

  statement(s: Statement): void {
    switch (s.kind) {
      case 'include':
        this.words(0, ['include', JSON.stringify(s.path)], s.extra, s.span);
        break;
      case 'define':
        this.words(0, ['define', s.name.text, '='], s.value, s.span);
        break;
      case 'service':
        this.words(0, ['service', s.name.text, '='], s.words, s.span);
        break;
      case 'expect':
        this.words(0, ['expect'], s.words, s.span);
        break;
      case 'stray':
        this.words(0, [], s.words, s.span);
        break;
      case 'host':
        this.block(0, `host ${s.name.text}`, s.name.span.end.offset, s.span, () => s.items.forEach((l) => this.ruleLine(1, l)));
        break;
      case 'table':
        this.block(0, ['table', ...(s.family ? [s.family.text] : []), s.name.text].join(' '), s.name.span.end.offset, s.span, () => {
          // Chains and stray lines in source order.
          const parts: ({ chain: ChainAst } | { line: Line })[] = [...s.chains.map((chain) => ({ chain })), ...s.stray.map((line) => ({ line }))];
          parts.sort((a, b) => ('chain' in a ? a.chain.span : a.line.span).start.offset - ('chain' in b ? b.chain.span : b.line.span).start.offset);
          for (const p of parts) {
            if ('chain' in p) this.chain(1, p.chain);
            else this.ruleLine(1, p.line);
          }
        });
        break;
      default: {
        const never: never = s;
        void never;
      }
    }
  }

  private chain(depth: number, c: ChainAst): void {
    const header = ['chain', c.name.text, ...(c.policy ? ['policy', c.policy.text] : [])].join(' ');
    this.block(depth, header, (c.policy ?? c.name).span.end.offset, c.span, () => c.rules.forEach((l) => this.ruleLine(depth + 1, l)));
  }

  private block(depth: number, header: string, headerEnd: number, span: Span, body: () => void): void {
    this.commentsBefore(span.start.line, depth);
    const before = this.out.length;
    this.emit(depth, `${header} {`, span.start.line);
    this.trailing(headerEnd);
    body();
    this.commentsBefore(span.end.line, depth + 1);
    if (this.out.length === before + 1 && !this.out[before].includes('#')) {
      // Nothing inside: `chain output { }` on one line.
      this.out[before] += ' }';
    } else {
      this.emit(depth, '}', span.end.line);
    }
    this.trailing(span.end.offset);
    this.lastLine = Math.max(this.lastLine, span.end.line);
  }

  private ruleLine(depth: number, l: Line): void {
    this.words(depth, [], l.words, l.span);
  }

  /** A line of words after a fixed head; a long or commented set is broken over lines. */
  private words(depth: number, head: readonly string[], words: readonly Word[], span: Span): void {
    const flat = [...head, ...joinWords(words)].join(' ');
    const set = words.length > 0 ? words[words.length - 1] : undefined;
    const setHasComments = set?.type === 'set' && this.comments.some((c, i) => i >= this.next && c.line > set.span.start.line && c.line <= set.span.end.line);
    if (set?.type === 'set' && set.items.length > 1 && (INDENT.repeat(depth).length + flat.length > WIDTH || setHasComments)) {
      // The set ends the line (defines, most long rules): one element per line.
      const lead = [...head, ...joinWords(words.slice(0, -1))].join(' ');
      this.commentsBefore(span.start.line, depth);
      this.emit(depth, `${lead} {`.trimStart(), span.start.line);
      this.trailing(set.span.start.offset + 1);
      for (const item of set.items) {
        const first = item[0].span.start.line;
        this.commentsBefore(first, depth + 1);
        this.emit(depth + 1, `${joinWords(item).join(' ')},`, first);
        this.trailing(item[item.length - 1].span.end.offset);
      }
      this.commentsBefore(set.span.end.line, depth + 1);
      this.emit(depth, '}', set.span.end.line);
      this.trailing(set.span.end.offset);
      return;
    }
    this.line(depth, flat, span);
  }
}

/**
 * Words as text: `!` sticks to what it negates, a comma to the word before it, and the word
 * after a comma stays tight only if it was written so (`established,related`).
 */
function joinWords(words: readonly Word[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    const prev = words[i - 1];
    const attach = prev !== undefined && (prev.type === 'bang' || w.type === 'comma' || (prev.type === 'comma' && w.span.start.offset === prev.span.end.offset));
    if (attach && out.length) out[out.length - 1] += wordOut(w);
    else out.push(wordOut(w));
  }
  return out;
}

function wordOut(w: Word): string {
  switch (w.type) {
    case 'atom':
      return w.text;
    case 'string':
      return JSON.stringify(w.value);
    case 'ref':
      return `@${w.name}`;
    case 'bang':
      return '!';
    case 'neq':
      return '!=';
    case 'comma':
      return ',';
    case 'set':
      return w.items.length === 0 ? '{ }' : `{ ${w.items.map((item) => joinWords(item).join(' ')).join(', ')} }`;
  }
}
