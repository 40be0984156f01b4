import type { Diagnostic } from '../util/diagnostics.js';
import type { Family } from '../util/ip.js';
import type { Span } from '../util/span.js';

/**
 * What a rule looks like to the kinds: the parser (src/syntax) turns a rule line into a list
 * of words; each kind reads its own clause from a cursor over them. This keeps the grammar
 * small and lets a kind own its syntax.
 */
export type Word =
  /** A bare token: keyword, number, address, prefix, range, `eth+`, `10/second`, `0x1/0xff`… */
  | { readonly type: 'atom'; readonly text: string; readonly span: Span }
  /** A double-quoted string, unescaped. */
  | { readonly type: 'string'; readonly value: string; readonly span: Span }
  /** `{ a, !b, @c }`: each item is the words between commas (usually one, or `!` + one). */
  | { readonly type: 'set'; readonly items: readonly (readonly Word[])[]; readonly span: Span }
  /** `@name`: a reference to a `define`. */
  | { readonly type: 'ref'; readonly name: string; readonly span: Span }
  | { readonly type: 'bang'; readonly span: Span }
  | { readonly type: 'neq'; readonly span: Span }
  | { readonly type: 'comma'; readonly span: Span };

export function wordText(w: Word): string {
  switch (w.type) {
    case 'atom':
      return w.text;
    case 'string':
      return JSON.stringify(w.value);
    case 'set':
      return `{ ${w.items.map((i) => i.map(wordText).join(' ')).join(', ')} }`;
    case 'ref':
      return `@${w.name}`;
    case 'bang':
      return '!';
    case 'neq':
      return '!=';
    case 'comma':
      return ',';
  }
}

/** A named definition as the kinds see it (`define inside = { … }`). */
export interface Definition {
  readonly name: string;
  /** The words of the value: a single set word, or a single atom. */
  readonly value: readonly Word[];
  readonly span: Span;
}

/** What a kind's parser may ask of its surroundings. */
export interface DslContext {
  /** `rule` inside a chain; `flow` inside an `expect` or a `query` (header matches only, `from`/`to` allowed). */
  readonly mode: 'rule' | 'flow';
  /** Family the surrounding table/rule is restricted to, if any. */
  readonly family?: Family;
  /** Matches parsed so far in this rule (e.g. `type` after `icmp` needs the protocol). */
  readonly previous: readonly import('./index.js').Match[];
  /** Resolves `@name`; reports an undefined name itself and returns undefined. */
  resolve(ref: Extract<Word, { type: 'ref' }>): Definition | undefined;
  report(d: Diagnostic): void;
}

/**
 * Cursor over a rule's words. Kinds consume their keyword and arguments; on a mistake they
 * report a diagnostic through the context and return undefined, and the rule parser skips to
 * the next keyword it knows.
 */
export class WordCursor {
  private pos = 0;

  constructor(
    readonly words: readonly Word[],
    /** Span to blame when the rule ends too early. */
    readonly endSpan: Span,
  ) {}

  get position(): number {
    return this.pos;
  }

  set position(p: number) {
    this.pos = p;
  }

  atEnd(): boolean {
    return this.pos >= this.words.length;
  }

  peek(offset = 0): Word | undefined {
    return this.words[this.pos + offset];
  }

  /** The atom text at offset, if that word is an atom. */
  peekAtom(offset = 0): string | undefined {
    const w = this.peek(offset);
    return w?.type === 'atom' ? w.text : undefined;
  }

  next(): Word | undefined {
    return this.words[this.pos++];
  }

  /** Consumes the atom if its text is one of `texts`. */
  accept(...texts: string[]): (Word & { type: 'atom' }) | undefined {
    const w = this.peek();
    if (w?.type === 'atom' && texts.includes(w.text)) {
      this.pos++;
      return w;
    }
    return undefined;
  }

  /** Consumes `!=` (or a lone `!`) if present: the clause is negated. */
  acceptNegation(): boolean {
    const w = this.peek();
    if (w?.type === 'neq' || w?.type === 'bang') {
      this.pos++;
      return true;
    }
    return false;
  }

  /** Span of the current word, or the end of the rule. */
  here(): Span {
    return this.peek()?.span ?? this.endSpan;
  }
}
