import type { Rule } from '../../ir/policy.js';
import { type Diagnostic, diag } from '../../util/diagnostics.js';
import { quoteIptablesString, truncateUtf8, utf8Length } from '../../util/iptables-quote.js';
import { formatFileLine } from '../../util/span.js';

/**
 * The `-m comment` of an emitted rule: where the rule came from (`file:line`) and the user's
 * own comment, as `policies/gw.nfp:12: web from inside`. The kernel keeps at most 255 bytes
 * (XT_MAX_COMMENT_LEN is 256 with the terminating NUL; longer comments are cut silently by
 * both iptables variants, even inside a UTF-8 character), so nfproof cuts first, at a character
 * boundary, and says so.
 */
export const COMMENT_MAX_BYTES = 255;

export interface CommentOptions {
  /** Prefix the comment with the rule's `file:line`. */
  readonly sourceTag: boolean;
}

/** The comment text (unquoted), or undefined when the rule gets none. */
export function ruleCommentText(rule: Rule, opts: CommentOptions, report: (d: Diagnostic) => void): string | undefined {
  let user = rule.comment;
  if (user !== undefined && /[\n\r\0]/.test(user)) {
    // iptables-restore reads one rule per line, and the kernel stores a C string.
    report(
      diag('warning', 'W-comment-newline', rule.span, 'the comment contains a line break or NUL byte, which an iptables rule cannot hold; written with spaces instead', 'keep rule comments on one line'),
    );
    user = user.replace(/\0/g, '').replace(/\r\n|[\r\n]/g, ' ');
  }
  const tag = opts.sourceTag ? formatFileLine(rule.span) : undefined;
  const full = tag !== undefined && user !== undefined && user !== '' ? `${tag}: ${user}` : (tag ?? user);
  if (full === undefined) return undefined;
  if (utf8Length(full) <= COMMENT_MAX_BYTES) return full;
  const cut = truncateUtf8(full, COMMENT_MAX_BYTES);
  report(
    diag(
      'warning',
      'W-comment-too-long',
      rule.span,
      `the rule's comment is ${utf8Length(full)} bytes; the kernel keeps ${COMMENT_MAX_BYTES}, so it is cut to "${cut.slice(-20)}" at the end`,
      'shorten the comment (non-ASCII characters count as 2 to 4 bytes)',
    ),
  );
  return cut;
}

/** The `-m comment --comment X` words for a comment text. */
export function commentArgs(text: string): string[] {
  return ['-m', 'comment', '--comment', quoteIptablesString(text)];
}

/**
 * Splits an emitted comment back into its source location and the user's comment. Used when
 * nfproof reads its own output (counters, traces); foreign comments come back as `user` only.
 */
export function parseSourceTag(comment: string): { file?: string; line?: number; user?: string } {
  const m = /^(.+?):(\d+)(?:: ([\s\S]*))?$/.exec(comment);
  if (!m || /\s/.test(m[1])) return { user: comment };
  return { file: m[1], line: Number(m[2]), ...(m[3] !== undefined ? { user: m[3] } : {}) };
}
