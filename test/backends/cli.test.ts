import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { CliContext } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import { SourceFiles } from '../../src/util/sources.js';

/** `nfproof compile` on iptables input (the .nfp front end has its own tests): files, exit codes. */
function run(args: string[]): { code: Promise<number>; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  const sink = (f: (s: string) => void) => new Writable({ write: (c, _e, cb) => (f(String(c)), cb()) });
  const ctx: CliContext = { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)), color: false, isTTY: false, sources: new SourceFiles() };
  return { code: main(['node', 'nfproof', ...args], ctx), out: () => out, err: () => err };
}

const DUMP = ['*filter', ':INPUT DROP [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', '-A INPUT -i lo -j ACCEPT', 'COMMIT', ''].join('\n');

describe('nfproof compile', () => {
  it('writes rules.v4 and rules.v6 with -o (creating the directory)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nfp-compile-'));
    const input = join(dir, 'fw.save');
    writeFileSync(input, DUMP);
    const r = run(['compile', input, '-o', join(dir, 'out')]);
    expect(await r.code).toBe(0);
    const v4 = readFileSync(join(dir, 'out', 'rules.v4'), 'utf8');
    expect(v4).toContain(`-A INPUT -i lo -m comment --comment "${input}:5" -j ACCEPT`);
    expect(readFileSync(join(dir, 'out', 'rules.v6'), 'utf8')).toMatch(/^# .*declares no IPv6 tables/);
    expect(r.err()).toContain('wrote');
  });

  it('prints to stdout without -o, one family with --family', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nfp-compile-'));
    const input = join(dir, 'fw.save');
    writeFileSync(input, DUMP);
    const r = run(['compile', input, '--family', 'ipv4', '--no-source-comments']);
    expect(await r.code).toBe(0);
    expect(r.out()).toContain('-A INPUT -i lo -j ACCEPT\nCOMMIT\n');
    expect(r.out()).not.toContain('IPv6');
  });

  it('writes nothing and exits 2 when the input has errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nfp-compile-'));
    const input = join(dir, 'bad.sh');
    writeFileSync(input, 'iptables -A OUTPUT 1 -m state --state ESTABLISHED -j ACCEPT\n');
    const r = run(['compile', input, '-o', join(dir, 'out')]);
    expect(await r.code).toBe(2);
    expect(existsSync(join(dir, 'out', 'rules.v4'))).toBe(false);
    expect(r.err()).toContain('error[E-import-append-index]');
    expect(r.err()).toContain('-I OUTPUT 1');
  });

  it('exits 2 on a missing file, without a stack trace', async () => {
    const r = run(['compile', '/nonexistent/fw.save']);
    expect(await r.code).toBe(2);
    expect(r.err()).toContain('cannot read /nonexistent/fw.save');
    expect(r.err()).not.toContain('    at ');
  });
});
