import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Writes several files so that either all of them get their new content or none changes:
 * each goes to a temporary file in the same directory (same filesystem, so rename is atomic),
 * is flushed to disk, and only when every write succeeded are they renamed into place.
 */
export function writeFilesAtomically(files: ReadonlyArray<{ readonly path: string; readonly content: string | Uint8Array }>): void {
  const temps: { tmp: string; path: string }[] = [];
  try {
    for (const f of files) {
      const tmp = join(dirname(f.path), `.${basename(f.path)}.nfproof-tmp-${process.pid}`);
      const fd = openSync(tmp, 'w', 0o644);
      temps.push({ tmp, path: f.path });
      try {
        if (typeof f.content === 'string') writeSync(fd, f.content);
        else writeSync(fd, f.content);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
  } catch (e) {
    for (const t of temps) rmSync(t.tmp, { force: true });
    throw e;
  }
  for (const t of temps) renameSync(t.tmp, t.path);
}

export function writeFileAtomically(path: string, content: string | Uint8Array): void {
  writeFilesAtomically([{ path, content }]);
}
