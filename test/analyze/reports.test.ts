import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type * as Sarif from 'sarif';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkPolicy } from '../../src/analyze/check.js';
import type { CheckReport } from '../../src/analyze/types.js';
import type { CliContext } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import { toJunit } from '../../src/report/junit.js';
import { toSarif } from '../../src/report/sarif.js';
import { SourceFiles } from '../../src/util/sources.js';
import { nfp } from './support/nfp.js';

/**
 * The report formats and the CLI contract: SARIF as GitHub code scanning ingests it (the
 * properties its upload documentation requires, checked structurally on the @types/sarif
 * shape), JUnit XML that parses and counts failures the way CI test tabs read them, JSON, and
 * the exit codes 0 / 1 / 2.
 *
 * Runtime: ~10 s.
 */
const POLICY = `
table ip filter {
  chain input policy drop {
    tcp dport 22 accept
    saddr 10.0.0.0/8 tcp dport 22 drop
  }
}
expect reachable tcp to 192.0.2.1 dport 80
expect no redundant rules
`;

let report: CheckReport;
beforeAll(async () => {
  report = await checkPolicy(nfp(POLICY, 'policies/test.nfp'), { timeoutMs: 10_000 });
}, 60_000);

describe('SARIF 2.1.0', () => {
  it('has what GitHub code scanning requires', () => {
    const log = JSON.parse(JSON.stringify(toSarif(report, { root: process.cwd() }))) as Sarif.Log;
    expect(log.version).toBe('2.1.0');
    expect(log.$schema).toMatch(/sarif-2\.1\.0/);
    expect(log.runs).toHaveLength(1);
    const run = log.runs[0];
    expect(run.tool.driver.name).toBe('nfproof');
    const rules = run.tool.driver.rules!;
    const ids = rules.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const r of rules) {
      expect(r.shortDescription?.text).toBeTruthy();
      expect(['none', 'note', 'warning', 'error']).toContain(r.defaultConfiguration?.level);
    }
    const results = run.results!;
    // One shadowed rule, one failed expectation (nothing reaches port 80).
    expect(results.map((r) => r.ruleId).sort()).toEqual(['nfproof/expect-reachable', 'nfproof/shadowed']);
    for (const r of results) {
      expect(rules[r.ruleIndex!].id).toBe(r.ruleId);
      expect(['note', 'warning', 'error']).toContain(r.level);
      expect(r.message.text?.length).toBeGreaterThan(0);
      const loc = r.locations![0].physicalLocation!;
      expect(loc.artifactLocation!.uri).toBe('policies/test.nfp');
      expect(loc.artifactLocation!.uriBaseId).toBe('%SRCROOT%');
      expect(loc.region!.startLine).toBeGreaterThanOrEqual(1);
      expect(loc.region!.startColumn).toBeGreaterThanOrEqual(1);
    }
    const shadowed = results.find((r) => r.ruleId === 'nfproof/shadowed')!;
    expect(shadowed.locations![0].physicalLocation!.region!.startLine).toBe(5);
    expect(shadowed.relatedLocations![0].physicalLocation!.region!.startLine).toBe(4);
    expect(shadowed.partialFingerprints?.nfproofRule).toMatch(/^[0-9a-f]{8}$/);
    expect(shadowed.codeFlows![0].threadFlows[0].locations.length).toBeGreaterThan(0);
    expect(run.invocations![0].executionSuccessful).toBe(true);
  });
});

describe('JUnit XML', () => {
  it('parses and counts the failures', () => {
    const xml = toJunit(report);
    expect(XMLValidator.validate(xml)).toBe(true);
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(xml) as {
      testsuites: { failures: string; testsuite: { name: string; failures: string; testcase: unknown }[] };
    };
    expect(doc.testsuites.failures).toBe('2');
    const suites = doc.testsuites.testsuite;
    expect(suites.map((s) => s.name)).toEqual(['nfproof findings', 'nfproof expectations']);
    expect(suites[0].failures).toBe('1');
    expect(suites[1].failures).toBe('1');
  });

  it('escapes what XML cannot hold', () => {
    const xml = toJunit({ ...report, findings: report.findings.map((f) => ({ ...f, message: `a <b> & "c" \u0001` })) });
    expect(XMLValidator.validate(xml)).toBe(true);
  });
});

function ctx(): { c: CliContext; out: () => string; err: () => string } {
  let o = '';
  let e = '';
  const sink = (f: (s: string) => void) => new Writable({ write: (chunk, _enc, cb) => (f(String(chunk)), cb()) });
  return {
    c: { stdout: sink((s) => (o += s)), stderr: sink((s) => (e += s)), color: false, isTTY: false, sources: new SourceFiles() },
    out: () => o,
    err: () => e,
  };
}

describe('nfproof check / query CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nfproof-check-'));
  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const clean = write('clean.nfp', 'table ip filter {\n  chain input policy drop {\n    iif lo accept\n    tcp dport 22 accept\n  }\n}\n');
  const shadowed = write('shadowed.nfp', POLICY.replace(/expect.*\n/g, ''));
  const warnOnly = write('warn.nfp', 'table ip filter {\n  chain input policy drop {\n    tcp dport 22 accept\n    saddr 10.0.0.0/8 tcp dport 22 accept\n  }\n}\n');
  const dump = write('dump.rules', '*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-A INPUT -p tcp --dport 22 -j DROP\nCOMMIT\n');

  it('exits 0 on a clean policy, 1 on an error finding', async () => {
    const a = ctx();
    expect(await main(['node', 'nfproof', 'check', clean], a.c)).toBe(0);
    expect(a.out()).toMatch(/0 errors, 0 warnings/);
    const b = ctx();
    expect(await main(['node', 'nfproof', 'check', shadowed], b.c)).toBe(1);
    expect(b.out()).toMatch(/error\[nfproof\/shadowed\]/);
    expect(b.out()).toMatch(/witness: tcp /);
  }, 60_000);

  it('--fail-on decides whether warnings fail', async () => {
    expect(await main(['node', 'nfproof', 'check', warnOnly], ctx().c)).toBe(0);
    expect(await main(['node', 'nfproof', 'check', '--fail-on', 'warning', warnOnly], ctx().c)).toBe(1);
  }, 60_000);

  it('exits 2 when the policy cannot be read', async () => {
    const a = ctx();
    expect(await main(['node', 'nfproof', 'check', join(dir, 'missing.nfp')], a.c)).toBe(2);
    expect(a.err()).toMatch(/cannot read/);
  });

  it('checks an iptables-save dump and states its assumptions', async () => {
    const a = ctx();
    expect(await main(['node', 'nfproof', 'check', dump], a.c)).toBe(1);
    expect(a.out()).toMatch(/assumed: no host model/);
    expect(a.out()).toMatch(/shadowed/);
  }, 60_000);

  it('writes SARIF and JUnit to a file', async () => {
    const sarif = join(dir, 'out.sarif');
    expect(await main(['node', 'nfproof', 'check', '-f', 'sarif', '-o', sarif, shadowed], ctx().c)).toBe(1);
    expect((JSON.parse(readFileSync(sarif, 'utf8')) as Sarif.Log).runs[0].results!.length).toBe(1);
    const junit = join(dir, 'out.xml');
    expect(await main(['node', 'nfproof', 'check', '-f', 'junit', '-o', junit, shadowed], ctx().c)).toBe(1);
    expect(XMLValidator.validate(readFileSync(junit, 'utf8'))).toBe(true);
    const a = ctx();
    expect(await main(['node', 'nfproof', 'check', '-f', 'json', shadowed], a.c)).toBe(1);
    expect((JSON.parse(a.out()) as { findings: unknown[] }).findings).toHaveLength(1);
  }, 60_000);

  it('query prints each verdict with a witness; a bad flow is an input error', async () => {
    const a = ctx();
    const qcode = await main(['node', 'nfproof', 'query', shadowed, 'tcp to 192.0.2.1'], a.c);
    expect(qcode, a.out()).toBe(0);
    expect(a.out()).toMatch(/LOCAL — decided by .*tcp dport 22 accept/);
    expect(a.out()).toMatch(/DROPPED/);
    const b = ctx();
    expect(await main(['node', 'nfproof', 'query', shadowed, 'tcp dport banana'], b.c)).toBe(2);
  }, 60_000);
});
