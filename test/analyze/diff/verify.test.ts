import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { emitRuleset } from '../../../src/backends/emit/index.js';
import { loadAnyPolicy } from '../../../src/cli/load-policy.js';
import { verifyTranslation } from '../../../src/cli/verbs/diff.js';
import { FAMILIES } from '../../../src/util/ip.js';
import { SourceFiles } from '../../../src/util/sources.js';
import { REPO_ROOT } from '../../support/env.js';

/**
 * Translation validation on every example policy (what CI runs as `nfproof compile --verify`):
 * each family's emitted iptables-restore text, read back by the importer, is proved equivalent
 * to the policy — verdicts, NAT and egress for every packet, every table including nat.
 *
 * Runtime: a few seconds (one diff per policy and family).
 */
const dir = join(REPO_ROOT, 'policies');
const policies = readdirSync(dir).filter((f) => f.endsWith('.nfp')).sort();

describe('nfproof compile --verify on policies/*.nfp', () => {
  it('finds the example policies', () => {
    expect(policies.length).toBeGreaterThan(3);
  });
  for (const file of policies) {
    it(`${file}: the emitted rules are equivalent to the policy`, async () => {
      const sources = new SourceFiles();
      const path = join('policies', file);
      const loaded = await loadAnyPolicy(join(REPO_ROOT, path), sources);
      expect(loaded.policy, loaded.diagnostics.map((d) => d.message).join('\n')).toBeDefined();
      const policy = loaded.policy!;
      const emitted = FAMILIES.map((family) => ({ family, text: emitRuleset(policy, family).text }));
      const checks = await verifyTranslation(policy, path, emitted, sources);
      expect(checks.length).toBeGreaterThan(0);
      for (const c of checks) {
        expect(c.importDiagnostics.filter((d) => d.severity === 'error')).toEqual([]);
        const r = c.report!;
        const why = [...r.classes.map((k) => `${k.kind}: ${k.cubes[0].flow} (${k.old.summary} / ${k.new.summary})`), ...r.unknown.map((u) => u.reason), ...r.internalErrors.map((e) => e.message)].join('\n');
        expect(r.status, why).toBe('equivalent');
      }
    }, 60_000);
  }
});
