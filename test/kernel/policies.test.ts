import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { emitRuleset } from '../../src/backends/emit/index.js';
import type { Policy } from '../../src/ir/policy.js';
import { createSimulator } from '../../src/netfilter/simulator.js';
import { loadPolicy } from '../../src/syntax/index.js';
import type { Family } from '../../src/util/ip.js';
import { SourceFiles } from '../../src/util/sources.js';
import { REPO_ROOT } from '../support/env.js';
import { differential } from './harness/differential.js';
import { harnessAvailable } from './harness/env.js';
import { parsePacketLines } from './harness/packet-lines.js';
import { SIMULATOR_SYSCTLS, Topology } from './harness/topology.js';

/**
 * The shipped examples on the kernel: every policies/NAME.nfp that has a packet file
 * policies/NAME.jsonl is compiled by the emitter, loaded into a firewall built from its own
 * host block, and its packets are replayed on the kernel and in the simulator, which must
 * agree on every packet, entry and counter. Policies without a packet file are listed, not run.
 * ~1 s per policy.
 */
const env = harnessAvailable();
const DIR = join(REPO_ROOT, 'policies');
const files = existsSync(DIR) ? readdirSync(DIR).filter((f) => f.endsWith('.nfp')).sort() : [];
const withPackets = files.filter((f) => existsSync(join(DIR, f.replace(/\.nfp$/, '.jsonl'))));

function load(file: string): Policy {
  const r = loadPolicy(join(DIR, file), new SourceFiles());
  if (!r.policy) throw new Error(`${file}: ${r.diagnostics.map((d) => `${d.span.start.line}:${d.span.start.col} ${d.message}`).join('\n')}`);
  return r.policy;
}

describe.skipIf(!env.run)('policies/ examples with packet files, kernel vs simulator', () => {
  it('lists the examples it can replay', () => {
    const without = files.filter((f) => !withPackets.includes(f));
    if (without.length) console.info(`policies without a packet file (not replayed): ${without.join(', ')}`);
    expect(withPackets.length + without.length).toBe(files.length);
  });

  for (const file of withPackets) {
    it(basename(file), async () => {
      const policy = load(file);
      if (!policy.host) throw new Error(`${file} has a packet file but no host block: the harness needs the host to build`);
      const packetsFile = join(DIR, file.replace(/\.nfp$/, '.jsonl'));
      const inputs = parsePacketLines(readFileSync(packetsFile, 'utf8'), packetsFile);
      const families = (['ipv4', 'ipv6'] as Family[]).filter((f) => policy.rulesets[f].tables.length > 0);
      const topo = await Topology.create(policy.host, {});
      try {
        for (const f of families) {
          const emitted = emitRuleset(policy, f);
          expect(emitted.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
          topo.loadRules(f, emitted.text);
        }
        const sim = createSimulator(policy, { sysctls: { ...SIMULATOR_SYSCTLS, ...policy.host.sysctls } });
        const diff = await differential(topo, sim, inputs, { families, policy });
        expect(diff.report).toBe('simulator and kernel agree');
      } finally {
        topo.dispose();
      }
    });
  }
});
