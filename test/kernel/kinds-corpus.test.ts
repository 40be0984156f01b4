import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Family } from '../../src/util/ip.js';
import { importRule, emitRule } from '../kinds/support/iptables.js';
import { CORPUS_DIR, corpusAvailable, kernelAvailable } from '../support/env.js';
import { withNetns } from '../support/netns.js';

/**
 * Every rule of the real rulesets in the corpus, as the kernel prints it, must go through the
 * kinds and come back byte for byte: each corpus file is loaded with iptables-legacy-restore and
 * with iptables-nft-restore into a fresh namespace, iptables-save prints the kernel's canonical form, and for every `-A`
 * line the kinds' import followed by their emit must give that line again — with no opaque
 * match or target (every module and target of the corpus is modelled). Rule comments belong to
 * the rule, not to a kind, and are set aside for the comparison.
 *
 * This checks the kinds on ~12,000 real rules; the whole-file round trip through the importer
 * and emitter is the backends' test (test/kernel/corpus*.test.ts). Runtime: about 6 s.
 */
const kernel = kernelAvailable();
const corpus = corpusAvailable();

function corpusFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (!name.startsWith('UPSTREAM')) out.push(p);
    }
  };
  walk(join(CORPUS_DIR, 'net-network'));
  return out.sort();
}

const COMMENT = / -m comment --comment (?:"(?:[^"\\]|\\.)*"|\S+)/g;

/**
 * Makes a corpus file loadable without changing what its rules mean to the kinds: prose before
 * the dump, trailing blanks, the old `--opt ! value` negation, and the anonymisation placeholders
 * (`XX:XX:XX:XX:XX:XX`, `<private_ip>`) that no kernel accepts. Importing such input as it is,
 * with diagnostics, is the importer's job; here the point is the kinds on the rules.
 */
function loadable(text: string): string {
  const lines = text.replace(/\r/g, '').split('\n').map((l) => l.replace(/\s+$/, ''));
  const start = lines.findIndex((l) => l.startsWith('*') || l.startsWith('# Generated'));
  const end = lines.lastIndexOf('COMMIT');
  return lines
    .slice(Math.max(0, start), end + 1)
    .map((l) =>
      l
        .replace(/ (-[sdio]|--[a-z-]+) ! /g, ' ! $1 ')
        .replace(/XX:XX:XX:XX:XX:XX/g, '02:00:00:00:00:01')
        .replace(/<private_ip>/g, '10.0.0.1'),
    )
    .join('\n')
    .concat('\n');
}

describe.skipIf(!kernel.run || !corpus.run)('corpus rules through the kinds, checked by the kernel', () => {
  const files = kernel.run && corpus.run ? corpusFiles() : [];
  it('finds the corpus', () => {
    expect(files.length).toBeGreaterThanOrEqual(26);
  });
  for (const file of files) {
    const name = relative(CORPUS_DIR, file);
    const family: Family = /ip6tables/.test(name) ? 'ipv6' : 'ipv4';
    for (const variant of ['legacy', 'nft'] as const) {
      it(`${name} (${variant})`, async () => {
        const tool = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${variant}`;
        await withNetns(['corpus'], (ns) => {
          const original = loadable(readFileSync(file, 'utf8'));
          const r = ns.exec(`${tool}-restore`, [], original);
          // Every corpus file loads once made loadable; a refusal is a failure, not a skip.
          expect(r.stderr.trim(), `${tool}-restore refused ${name}`).toBe('');
          expect(r.status).toBe(0);
          const saved = ns.run(`${tool}-save`, []);
          const chains = new Set(saved.split('\n').filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]));
          const problems: string[] = [];
          let rules = 0;
          for (const line of saved.split('\n')) {
            const m = /^-A (\S+) (.*)$/.exec(line);
            if (!m) continue;
            rules++;
            const body = m[2].replace(COMMENT, '').trim();
            const imported = importRule(body, family, name, chains);
            const opaque = [...imported.matches.filter((x) => x.kind === 'opaque'), ...(imported.target?.kind === 'opaque' ? [imported.target] : [])];
            if (imported.diagnostics.length) problems.push(`${line}\n    diagnostics: ${imported.diagnostics.map((d) => d.message).join('; ')}`);
            else if (opaque.length) problems.push(`${line}\n    opaque: ${JSON.stringify(opaque.map((o) => ('module' in o ? o.module : o.name)))}`);
            else {
              const back = emitRule(imported.matches, imported.target, family);
              if (back.length !== 1 || back[0] !== body) problems.push(`${line}\n    kinds emit: ${back.join(' | ')}`);
            }
          }
          expect(rules).toBeGreaterThan(0);
          expect(problems.slice(0, 20).join('\n'), `${problems.length} of ${rules} rules of ${name} do not come back unchanged`).toBe('');
        });
      });
    }
  }
});
