import { diag } from '../util/diagnostics.js';
import { NO_SPAN, type Span, isGenerated } from '../util/span.js';
import type { DslContext, Word, WordCursor } from './dsl.js';
import type { ImportContext, ImportedOption } from './iptables.js';

/**
 * Small helpers every kind module uses: spans of a parsed clause, hex formatting as iptables
 * prints it, flag words after a clause, keys for opaque constraints, and the raw iptables words
 * that opaque kinds keep inside a DSL string.
 */

/** The span from a clause's first word to the last word consumed so far. */
export function clauseSpan(first: Span, cur: WordCursor): Span {
  const last = cur.position > 0 ? cur.peek(-1)?.span : undefined;
  return last && last.end.offset >= first.end.offset ? { ...first, end: last.end } : first;
}

/** `0x1f` — the lowercase hex iptables-save prints for marks, masks, TOS values. */
export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** `0x0a` — two-digit hex, as iptables prints DSCP and TOS bytes. */
export function hex2(v: bigint | number): string {
  return `0x${v.toString(16).padStart(2, '0')}`;
}

/** Parses an unsigned decimal or 0x-hex number no larger than max. */
export function parseUnsigned(text: string, max: bigint): bigint | undefined {
  if (!/^(0x[0-9a-fA-F]+|\d+)$/.test(text)) return undefined;
  const v = BigInt(text);
  return v <= max ? v : undefined;
}

/**
 * Reads optional trailing flag words (`random`, `fully-random` …) in any order, each at most
 * once. Returns the set of flags seen.
 */
export function readFlagWords<F extends string>(cur: WordCursor, flags: readonly F[]): Set<F> {
  const seen = new Set<F>();
  for (let w = cur.peekAtom(); w !== undefined && (flags as readonly string[]).includes(w) && !seen.has(w as F); w = cur.peekAtom()) {
    seen.add(w as F);
    cur.next();
  }
  return seen;
}

/** The next word as an atom's text, reporting `what` is missing otherwise. */
export function expectAtom(cur: WordCursor, ctx: DslContext, what: string, hint?: string): (Word & { type: 'atom' }) | undefined {
  const w = cur.next();
  if (w?.type === 'atom') return w;
  ctx.report(diag('error', 'E-missing-value', w?.span ?? cur.endSpan, `expected ${what}${w ? `, found ${describeWord(w)}` : ''}`, hint));
  return undefined;
}

export function describeWord(w: Word): string {
  switch (w.type) {
    case 'atom':
      return `\`${w.text}\``;
    case 'string':
      return 'a string';
    case 'set':
      return 'a { set }';
    case 'ref':
      return `@${w.name}`;
    case 'bang':
      return '`!`';
    case 'neq':
      return '`!=`';
    case 'comma':
      return '`,`';
  }
}

/**
 * Reads a comma-separated list of atoms as one text (`a,b,c`, `a, b`, `{ a, b }`), so kinds
 * can parse lists whatever way the lexer split them.
 */
export function readList(cur: WordCursor, ctx: DslContext, what: string, hint?: string): { items: string[]; span: Span } | undefined {
  const first = cur.next();
  if (!first || (first.type !== 'atom' && first.type !== 'set')) {
    ctx.report(diag('error', 'E-missing-value', first?.span ?? cur.endSpan, `expected ${what}`, hint));
    return undefined;
  }
  const items: string[] = [];
  const add = (w: Word): boolean => {
    if (w.type === 'atom') {
      items.push(...w.text.split(',').filter((x) => x !== ''));
      return true;
    }
    ctx.report(diag('error', 'E-bad-list', w.span, `expected ${what}, found ${describeWord(w)}`, hint));
    return false;
  };
  let span = first.span;
  if (first.type === 'set') {
    for (const item of first.items) if (item.length !== 1 || !add(item[0])) return undefined;
  } else {
    if (!add(first)) return undefined;
    // `a, b` arrives as atom comma atom; `a,b` may arrive the same way.
    while (cur.peek()?.type === 'comma' && cur.peek(1)?.type === 'atom') {
      cur.next();
      const w = cur.next()!;
      add(w);
      span = w.span;
    }
  }
  return { items, span: { ...first.span, end: span.end } };
}

/**
 * A key for an opaque constraint that stands for this one match instance: stateful matches
 * (limit buckets, recent lists, connlimit counts) must never be taken for one another, even
 * with equal parameters. The key holds a per-node number (first come, first numbered: stable
 * within a run) and, for reading, where the match was written. Two rules sharing one node
 * object would share the key, so producers of IR give each rule its own nodes.
 */
const instanceIds = new WeakMap<object, number>();
let nextInstance = 0;

export function instanceKey(kind: string, node: { readonly span: Span }, detail: string): string {
  let id = instanceIds.get(node);
  if (id === undefined) {
    id = nextInstance++;
    instanceIds.set(node, id);
  }
  const where = isGenerated(node.span) ? '' : `@${node.span.file}:${node.span.start.line}:${node.span.start.col}`;
  return `${kind}#${id}${where} ${detail}`;
}

/** The words of an imported option as they stood in the line: `! --name arg…`. */
export function optionWords(o: ImportedOption): string[] {
  return [...(o.negated ? ['!'] : []), o.name, ...o.args];
}

/** Reports an option a kind's claim covers but whose form it does not understand. */
export function importError(ctx: ImportContext, o: ImportedOption, message: string, hint?: string): void {
  ctx.report(diag('error', 'E-import-option', o.span, message, hint));
}

/**
 * Raw iptables words kept in a DSL string (opaque kinds): words are separated by spaces; a
 * word with blanks, quotes or backslashes, or an empty word, is double-quoted with `\` before
 * `"` and `\` — the quoting iptables-restore reads.
 */
export function joinRawWords(words: readonly string[]): string {
  return words.map((w) => (w !== '' && !/[\s"'\\]/.test(w) ? w : `"${w.replace(/["\\]/g, (c) => `\\${c}`)}"`)).join(' ');
}

/** Splits raw iptables words written with joinRawWords' quoting; undefined on an open quote. */
export function splitRawWords(text: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i])) i++;
    if (i >= text.length) break;
    let word = '';
    let quoted = false;
    while (i < text.length && (quoted || !/\s/.test(text[i]))) {
      const c = text[i];
      if (c === '"') {
        quoted = !quoted;
        i++;
      } else if (c === '\\' && i + 1 < text.length) {
        word += text[i + 1];
        i += 2;
      } else {
        word += c;
        i++;
      }
    }
    if (quoted) return undefined;
    out.push(word);
  }
  return out;
}

/** The span of an imported node: from the `-m` words (when known) to its last option. */
export function optionsSpan(options: readonly { readonly span: Span }[], section?: Span): Span {
  const first = section ?? options[0]?.span ?? NO_SPAN;
  const last = options[options.length - 1]?.span ?? first;
  return last.file === first.file && last.end.offset >= first.start.offset ? { ...first, end: last.end } : first;
}

/**
 * A name taken from iptables (recent list, hashlimit table, ipset …) as DSL text: a bare word
 * when the lexer reads it back as one atom, else a "string".
 */
export function printName(name: string): string {
  return /^[A-Za-z0-9_.:%+\/-]+$/.test(name) ? name : JSON.stringify(name);
}

/** Reads a name written bare or as a string; undefined (nothing consumed) otherwise. */
export function readName(cur: WordCursor): { text: string; span: Span } | undefined {
  const w = cur.peek();
  if (w?.type === 'atom') {
    cur.next();
    return { text: w.text, span: w.span };
  }
  if (w?.type === 'string') {
    cur.next();
    return { text: w.value, span: w.span };
  }
  return undefined;
}

/**
 * Reads `xt match NAME ["OPTIONS"]` or `xt target NAME ["OPTIONS"]` (the cursor at `xt`): the
 * verbatim escape hatch both opaque kinds share. Reports a missing or malformed name and an
 * unterminated quote in the options.
 */
export function readXtClause(
  cur: WordCursor,
  ctx: DslContext,
  what: 'match' | 'target',
  nameRe: RegExp,
  example: string,
): { name: string; args: string[]; span: Span } | undefined {
  const kw = cur.next()!;
  cur.next(); // `match` or `target`
  const name = cur.next();
  if (name?.type !== 'atom' || !nameRe.test(name.text)) {
    ctx.report(diag('error', 'E-xt-syntax', name?.span ?? cur.endSpan, `\`xt ${what}\` needs an iptables ${what === 'match' ? 'module' : 'target'} name`, `e.g. ${example}`));
    return undefined;
  }
  let args: string[] = [];
  const w = cur.peek();
  if (w?.type === 'string') {
    cur.next();
    const split = splitRawWords(w.value);
    if (!split) {
      ctx.report(diag('error', 'E-xt-syntax', w.span, 'the options string has an unterminated quote', 'quote words with blanks inside as \\"a b\\"'));
      return undefined;
    }
    args = split;
  }
  return { name: name.text, args, span: clauseSpan(kw.span, cur) };
}
