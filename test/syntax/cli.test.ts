import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { CliContext } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import { SourceFiles } from '../../src/util/sources.js';

/** `nfproof ir` and `nfproof fmt`: output, files and exit codes (0 ok, 1 findings, 2 input error). */
function run(args: string[]): { code: Promise<number>; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  const sink = (f: (s: string) => void) => new Writable({ write: (c, _e, cb) => (f(String(c)), cb()) });
  const ctx: CliContext = { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)), color: false, isTTY: false, sources: new SourceFiles() };
  return { code: main(['node', 'nfproof', ...args], ctx), out: () => out, err: () => err };
}

function file(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'nfp-syntax-'));
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const POLICY = 'host gw { interface lan dev eth0 address 10.0.0.1/24 }\ntable filter { chain input { iif lan tcp dport 22 accept } }\n';

describe('nfproof ir', () => {
  it('prints the IR as JSON with bigints as strings and spans as file:line:col', async () => {
    const path = file('p.nfp', POLICY);
    const r = run(['ir', path]);
    expect(await r.code).toBe(0);
    const ir = JSON.parse(r.out());
    expect(ir.host.interfaces[0]).toEqual({ name: 'lan', device: 'eth0', addresses: [{ family: 'ipv4', addr: '167772161', prefixLen: 24 }], span: `${path}:1:11` });
    const rule = ir.rulesets.ipv4.tables[0].chains[0].rules[0];
    expect(rule.span).toBe(`${path}:2:30`);
    expect(rule.matches[0]).toMatchObject({ kind: 'iface', device: 'eth0', alias: 'lan', span: `${path}:2:30` });
  });

  it('prints one family with --family', async () => {
    const r = run(['ir', file('p.nfp', POLICY), '--family', 'ipv6']);
    expect(await r.code).toBe(0);
    expect(JSON.parse(r.out())).toMatchObject({ family: 'ipv6', tables: [{ name: 'filter' }] });
  });

  it('reports errors with code frames and exits 2', async () => {
    const path = file('bad.nfp', 'table filter { chain input { tcp dport 70000 accept } }\n');
    const r = run(['ir', path]);
    expect(await r.code).toBe(2);
    expect(r.out()).toBe('');
    expect(r.err()).toContain(`${path}:1:40: error[E-bad-port]`);
    expect(r.err()).toContain('> 1 | table filter');
  });

  it('exits 2 for a missing file, without a stack trace', async () => {
    const r = run(['ir', '/nonexistent/x.nfp']);
    expect(await r.code).toBe(2);
    expect(r.err()).toContain('cannot read /nonexistent/x.nfp');
    expect(r.err()).not.toContain('    at ');
  });
});

describe('nfproof fmt', () => {
  const MESSY = 'table filter {\nchain input { tcp dport {22,80} accept ; drop   # why\n}\n}\n';
  const TIDY = 'table filter {\n  chain input {\n    tcp dport { 22, 80 } accept\n    drop  # why\n  }\n}\n';

  it('prints the formatted file', async () => {
    const r = run(['fmt', file('m.nfp', MESSY)]);
    expect(await r.code).toBe(0);
    expect(r.out()).toBe(TIDY);
  });

  it('--check exits 1 for an unformatted file and 0 for a formatted one, changing nothing', async () => {
    const messy = file('m.nfp', MESSY);
    const tidy = file('t.nfp', TIDY);
    const r1 = run(['fmt', '--check', messy]);
    expect(await r1.code).toBe(1);
    expect(r1.err()).toContain(`${messy}: not formatted`);
    expect(readFileSync(messy, 'utf8')).toBe(MESSY);
    expect(await run(['fmt', '--check', tidy]).code).toBe(0);
  });

  it('--write rewrites the file', async () => {
    const messy = file('m.nfp', MESSY);
    const r = run(['fmt', '--write', messy]);
    expect(await r.code).toBe(0);
    expect(readFileSync(messy, 'utf8')).toBe(TIDY);
    expect(r.err()).toContain(`formatted ${messy}`);
  });

  it('leaves a file with syntax errors alone and exits 2', async () => {
    const bad = file('b.nfp', 'table filter {\n  chain input {\n');
    const r = run(['fmt', '--write', bad]);
    expect(await r.code).toBe(2);
    expect(r.err()).toContain('error[E-unclosed]');
    expect(readFileSync(bad, 'utf8')).toBe('table filter {\n  chain input {\n');
  });

  it('refuses --check with --write', async () => {
    expect(await run(['fmt', '--check', '--write', file('m.nfp', MESSY)]).code).toBe(2);
  });
});
