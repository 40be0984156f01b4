import { type Diagnostic, diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { type SourceLine, spanOf } from './text.js';

/**
 * One word of a rule line, unquoted, with where it stood. The span is made only when asked
 * for: a large dump has tens of thousands of words, and most need no span of their own (an
 * option's span runs from its name to its last argument, see spanTo).
 */
export class Token {
  private made?: Span;

  constructor(
    readonly text: string,
    /** It was written in quotes: never an option name or `!`, whatever it says. */
    readonly quoted: boolean,
    private readonly file: string,
    private readonly line: SourceLine,
    private readonly start: number,
    private readonly end: number,
  ) {}

  get span(): Span {
    this.made ??= spanOf(this.file, this.line, this.start, this.end);
    return this.made;
  }

  /** From this word to the end of `last` (a later word of the same line). */
  spanTo(last: Token): Span {
    return last === this ? this.span : spanOf(this.file, this.line, this.start, last.end);
  }
}

/**
 * Splits an iptables-restore line into words the way iptables-restore does (add_param_to_argv
 * in iptables/xshared.c, read, not copied): blanks separate words; a double quote opens a
 * quoted part in which a backslash takes the next character literally and blanks do not
 * separate; the closing quote ends the word; outside quotes a backslash is an ordinary
 * character, and so is a single quote.
 */
export function tokenizeRestoreLine(file: string, l: SourceLine, from: number, report: (d: Diagnostic) => void): Token[] | undefined {
  const s = l.text;
  const out: Token[] = [];
  let i = from;
  while (i < s.length) {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
    if (i >= s.length) break;
    const start = i;
    // Fast path: a word without quotes is one slice of the line.
    while (i < s.length && s[i] !== ' ' && s[i] !== '\t' && s[i] !== '"') i++;
    let text = s.slice(start, i);
    let quoted = false;
    while (i < s.length && s[i] !== ' ' && s[i] !== '\t') {
      if (s[i] !== '"') {
        text += s[i++];
        continue;
      }
      quoted = true;
      const open = i++;
      let closed = false;
      while (i < s.length) {
        if (s[i] === '\\' && i + 1 < s.length) {
          text += s[i + 1];
          i += 2;
        } else if (s[i] === '"') {
          i++;
          closed = true;
          break;
        } else {
          text += s[i++];
        }
      }
      if (!closed) {
        report(diag('error', 'E-import-quote', spanOf(file, l, open, s.length), 'this quote is never closed', 'close the string with `"`; write a `"` inside it as `\\"`'));
        return undefined;
      }
      break; // the closing quote ends the word
    }
    out.push(new Token(text, quoted, file, l, start, i));
  }
  return out;
}

/**
 * Splits a shell command line (an `iptables …` script line) into words with the shell's
 * quoting: '…' literal, "…" with backslash escaping `"`, `\`, `$` and backquote, a backslash
 * outside quotes taking the next character literally, `#` at the start of a word beginning a
 * comment. Shell features nfproof cannot follow — variables, command substitution, pipes,
 * several commands on a line — are reported, since the rule they build is unknown.
 */
export function tokenizeShellLine(file: string, l: SourceLine, report: (d: Diagnostic) => void): { tokens: Token[]; continues: boolean } | undefined {
  const s = l.text;
  const out: Token[] = [];
  let i = 0;
  let continues = false;
  const unsupported = (at: number, what: string, hint: string) => {
    report(diag('error', 'E-import-shell', spanOf(file, l, at, at + 1), `nfproof reads iptables scripts line by line and cannot follow ${what}`, hint));
  };
  while (i < s.length) {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
    if (i >= s.length || s[i] === '#') break;
    if (s[i] === '\\' && i === s.length - 1) return { tokens: out, continues: true };
    const start = i;
    let text = '';
    let quoted = false;
    while (i < s.length && s[i] !== ' ' && s[i] !== '\t') {
      const c = s[i];
      if (c === "'") {
        quoted = true;
        const close = s.indexOf("'", i + 1);
        if (close < 0) {
          report(diag('error', 'E-import-quote', spanOf(file, l, i, s.length), 'this quote is never closed', "close the string with '"));
          return undefined;
        }
        text += s.slice(i + 1, close);
        i = close + 1;
      } else if (c === '"') {
        quoted = true;
        i++;
        let closed = false;
        while (i < s.length) {
          if (s[i] === '\\' && i + 1 < s.length && '"\\$`'.includes(s[i + 1])) {
            text += s[i + 1];
            i += 2;
          } else if (s[i] === '"') {
            i++;
            closed = true;
            break;
          } else if (s[i] === '$' || s[i] === '`') {
            unsupported(i, 'shell variables or command substitution', 'run the script and import `iptables-save` output instead');
            return undefined;
          } else {
            text += s[i++];
          }
        }
        if (!closed) {
          report(diag('error', 'E-import-quote', spanOf(file, l, start, s.length), 'this quote is never closed', 'close the string with "'));
          return undefined;
        }
      } else if (c === '\\') {
        if (i + 1 >= s.length) {
          continues = true; // `word\` at the end of the line: the command goes on below
          i++;
          break;
        }
        text += s[i + 1];
        i += 2;
      } else if (c === '$' || c === '`') {
        unsupported(i, 'shell variables or command substitution', 'run the script and import `iptables-save` output instead');
        return undefined;
      } else if (c === ';' || c === '|' || c === '&' || c === '<' || c === '>') {
        unsupported(i, `\`${c}\` (several commands, pipes or redirections on one line)`, 'put one iptables command per line');
        return undefined;
      } else {
        text += c;
        i++;
      }
    }
    if (text !== '' || quoted) out.push(new Token(text, quoted, file, l, start, i));
  }
  return { tokens: out, continues };
}
