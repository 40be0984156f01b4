import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, requirement } from '../support/env.js';

/**
 * The CLI as users run it: bin/nfproof.js starting the bundle dist/nfproof.mjs that `npm install`
 * builds (scripts/bundle.mjs). The other tests import src/ directly, so this is what catches a
 * bundle that cannot start (a CommonJS dependency, a missing external). ~1 s.
 */
const bundle = join(REPO_ROOT, 'dist', 'nfproof.mjs');
const env = requirement('the built CLI', existsSync(bundle), `${bundle} is missing (npm install or npm run build makes it)`);

function nfproof(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'nfproof.js'), ...args], { cwd: REPO_ROOT, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!env.run)('installed CLI (bin/nfproof.js → dist/nfproof.mjs)', () => {
  it('lists every verb', () => {
    const r = nfproof('--help');
    expect(r.status).toBe(0);
    for (const verb of ['compile', 'import', 'check', 'query', 'diff', 'simulate', 'ir', 'fmt']) expect(r.stdout).toMatch(new RegExp(`^\\s+${verb}\\b`, 'm'));
  });

  it('compiles the seed policy: its SNAT rule, as the source document writes it', () => {
    const r = nfproof('compile', 'policies/seed-snat.nfp');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^-A POSTROUTING -s 192\.168\.18\.2\/32 -o eth1 -p tcp -m tcp --sport 120 .*-j SNAT --to-source 192\.168\.20\.1:450$/m);
  });

  it('proves the seed policy with Z3 (a dependency kept outside the bundle)', () => {
    const r = nfproof('check', 'policies/seed-snat.nfp');
    expect(r.stderr + r.stdout).toMatch(/expectations: 3 hold, 0 fail/);
    expect(r.status).toBe(0);
  });

  it('reports a user mistake with file:line:col and exit 2, no stack trace', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nfproof-cli-'));
    try {
      const file = join(dir, 'bad.nfp');
      writeFileSync(file, 'table ip filter {\n  chain input policy drop {\n    tcp dport 22 acept\n  }\n}\n');
      const r = nfproof('compile', file, '-o', join(dir, 'out'));
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`${file}:3:18: error`);
      expect(r.stderr).toContain('did you mean `accept`?');
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(join(dir, 'out'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
