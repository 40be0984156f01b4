import { EmbeddedActionsParser, type IParserErrorMessageProvider, type IToken, type TokenType, tokenMatcher } from 'chevrotain';
import type { Word } from '../kinds/dsl.js';
import { type Diagnostic, diag } from '../util/diagnostics.js';
import { NO_SPAN, type Span } from '../util/span.js';
import type { ChainAst, FileAst, HostStmt, Line, NameTok, Statement, TableStmt } from './ast.js';
import {
  ALL_TOKENS,
  Atom,
  BadRef,
  WordTok,
  Bang,
  Chain,
  Comma,
  Define,
  Equals,
  Expect,
  Host,
  Include,
  LBrace,
  Neq,
  Newline,
  NfpLexer,
  OpenStr,
  Policy,
  RBrace,
  Ref,
  Semicolon,
  Service,
  Str,
  Table,
} from './tokens.js';

/**
 * The statement grammar of .nfp (documented in grammar/GRAMMAR.md, drawn in grammar/diagrams.html):
 *
 *   file      = { SEP | statement }
 *   statement = include | define | service | host | table | expect | stray
 *   include   = "include" STRING
 *   define    = "define" NAME "=" words
 *   service   = "service" NAME "=" words
 *   host      = "host" NAME {NL} "{" { SEP | line } "}"
 *   table     = "table" [FAMILY] NAME {NL} "{" { SEP | chain | line } "}"
 *   chain     = "chain" NAME ["policy" VERDICT] {NL} "{" { SEP | line } "}"
 *   expect    = "expect" words
 *   line      = word { word }
 *   word      = ATOM | STRING | @REF | "!" | "!=" | "," | "=" | set
 *   set       = "{" { item | "," | NL } "}"
 *
 * Lines and sets are deliberately loose: the words are checked by the next phase (the kinds for
 * rule clauses), which knows what a user meant and can say so. The grammar accepts every token
 * sequence except unbalanced or misplaced punctuation in headers, so chevrotain's own error
 * recovery only has to deal with those, and a mistake never hides the lines after it.
 */

/** How a token is called in messages. */
function describe(t: IToken): string {
  if (t.tokenType.name === 'EOF') return 'end of file';
  if (t.tokenType === Newline) return 'end of line';
  return `\`${t.image}\``;
}

function label(t: TokenType): string {
  if (t === Atom) return 'a name';
  return t.LABEL ?? t.name;
}

/** What each grammar rule looks like, for hints on syntax errors. */
const RULE_HINTS: Readonly<Record<string, string>> = {
  include: 'write include "FILE.nfp" (the path in double quotes, relative to this file)',
  define: 'write define NAME = VALUE, e.g. define web = { 80, 443 }',
  service: 'write service NAME = CLAUSES, e.g. service dns = proto { udp, tcp } dport 53',
  host: 'write host NAME { interface … ; route … }',
  table: 'write table [ip|ip6|inet] NAME { chain … }',
  chain: 'write chain NAME [policy accept|drop] { RULES }',
  set: 'a set is written { a, b, c }; it may continue on the next line after `{` or `,`',
};

const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual }) {
    return `expected ${label(expected)}, found ${describe(actual)}`;
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return `unexpected ${describe(firstRedundant)}`;
  },
  buildNoViableAltMessage({ actual }) {
    return `unexpected ${describe(actual[0])}`;
  },
  buildEarlyExitMessage({ actual }) {
    return `unexpected ${describe(actual[0])}`;
  },
};

class NfpParser extends EmbeddedActionsParser {
  file = '<input>';
  diagnostics: Diagnostic[] = [];

  constructor() {
    super(ALL_TOKENS, { recoveryEnabled: true, maxLookahead: 3, errorMessageProvider: messages });
    this.performSelfAnalysis();
  }

  /** Span of a token; a token inserted by error recovery gets an empty span after the previous one. */
  span(t: IToken): Span {
    if (t.isInsertedInRecovery || Number.isNaN(t.startOffset)) {
      const prev = this.LA(0);
      const ok = prev && !Number.isNaN(prev.startOffset) && prev.endOffset !== undefined;
      const pos = ok ? { line: prev.endLine as number, col: (prev.endColumn as number) + 1, offset: (prev.endOffset as number) + 1 } : { line: 1, col: 1, offset: 0 };
      return { file: this.file, start: pos, end: pos };
    }
    return {
      file: this.file,
      start: { line: t.startLine as number, col: t.startColumn as number, offset: t.startOffset },
      end: { line: t.endLine as number, col: (t.endColumn as number) + 1, offset: (t.endOffset as number) + 1 },
    };
  }

  join(a: Span, b: Span): Span {
    return { file: a.file, start: a.start, end: b.end.offset >= a.start.offset ? b.end : a.end };
  }

  name(t: IToken): NameTok {
    return { text: t.image, span: this.span(t) };
  }

  /** The span from the first token of a construct to the last consumed one. */
  since(first: Span): Span {
    return this.join(first, this.span(this.LA(0)));
  }

  public file_ = this.RULE('file', (): Statement[] => {
    const statements: Statement[] = [];
    this.MANY(() => {
      this.OR([
        { ALT: () => this.SUBRULE(this.separator) },
        {
          ALT: () => {
            const s = this.SUBRULE(this.statement);
            this.ACTION(() => s && statements.push(s));
          },
        },
      ]);
    });
    return statements;
  });

  /** A lone list of words (a flow given on the command line); line breaks count as spaces. */
  public wordList = this.RULE('wordList', (): Word[] => {
    const words: Word[] = [];
    this.MANY(() => {
      this.OR([
        {
          ALT: () => {
            this.CONSUME(Newline);
          },
        },
        {
          ALT: () => {
            const l = this.SUBRULE(this.line);
            if (l && !this.RECORDING_PHASE) words.push(...l.words);
          },
        },
      ]);
    });
    return words;
  });

  /** Lines of the host or chain block being read. */
  private bodyLines: Line[] = [];

  // Occurrence 3: the rules using this also consume a Newline before `{`.
  private readonly bodyAlternatives = [
    { ALT: () => this.CONSUME3(Newline) },
    { ALT: () => this.CONSUME(Semicolon) },
    {
      ALT: () => {
        const l = this.SUBRULE(this.line);
        // After error recovery a sub-rule may give back nothing.
        if (!this.RECORDING_PHASE && l && l.words.length) this.bodyLines.push(l);
      },
    },
  ];

  private readonly oneBodyLine = () => this.OR(this.bodyAlternatives);

  private separator = this.RULE('separator', () => {
    this.OR([{ ALT: () => this.CONSUME(Newline) }, { ALT: () => this.CONSUME(Semicolon) }]);
  });

  // The keyword alone picks the statement (one token of lookahead): a malformed `define` is
  // reported as such by its own rule, not read as some other statement.
  private statement = this.RULE('statement', (): Statement =>
    this.OR<Statement>({
      MAX_LOOKAHEAD: 1,
      DEF: [
        { ALT: () => this.SUBRULE(this.include) },
        { ALT: () => this.SUBRULE(this.define) },
        { ALT: () => this.SUBRULE(this.service) },
        { ALT: () => this.SUBRULE(this.host) },
        { ALT: () => this.SUBRULE(this.table) },
        { ALT: () => this.SUBRULE(this.expect) },
        { ALT: () => this.SUBRULE(this.stray), IGNORE_AMBIGUITIES: true },
      ],
    }),
  );

  private include = this.RULE('include', (): Statement => {
    const kw = this.CONSUME(Include);
    const path = this.CONSUME(Str);
    const extra = this.SUBRULE(this.words);
    return this.ACTION(() => {
      const pathSpan = this.span(path);
      const value = path.isInsertedInRecovery ? '' : this.unquote(path);
      return { kind: 'include', path: value, pathSpan, extra, span: this.since(this.span(kw)) };
    });
  });

  private define = this.RULE('define', (): Statement => {
    const kw = this.CONSUME(Define);
    const name = this.CONSUME(Atom);
    this.CONSUME(Equals);
    const value = this.SUBRULE(this.words);
    return this.ACTION(() => ({ kind: 'define', name: this.name(name), value, span: this.since(this.span(kw)) }));
  });

  private service = this.RULE('service', (): Statement => {
    const kw = this.CONSUME(Service);
    const name = this.CONSUME(Atom);
    this.CONSUME(Equals);
    const words = this.SUBRULE(this.words);
    return this.ACTION(() => ({ kind: 'service', name: this.name(name), words, span: this.since(this.span(kw)) }));
  });

  private host = this.RULE('host', (): HostStmt => {
    const kw = this.CONSUME(Host);
    const name = this.CONSUME(Atom);
    this.MANY(() => this.CONSUME(Newline));
    this.CONSUME(LBrace);
    const open = this.LA(0);
    const outer = this.bodyLines;
    const items: Line[] = (this.bodyLines = []);
    this.MANY2(this.oneBodyLine);
    this.bodyLines = outer;
    this.close(open, 'host block');
    return this.ACTION(() => ({ kind: 'host', name: this.name(name), items, span: this.since(this.span(kw)) }));
  });

  private table = this.RULE('table', (): TableStmt => {
    const kw = this.CONSUME(Table);
    const first = this.CONSUME(Atom);
    let second: IToken | undefined;
    this.OPTION(() => {
      second = this.CONSUME2(Atom);
    });
    const chains: ChainAst[] = [];
    const stray: Line[] = [];
    this.MANY(() => this.CONSUME(Newline));
    this.CONSUME(LBrace);
    const open = this.LA(0);
    this.MANY2(() => {
      this.OR({
        MAX_LOOKAHEAD: 1,
        DEF: [
          { ALT: () => this.SUBRULE(this.separator) },
          {
            ALT: () => {
              const c = this.SUBRULE(this.chain);
              this.ACTION(() => c && chains.push(c));
            },
          },
          {
            ALT: () => {
              const l = this.SUBRULE(this.line);
              this.ACTION(() => l && l.words.length && stray.push(l));
            },
            IGNORE_AMBIGUITIES: true,
          },
        ],
      });
    });
    this.close(open, 'table');
    return this.ACTION(() => ({
      kind: 'table',
      ...(second ? { family: this.name(first) } : {}),
      name: this.name(second ?? first),
      chains,
      stray,
      span: this.since(this.span(kw)),
    }));
  });

  private chain = this.RULE('chain', (): ChainAst => {
    const kw = this.CONSUME(Chain);
    const name = this.CONSUME(Atom);
    let policy: IToken | undefined;
    this.OPTION(() => {
      this.CONSUME(Policy);
      policy = this.CONSUME2(Atom);
    });
    this.MANY(() => this.CONSUME(Newline));
    this.CONSUME(LBrace);
    const open = this.LA(0);
    const outer = this.bodyLines;
    const rules: Line[] = (this.bodyLines = []);
    this.MANY2(this.oneBodyLine);
    this.bodyLines = outer;
    this.close(open, 'chain');
    return this.ACTION(() => ({
      name: this.name(name),
      ...(policy ? { policy: this.name(policy) } : {}),
      rules,
      span: this.since(this.span(kw)),
    }));
  });

  private expect = this.RULE('expect', (): Statement => {
    const kw = this.CONSUME(Expect);
    const words = this.SUBRULE(this.words);
    return this.ACTION(() => ({ kind: 'expect', words, span: this.since(this.span(kw)) }));
  });

  /** A top-level line with no statement keyword, or a `}` without its `{`. */
  private stray = this.RULE('stray', (): Statement =>
    this.OR<Statement>([
      {
        ALT: () => {
          const l = this.SUBRULE(this.line);
          return this.ACTION(() => (l && l.words.length ? { kind: 'stray', words: l.words, span: l.span } : undefined)) as Statement;
        },
      },
      {
        ALT: () => {
          const t = this.CONSUME(RBrace);
          return this.ACTION(() => ({ kind: 'stray', words: [], span: this.span(t) }));
        },
      },
    ]),
  );

  // Lines, words and sets are the hot path (a 10,000-rule policy has ~100,000 words): their
  // alternatives are built once and words are made without closures per token.

  /** The words of the line being read (lines do not nest; sets collect their own items). */
  private lineWords: Word[] = [];

  private readonly wordAlternatives = [
    {
      ALT: () => {
        this.push(this.SUBRULE(this.set));
        // Words an unclosed set took from the rest of its line go back to the line.
        if (!this.RECORDING_PHASE) for (const w of this.setLeftovers.splice(0)) this.push(w);
      },
    },
    { ALT: () => this.push(this.wordOf(this.CONSUME(WordTok))) },
    { ALT: () => this.push(this.wordOf(this.CONSUME(Comma))) },
  ];

  private readonly oneWord = () => this.OR(this.wordAlternatives);

  private push(w: Word | undefined): void {
    if (w && w.type !== undefined && !this.RECORDING_PHASE) this.lineWords.push(w);
  }

  private line = this.RULE('line', (): Line => {
    const outer = this.lineWords;
    this.lineWords = [];
    this.readWords(true);
    const words = this.lineWords;
    this.lineWords = outer;
    if (this.RECORDING_PHASE) return { words, span: NO_SPAN };
    // A line of nothing but a bad `@` (already reported) has no words.
    if (words.length === 0) return { words, span: this.span(this.LA(0)) };
    return { words, span: this.join(words[0].span, words[words.length - 1].span) };
  });

  private words = this.RULE('words', (): Word[] => {
    const outer = this.lineWords;
    this.lineWords = [];
    this.readWords(false);
    const words = this.lineWords;
    this.lineWords = outer;
    return words;
  });

  /**
   * The words of a line, into lineWords. The grammar is the DSL below (recorded for lookahead
   * and the syntax diagrams); when parsing, the same grammar is read by a plain loop over the
   * tokens, which a line can never fail, without the DSL's per-token cost (a large policy has
   * some 100,000 words; this halves the parse time).
   */
  private readWords(atLeastOne: boolean): void {
    if (this.RECORDING_PHASE) {
      if (atLeastOne) this.AT_LEAST_ONE(this.oneWord);
      else this.MANY(this.oneWord);
      return;
    }
    for (let t = this.LA(1); ; t = this.LA(1)) {
      if (t.tokenType === LBrace) {
        this.SKIP_TOKEN();
        this.push(this.readSet(t));
        for (const w of this.setLeftovers.splice(0)) this.push(w);
      } else if (t.tokenType === Comma || tokenMatcher(t, WordTok)) {
        this.SKIP_TOKEN();
        this.push(this.wordOf(t));
      } else {
        return;
      }
    }
  }

  /** The rest of a set after its `{` (the run-time twin of the `set` rule). */
  private readSet(open: IToken): Word {
    this.setItems = [];
    this.setCurrent = [];
    this.setEmptyAt = undefined;
    for (let t = this.LA(1); ; t = this.LA(1)) {
      if (t.tokenType === RBrace) {
        this.SKIP_TOKEN();
        return this.finishSet(open, t);
      }
      if (t.tokenType === Newline && this.newlineAllowedInSet()) {
        this.SKIP_TOKEN();
      } else if (t.tokenType === Comma) {
        this.SKIP_TOKEN();
        this.setComma(t);
      } else if (tokenMatcher(t, WordTok)) {
        this.SKIP_TOKEN();
        const w = this.wordOf(t);
        if (w) this.setCurrent.push(w);
      } else {
        this.unclosed(open, 'set');
        return this.finishSet(open, undefined);
      }
    }
  }

  /** A word from a WordTok or comma token. */
  private wordOf(t: IToken): Word | undefined {
    if (this.RECORDING_PHASE) return undefined;
    const span = this.span(t);
    switch (t.tokenType) {
      case Str:
        return { type: 'string', value: this.unquote(t), span };
      case OpenStr:
        this.diagnostics.push(
          diag('error', 'E-unterminated-string', span, 'this string has no closing `"` on its line', 'close it with `"`; a string cannot span lines (write \\n for a line break)'),
        );
        return { type: 'string', value: t.image.slice(1), span };
      case Ref:
        return { type: 'ref', name: t.image.slice(1), span };
      case BadRef:
        this.diagnostics.push(diag('error', 'E-bad-ref', span, '`@` must be followed by the name of a define', 'e.g. saddr @inside'));
        return undefined;
      case Bang:
        return { type: 'bang', span };
      case Neq:
        return { type: 'neq', span };
      case Comma:
        return { type: 'comma', span };
      default:
        // Atoms, statement keywords used as words, and a stray `=` (the next phase says what is wrong).
        return { type: 'atom', text: t.image, span };
    }
  }

  /** State of the set being read (sets do not nest). */
  private setItems: Word[][] = [];
  private setCurrent: Word[] = [];
  private setEmptyAt: Span | undefined;
  private setLeftovers: Word[] = [];

  private readonly setAlternatives = [
    {
      ALT: () => {
        this.CONSUME(Newline);
      },
    },
    {
      ALT: () => {
        const c = this.CONSUME(Comma);
        if (!this.RECORDING_PHASE) this.setComma(c);
      },
    },
    {
      ALT: () => {
        const w = this.wordOf(this.CONSUME(WordTok));
        if (w) this.setCurrent.push(w);
      },
    },
  ];

  /**
   * One element, comma or line break of a set. Line breaks are allowed after `{`, after `,`
   * and before `}`; anywhere else the set ends there and its missing `}` is reported.
   */
  private readonly setPart = {
    GATE: () => this.LA(1).tokenType !== Newline || this.newlineAllowedInSet(),
    DEF: () => this.OR(this.setAlternatives),
  };

  /** `{ a, !b, @c }`. */
  private set = this.RULE('set', (): Word => {
    const open = this.CONSUME(LBrace);
    this.setItems = [];
    this.setCurrent = [];
    this.setEmptyAt = undefined;
    this.MANY(this.setPart);
    const close = this.close(open, 'set');
    if (this.RECORDING_PHASE) return { type: 'set', items: [], span: NO_SPAN };
    return this.finishSet(open, close);
  });

  private setComma(c: IToken): void {
    if (this.setCurrent.length === 0) this.setEmptyAt ??= this.span(c);
    else this.setItems.push(this.setCurrent);
    this.setCurrent = [];
  }

  private finishSet(open: IToken, close: IToken | undefined): Word {
    const items = this.setItems;
    if (!close && this.setCurrent.length > 1) {
      // `{ 80, 443 accept`: the set most likely ends after the element's first word.
      const keep = this.setCurrent[0].type === 'bang' || this.setCurrent[0].type === 'neq' ? 2 : 1;
      this.setLeftovers = this.setCurrent.slice(keep);
      this.setCurrent = this.setCurrent.slice(0, keep);
    }
    if (this.setCurrent.length > 0) items.push(this.setCurrent);
    if (this.setEmptyAt) {
      this.diagnostics.push(diag('error', 'E-empty-set-item', this.setEmptyAt, 'empty element in a set (two commas in a row, or a comma first)', 'remove the extra comma'));
    }
    const last = items.length ? items[items.length - 1] : undefined;
    const end = close ? this.span(close) : last ? last[last.length - 1].span : this.span(open);
    return { type: 'set', items, span: this.join(this.span(open), end) };
  }

  /**
   * The `}` that closes a block or set. Blocks only end at `}` or at the end of the file, and
   * sets at a line break, so a missing `}` is reported here, pointing at its `{`, and what was
   * read so far is kept (chevrotain's recovery would drop the whole block).
   */
  private close(open: IToken, what: string): IToken | undefined {
    let t: IToken | undefined;
    this.OPTION9(() => {
      t = this.CONSUME9(RBrace);
    });
    if (!t && !this.RECORDING_PHASE) this.unclosed(open, what);
    return t;
  }

  private unclosed(open: IToken, what: string): void {
    {
      const at = this.LA(1);
      const where = at.tokenType.name === 'EOF' ? 'the end of the file' : 'the end of the line';
      this.diagnostics.push(
        diag(
          'error',
          'E-unclosed',
          this.span(open),
          `this \`{\` opens a ${what} that is not closed before ${where}`,
          what === 'set' ? 'close the set with `}`; a set may continue on the next line only after `{` or `,`' : 'add the missing `}`; is one missing above a `chain` or `table` line?',
        ),
      );
    }
  }

  private newlineAllowedInSet(): boolean {
    const prev = this.LA(0).tokenType;
    if (prev === LBrace || prev === Comma || prev === Newline) return true;
    let i = 1;
    while (this.LA(i).tokenType === Newline) i++;
    return this.LA(i).tokenType === RBrace;
  }

  private unquote(t: IToken): string {
    if (!t.image.includes('\\')) return t.image.slice(1, -1);
    try {
      return JSON.parse(t.image) as string;
    } catch {
      this.diagnostics.push(
        diag('error', 'E-bad-escape', this.span(t), 'this string has an escape sequence nfproof does not know', 'use \\" \\\\ \\n \\t or \\uXXXX'),
      );
      return t.image.slice(1, -1);
    }
  }
}

let shared: NfpParser | undefined;

function convertErrors(parser: NfpParser, file: string, text: string, diagnostics: Diagnostic[]): void {
  diagnostics.push(...parser.diagnostics);
  for (const e of parser.errors) {
    const rule = e.context.ruleStack[e.context.ruleStack.length - 1] ?? 'file';
    const ctxRule = [...e.context.ruleStack].reverse().find((r) => r in RULE_HINTS);
    const atEof = e.token.tokenType.name === 'EOF';
    const span = atEof ? endOf(file, text) : parser.span(e.token);
    diagnostics.push(diag('error', 'E-syntax', span, e.message, ctxRule ? RULE_HINTS[ctxRule] : rule === 'file' ? undefined : RULE_HINTS[rule]));
  }
}

function lexErrors(lexed: ReturnType<typeof NfpLexer.tokenize>, file: string, text: string): Diagnostic[] {
  return lexed.errors.map((e) => {
    const ch = text.slice(e.offset, e.offset + e.length);
    const pos = { line: e.line ?? 1, col: e.column ?? 1, offset: e.offset };
    const code = ch.codePointAt(0) ?? 0;
    return diag(
      'error',
      'E-bad-character',
      { file, start: pos, end: { ...pos, col: pos.col + e.length, offset: e.offset + e.length } },
      `unexpected character ${JSON.stringify(ch)} (U+${code.toString(16).toUpperCase().padStart(4, '0')})`,
      'only plain spaces, tabs and printable characters are allowed outside strings',
    );
  });
}

/** Lexes and parses a bare list of words (no statements), e.g. a flow given to `nfproof query`. */
export function parseWordList(text: string, file: string): { words: Word[]; diagnostics: Diagnostic[] } {
  const lexed = NfpLexer.tokenize(text);
  const parser = (shared ??= new NfpParser());
  parser.file = file;
  parser.diagnostics = [];
  const diagnostics = lexErrors(lexed, file, text);
  parser.input = lexed.tokens;
  const words = parser.wordList() ?? [];
  convertErrors(parser, file, text, diagnostics);
  return { words, diagnostics };
}

/** Lexes and parses one file. Never throws for bad input: every problem is a diagnostic. */
export function parseFile(text: string, file: string): { ast: FileAst; diagnostics: Diagnostic[]; comments: IToken[] } {
  const lexed = NfpLexer.tokenize(text);
  const parser = (shared ??= new NfpParser());
  parser.file = file;
  parser.diagnostics = [];
  const diagnostics = lexErrors(lexed, file, text);
  parser.input = lexed.tokens;
  const statements = parser.file_();
  convertErrors(parser, file, text, diagnostics);
  return { ast: { file, statements: statements ?? [] }, diagnostics, comments: (lexed.groups.comments ?? []) as IToken[] };
}

function endOf(file: string, text: string): Span {
  const lines = text.split('\n');
  const line = lines.length;
  const col = lines[lines.length - 1].length + 1;
  const pos = { line, col, offset: text.length };
  return { file, start: pos, end: pos };
}

/** The grammar as chevrotain sees it, for the syntax diagrams (scripts/codegen.ts). */
export function serializedGrammar(): ReturnType<NfpParser['getSerializedGastProductions']> {
  return (shared ??= new NfpParser()).getSerializedGastProductions();
}
