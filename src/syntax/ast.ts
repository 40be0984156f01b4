import type { Word } from '../kinds/dsl.js';
import type { Span } from '../util/span.js';

/**
 * The syntax tree of one .nfp file, as the chevrotain parser builds it. It keeps the
 * statement structure (blocks, headers, lines) and leaves the words of each line for the
 * next phase: rule clauses are read by the kinds, host and expect lines by src/syntax.
 */
export interface FileAst {
  readonly file: string;
  readonly statements: readonly Statement[];
}

/** A name or keyword written in a header (`table ip nat`, `chain input policy drop`). */
export interface NameTok {
  readonly text: string;
  readonly span: Span;
}

/** One line inside a block: a rule, a host item, or something misplaced. */
export interface Line {
  readonly words: readonly Word[];
  readonly span: Span;
}

export type Statement =
  | IncludeStmt
  | DefineStmt
  | ServiceStmt
  | HostStmt
  | TableStmt
  | ExpectStmt
  | StrayStmt;

export interface IncludeStmt {
  readonly kind: 'include';
  readonly path: string;
  readonly pathSpan: Span;
  /** Anything written after the path (an error). */
  readonly extra: readonly Word[];
  readonly span: Span;
}

export interface DefineStmt {
  readonly kind: 'define';
  readonly name: NameTok;
  readonly value: readonly Word[];
  readonly span: Span;
}

export interface ServiceStmt {
  readonly kind: 'service';
  readonly name: NameTok;
  readonly words: readonly Word[];
  readonly span: Span;
}

export interface HostStmt {
  readonly kind: 'host';
  readonly name: NameTok;
  readonly items: readonly Line[];
  readonly span: Span;
}

export interface TableStmt {
  readonly kind: 'table';
  /** `ip`, `ip6` or `inet` when written. */
  readonly family?: NameTok;
  readonly name: NameTok;
  readonly chains: readonly ChainAst[];
  /** Lines in the table body that are not chains (each an error). */
  readonly stray: readonly Line[];
  readonly span: Span;
}

export interface ChainAst {
  readonly name: NameTok;
  readonly policy?: NameTok;
  readonly rules: readonly Line[];
  readonly span: Span;
}

export interface ExpectStmt {
  readonly kind: 'expect';
  readonly words: readonly Word[];
  readonly span: Span;
}

/** A top-level line that starts with no statement keyword, or a stray `}` (each an error). */
export interface StrayStmt {
  readonly kind: 'stray';
  readonly words: readonly Word[];
  readonly span: Span;
}
