import { readFileSync } from 'node:fs';

/**
 * The text of every file a run has read, so diagnostics can show code frames long after the
 * parser is done. Paths are kept as the user gave them (relative paths stay relative), which
 * is also how they appear in `file:line:col`.
 */
export class SourceFiles {
  private readonly texts = new Map<string, string>();

  add(path: string, text: string): void {
    this.texts.set(path, text);
  }

  /** Reads and remembers a file. Throws the fs error (the caller turns it into a diagnostic). */
  read(path: string): string {
    const cached = this.texts.get(path);
    if (cached !== undefined) return cached;
    const text = readFileSync(path, 'utf8');
    this.texts.set(path, text);
    return text;
  }

  get(path: string): string | undefined {
    return this.texts.get(path);
  }

  get paths(): string[] {
    return [...this.texts.keys()];
  }
}
