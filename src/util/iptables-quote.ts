/**
 * Quoting of string arguments in iptables-restore files, as iptables-save writes them.
 *
 * iptables-save leaves a string bare when it is non-empty and made only of letters, digits, `_`
 * and `-`; anything else is put in double quotes, with a backslash before every `"`, `\` and `'`
 * inside. iptables-restore reads that back exactly (inside quotes a backslash takes the next
 * character literally). Only string-valued options are written this way by iptables-save
 * (`--comment`, `--log-prefix`, `--nflog-prefix`); names such as `--name` of `-m recent` are
 * printed bare, so kinds call this only for the former.
 */
const BARE = /^[A-Za-z0-9_-]+$/;

export function quoteIptablesString(value: string): string {
  if (BARE.test(value)) return value;
  return `"${value.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}

/** Length in bytes of the UTF-8 encoding (the kernel's limits are in bytes). */
export function utf8Length(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}

/**
 * Cuts a string to at most `maxBytes` bytes of UTF-8 without splitting a character (the kernel
 * would cut inside one and iptables-save would then print a broken byte).
 */
export function truncateUtf8(value: string, maxBytes: number): string {
  if (utf8Length(value) <= maxBytes) return value;
  let out = '';
  let used = 0;
  for (const ch of value) {
    const n = utf8Length(ch);
    if (used + n > maxBytes) break;
    out += ch;
    used += n;
  }
  return out;
}
