import { Lexer, type TokenType, createToken } from 'chevrotain';

/**
 * Tokens of the .nfp language. The lexer knows very little on purpose: punctuation, strings,
 * `@name` references and one generic Atom for everything else (addresses, prefixes, ranges,
 * `eth+`, `10/second`, `0x1/0xff`, `[fd00::1]:80`, keywords). Match and target clauses are
 * read from those words by the kinds (src/kinds), so a new kind never touches the lexer.
 *
 * Statement keywords are tokens of their own so that the parser's grammar (and its syntax
 * diagrams) can name them, but they are also Atoms (token category), so `table` or `host`
 * can still appear as an ordinary word inside a rule or as a chain name.
 */

const ATOM_START: string[] = [];
for (let c = 0x21; c < 0x7f; c++) {
  const ch = String.fromCharCode(c);
  if (!'{},;#"=!@'.includes(ch)) ATOM_START.push(ch);
}

/**
 * Category of every token that is one word of a line by itself (all but braces, commas and
 * separators): the parser consumes it with one CONSUME and builds the word from its type.
 */
export const WordTok = createToken({ name: 'WordTok', pattern: Lexer.NA, label: 'a word' });

/** Anything that is not punctuation, whitespace, a quote or a comment. */
export const Atom = createToken({
  name: 'Atom',
  pattern: /[^\s{},;#"=!@][^\s{},;#"=!]*/,
  // The lexer's first-character optimisation cannot see through a negated class; list the
  // printable ASCII characters an Atom may start with (other first characters are reported).
  start_chars_hint: ATOM_START,
  categories: [WordTok],
});

function keyword(word: string): TokenType {
  return createToken({
    name: `Kw_${word}`,
    pattern: new RegExp(word),
    longer_alt: Atom,
    categories: [Atom],
    // Shown in error messages and syntax diagrams as the word itself.
    label: `\`${word}\``,
  });
}

export const Include = keyword('include');
export const Host = keyword('host');
export const Define = keyword('define');
export const Service = keyword('service');
export const Table = keyword('table');
export const Chain = keyword('chain');
export const Policy = keyword('policy');
export const Expect = keyword('expect');

export const Newline = createToken({ name: 'Newline', pattern: /\r\n?|\n/, label: 'end of line', line_breaks: true });
export const Semicolon = createToken({ name: 'Semicolon', pattern: /;/, label: '`;`' });
export const LBrace = createToken({ name: 'LBrace', pattern: /\{/, label: '`{`' });
export const RBrace = createToken({ name: 'RBrace', pattern: /\}/, label: '`}`' });
export const Comma = createToken({ name: 'Comma', pattern: /,/, label: '`,`' });
export const Neq = createToken({ name: 'Neq', pattern: /!=/, label: '`!=`', categories: [WordTok] });
export const Bang = createToken({ name: 'Bang', pattern: /!/, label: '`!`', categories: [WordTok] });
export const Equals = createToken({ name: 'Equals', pattern: /=/, label: '`=`', categories: [WordTok] });
export const Ref = createToken({ name: 'Ref', pattern: /@[A-Za-z0-9_][A-Za-z0-9_.-]*/, label: '@name', categories: [WordTok] });
/** A double-quoted string with JSON escapes (\" \\ \n \t \uXXXX); it may not span lines. */
export const Str = createToken({ name: 'String', pattern: /"(?:[^"\\\n]|\\.)*"/, label: 'a "string"', categories: [WordTok] });
/** A string whose closing quote is missing on its line: lexed so the parser can report it precisely. */
export const OpenStr = createToken({ name: 'OpenString', pattern: /"(?:[^"\\\n]|\\.)*/, label: 'an unterminated string', categories: [WordTok] });
/** `#` to the end of the line; kept aside (not skipped) so the formatter can put comments back. */
export const Comment = createToken({ name: 'Comment', pattern: /#[^\n]*/, group: 'comments' });
/** Spaces and tabs (and a byte-order mark); line breaks, `\n`, `\r\n` or `\r`, are Newline tokens. */
export const Whitespace = createToken({ name: 'Whitespace', pattern: /[ \t\f\v\uFEFF]+/, group: Lexer.SKIPPED });
/** A `@` not followed by a name. */
export const BadRef = createToken({ name: 'BadRef', pattern: /@/, label: '`@`', categories: [WordTok] });

export const KEYWORDS = [Include, Host, Define, Service, Table, Chain, Policy, Expect];

/** Order matters: longer punctuation first, keywords before Atom. */
export const ALL_TOKENS: TokenType[] = [
  Whitespace,
  Comment,
  Newline,
  Semicolon,
  LBrace,
  RBrace,
  Comma,
  Neq,
  Bang,
  Equals,
  Ref,
  BadRef,
  Str,
  OpenStr,
  ...KEYWORDS,
  Atom,
  WordTok,
];

export const NfpLexer = new Lexer(ALL_TOKENS, {
  positionTracking: 'full',
  ensureOptimizations: true,
});
