import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { emitRuleset } from '../../src/backends/emit/index.js';
import { importIptablesSave } from '../../src/backends/import/index.js';
import type { Family } from '../../src/util/ip.js';
import { type Variant, VARIANTS, loadAndSave, tableBlocks, tool } from '../backends/kernel-io.js';
import { CORPUS_DIR, corpusAvailable, kernelAvailable } from '../support/env.js';
import { withNetns } from '../support/netns.js';

/**
 * The round trip of issue 7, checked by the kernel, for every file of the net-network corpus
 * (read in place, never copied): import → emit → iptables-restore into a fresh namespace →
 * iptables-save; the original goes through the same namespace; the two saves, table by table,
 * without `#` lines and counters, must be equal. Both iptables variants (legacy and nft).
 *
 * The emitted file carries only the dump's own comments (sourceComments off), so that a
 * faithful import gives exactly the original rules. Lines the importer skips as prose around
 * the dump (W-import-ignored) are left out of what the kernel gets as "original" too.
 * A file the kernel itself refuses is reported with the kernel's reason and counted (nfproof
 * may still read it — it accepts the old `-d ! X` negation iptables 1.8 refuses — and then
 * whether its output loads is reported too).
 * The kernel's own `iptables-save -c` output of each variant is imported back as well.
 * Runtime ≈ 10 s on an idle machine (most of it iptables-nft-restore of the two 5,000-rule files).
 */
const corpus = corpusAvailable();
const kernel = kernelAvailable();
const ROOT = join(CORPUS_DIR, 'net-network');

function corpusFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir).sort()) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (!e.startsWith('UPSTREAM')) out.push(p);
    }
  };
  walk(ROOT);
  return out;
}

/**
 * What the test changes in a corpus file before anything reads it, each change harmless to its
 * meaning and reported: Windows line ends and trailing blanks (iptables-restore 1.8 reads
 * `COMMIT ` or `*nat\r` as something else), prose pasted around the dump (what the importer
 * skips with W-import-ignored), and the anonymisation placeholders of the corpus
 * (`XX:XX:XX:XX:XX:XX`, `<private_ip>`), which no iptables accepts, replaced by one fixed
 * locally administered MAC and one documentation address. Both the kernel and nfproof then read
 * the same text.
 */
function prepareForKernel(raw: string, firstLook: { diagnostics: readonly { code: string; span: { start: { line: number } } }[] }): { text: string; notes: string[] } {
  const notes: string[] = [];
  const ignored = new Set(firstLook.diagnostics.filter((d) => d.code === 'W-import-ignored').map((d) => d.span.start.line));
  if (raw.includes('\r')) notes.push('CRLF line ends');
  let lines = raw.split('\n').map((l) => l.replace(/\r$/, ''));
  if (lines.some((l) => /[ \t]$/.test(l))) notes.push('trailing blanks');
  lines = lines.map((l) => l.replace(/[ \t]+$/, ''));
  if (ignored.size) notes.push(`${ignored.size} prose lines outside the dump`);
  lines = lines.filter((_, i) => !ignored.has(i + 1));
  let text = lines.join('\n');
  const macs = (text.match(/XX:XX:XX:XX:XX:XX/g) ?? []).length;
  if (macs) notes.push(`${macs} MAC placeholders → 02:00:00:00:00:01`);
  text = text.replace(/XX:XX:XX:XX:XX:XX/g, '02:00:00:00:00:01');
  const ips = (text.match(/<private_ip>/g) ?? []).length;
  if (ips) notes.push(`${ips} <private_ip> placeholders → 192.0.2.1`);
  text = text.replace(/<private_ip>/g, '192.0.2.1');
  return { text, notes };
}

interface Row {
  file: string;
  family: Family;
  rules: number;
  modelled: number;
  opaque: string;
  /** What was normalized in the original before both loads. */
  notes: string[];
  outcome: Record<Variant, string>;
}
const rows: Row[] = [];

afterAll(() => {
  if (rows.length === 0) return;
  const lines = rows.map(
    (r) => `${r.file.padEnd(62)} ${r.family} rules=${String(r.rules).padStart(5)} modelled=${String(r.modelled).padStart(5)} legacy=${r.outcome.legacy} nft=${r.outcome.nft}${r.notes.length ? `\n${' '.repeat(64)}input normalized: ${r.notes.join(', ')}` : ''}${r.opaque ? `\n${' '.repeat(64)}opaque: ${r.opaque}` : ''}`,
  );
  const equal = rows.filter((r) => VARIANTS.every((v) => r.outcome[v] === 'equal')).length;
  const refused = rows.filter((r) => VARIANTS.some((v) => r.outcome[v].startsWith('kernel refuses original'))).length;
  console.info(`[corpus] ${rows.length} files: ${equal} round-trip equal in both variants, ${refused} the kernel itself refuses\n${lines.join('\n')}`);
});

describe.skipIf(!corpus.run || !kernel.run)('corpus round trip through the kernel', () => {
  const files = corpus.run ? corpusFiles() : [];

  it('finds the corpus files (26 or more)', () => {
    expect(files.length).toBeGreaterThanOrEqual(26);
  });

  it.each(files.map((f) => [relative(ROOT, f), f]))('%s', async (name, path) => {
    const raw = readFileSync(path, 'utf8');
    const family: Family = /ip6tables/.test(raw.slice(0, 200)) || /ip6tables/.test(name) ? 'ipv6' : 'ipv4';
    const { text, notes } = prepareForKernel(raw, importIptablesSave(raw, name));
    const imported = importIptablesSave(text, name);
    const row: Row = {
      file: name,
      family,
      rules: imported.stats.rules,
      modelled: imported.stats.modelledRules,
      opaque: [...[...imported.stats.opaqueMatches].map(([k, n]) => `-m ${k}×${n}`), ...[...imported.stats.opaqueTargets].map(([k, n]) => `-j ${k}×${n}`)].join(' '),
      notes,
      outcome: { legacy: '', nft: '' },
    };
    rows.push(row);
    const original = text;
    const importErrors = imported.diagnostics.filter((d) => d.severity === 'error');
    const emitted = imported.policy ? emitRuleset(imported.policy, family, { sourceComments: false }) : undefined;

    await withNetns(['corpus'], (ns) => {
      for (const variant of VARIANTS) {
        const orig = loadAndSave(ns, family, variant, original);
        if (!orig.ok) {
          row.outcome[variant] = `kernel refuses original: ${orig.error.split('\n')[0]}`;
          // nfproof may still read it (it reads the old `-d ! X` negation that iptables 1.8
          // refuses); then at least what it writes must load.
          if (emitted) {
            const ours = loadAndSave(ns, family, variant, emitted.text);
            row.outcome[variant] += ours.ok ? '; nfproof imports it and its output loads' : `; nfproof's output is refused too: ${ours.error.split('\n')[0]}`;
          }
          continue;
        }
        if (!emitted) {
          row.outcome[variant] = `import failed: ${importErrors[0]?.message}`;
          continue;
        }
        const ours = loadAndSave(ns, family, variant, emitted.text);
        if (!ours.ok) {
          row.outcome[variant] = `kernel refuses nfproof's output: ${ours.error.split('\n')[0]}`;
          continue;
        }
        const want = tableBlocks(orig.saved);
        const got = tableBlocks(ours.saved);
        const names = [...tableBlocks(original).keys()];
        const differing = names.filter((t) => want.get(t) !== got.get(t));
        row.outcome[variant] = differing.length === 0 ? 'equal' : `differs in ${differing.join(',')}`;
        if (differing.length === 0) {
          // The kernel's own output, this variant's format with `-c` counters, must import and
          // come back unchanged too (the rule counters are zero in a namespace without traffic,
          // but the `[0:0] -A` form is exercised).
          const withCounters = ns.exec(tool(family, variant, 'save'), ['-c']);
          const again = importIptablesSave(withCounters.stdout, `${name} (${variant}-save -c)`, undefined, { family });
          const text = again.policy ? emitRuleset(again.policy, family, { sourceComments: false }).text : '';
          const same = [...want.keys()].every((t) => tableBlocks(text).get(t) === want.get(t));
          if (!again.policy || !same) row.outcome[variant] = `kernel's own ${variant}-save -c output does not import back unchanged${again.policy ? '' : `: ${again.diagnostics.find((d) => d.severity === 'error')?.message}`}`;
        }
        if (differing.length) {
          const a = (want.get(differing[0]) ?? '').split('\n');
          const b = (got.get(differing[0]) ?? '').split('\n');
          const at = a.findIndex((l, i) => l !== b[i]);
          row.outcome[variant] += ` (first difference:\n    kernel: ${a[at]}\n    nfproof: ${b[at]})`;
        }
      }
    });
    for (const v of VARIANTS) {
      const o = row.outcome[v];
      // Either a faithful round trip, or the kernel itself cannot load the original.
      expect(o === 'equal' || o.startsWith('kernel refuses original'), `${name} ${v}: ${o}`).toBe(true);
    }
  });
});
