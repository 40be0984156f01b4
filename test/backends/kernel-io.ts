import type { Family } from '../../src/util/ip.js';
import type { Netns } from '../support/netns.js';

/**
 * Loading restore files into a test namespace and reading them back, for the emitter and
 * corpus kernel tests. Both iptables variants are used: x_tables (legacy) and nf_tables (nft)
 * are separate in the kernel, so one namespace can hold both without interference (nft-save
 * only adds a `#` warning line about the legacy tables, which normalization drops).
 */
export type Variant = 'legacy' | 'nft';
export const VARIANTS: readonly Variant[] = ['legacy', 'nft'];

export function tool(family: Family, variant: Variant, what: 'restore' | 'save'): string {
  return `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${variant}-${what}`;
}

export type LoadResult = { readonly ok: true; readonly saved: string } | { readonly ok: false; readonly error: string };

/** iptables-restore TEXT, then iptables-save of the tables it names. */
export function loadAndSave(ns: Netns, family: Family, variant: Variant, text: string): LoadResult {
  const r = ns.exec(tool(family, variant, 'restore'), [], text);
  if (r.status !== 0) return { ok: false, error: (r.stderr || r.stdout).trim() };
  const s = ns.exec(tool(family, variant, 'save'), []);
  if (s.status !== 0) return { ok: false, error: `save failed: ${(s.stderr || s.stdout).trim()}` };
  return { ok: true, saved: s.stdout };
}

/**
 * A restore/save text as its table blocks (`*name` … `COMMIT`), without `#` lines and with
 * every counter zeroed. Table order is not compared: iptables-save's is not stable (legacy
 * prints the reverse of the order in which tables were first used, nft its own order).
 */
export function tableBlocks(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let name: string | undefined;
  let lines: string[] = [];
  for (const raw of text.split('\n')) {
    if (raw.startsWith('#') || raw.trim() === '') continue;
    const line = raw.replace(/\[\d+:\d+\]/g, '[0:0]');
    if (line.startsWith('*')) {
      name = line.slice(1).trim();
      lines = [line];
    } else if (name !== undefined) {
      lines.push(line);
      if (line === 'COMMIT') {
        out.set(name, lines.join('\n'));
        name = undefined;
      }
    }
  }
  return out;
}

/** The blocks of `saved` for the tables named in `expected`, for a readable comparison. */
export function sameTables(expected: string, saved: string): { expected: string; actual: string } {
  const want = tableBlocks(expected);
  const got = tableBlocks(saved);
  const names = [...want.keys()].sort();
  return {
    expected: names.map((n) => want.get(n)).join('\n'),
    actual: names.map((n) => got.get(n) ?? `*${n}\n(missing from iptables-save)`).join('\n'),
  };
}
