import fc from 'fast-check';
import { describe, it } from 'vitest';
import { emitRuleset } from '../../src/backends/emit/index.js';
import { importIptablesSave } from '../../src/backends/import/index.js';
import type { Policy } from '../../src/ir/policy.js';
import { MATCH_KINDS, type Match } from '../../src/kinds/index.js';
import { printPolicy } from '../../src/syntax/index.js';
import type { Family } from '../../src/util/ip.js';
import { policyArb } from '../gen/policy.js';
import { Netns } from '../support/netns.js';
import { harnessAvailable } from './harness/env.js';
import { SkipLog, knownRefusal } from './harness/known.js';
import { rebuiltPerDraw } from './harness/random-policy.js';
import { TimeBox } from './harness/time-box.js';

/**
 * The emitter check of the kernel differential issue: for random policies, what the kernel
 * holds after loading the emitted rules (its own iptables-save) imports back to a policy that
 * emits exactly the rules that were loaded — the re-imported IR is equivalent to the source,
 * rule for rule, as the kernel sees it. Both iptables flavours (legacy and nft). One namespace
 * per flavour, reused: every load replaces all five tables. ~10 s.
 */
const env = harnessAvailable();
const SEED = Number(process.env.NFPROOF_SEED ?? 42);
const RUNS = Number(process.env.NFPROOF_REIMPORT_RUNS ?? 100);
/** Every match kind but ipset: `-m set` needs the set to exist, and this namespace has none. */
const MATCHES = (Object.keys(MATCH_KINDS) as Match['kind'][]).filter((k) => k !== 'ipset');

/** iptables-restore text per table, `#` lines dropped (table order differs between flavours). */
function tables(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let name = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    if (line.startsWith('*')) name = line.slice(1);
    out[name] = `${out[name] ?? ''}${line}\n`;
  }
  return out;
}

/** Empties every table, so that a table the next policy does not mention is not left over. */
const EMPTY = ['raw', 'mangle', 'nat', 'filter', 'security']
  .map((t) => {
    const chains: Record<string, string[]> = {
      raw: ['PREROUTING', 'OUTPUT'],
      mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
      nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
      filter: ['INPUT', 'FORWARD', 'OUTPUT'],
      security: ['INPUT', 'FORWARD', 'OUTPUT'],
    };
    return [`*${t}`, ...chains[t].map((c) => `:${c} ACCEPT [0:0]`), 'COMMIT'].join('\n');
  })
  .join('\n');

const skipped = new SkipLog();

function roundTrip(ns: Netns, flavour: 'legacy' | 'nft', policy: Policy): void {
  for (const f of ['ipv4', 'ipv6'] as Family[]) {
    if (policy.rulesets[f].tables.length === 0) continue;
    const tool = `${f === 'ipv4' ? 'iptables' : 'ip6tables'}-${flavour}`;
    const emitted = emitRuleset(policy, f);
    if (emitted.diagnostics.some((d) => d.severity === 'error')) return;
    ns.run(`${tool}-restore`, [], `${EMPTY}\n`);
    const load = ns.exec(`${tool}-restore`, [], emitted.text);
    const known = load.status !== 0 ? knownRefusal(load.stderr) : undefined;
    if (known) {
      skipped.add(known);
      fc.pre(false);
    }
    if (load.status !== 0) throw new Error(`${tool}-restore refused the emitter's output (${load.stderr.trim()}):\n${emitted.text}`);
    const saved = ns.run(`${tool}-save`, []);
    const back = importIptablesSave(saved, `kernel-${f}.save`, undefined, { family: f });
    const errors = back.diagnostics.filter((d) => d.severity === 'error');
    if (!back.policy || errors.length) throw new Error(`${tool}-save output does not import: ${errors.map((d) => d.message).join('; ')}\n${saved}`);
    const again = emitRuleset(back.policy, f, { sourceComments: false });
    const want = tables(emitted.text);
    const got = tables(again.text);
    // Tables the policy leaves out were emptied above and come back empty from the kernel.
    for (const [t, text] of Object.entries(want)) {
      if (got[t] !== text) {
        throw new Error(`${tool}: iptables-save → import → emit differs in table ${t}\n--- loaded ---\n${text}--- after the round trip ---\n${got[t] ?? '(missing)\n'}--- kernel's save ---\n${saved}--- policy ---\n${printPolicy(policy)}`);
      }
    }
  }
}

describe.skipIf(!env.run)('kernel iptables-save re-imports to the source policy (property)', () => {
  for (const flavour of ['legacy', 'nft'] as const) {
    // A policy takes ~0.15 s (legacy) to ~0.25 s (nft) on 2 busy cores; the cap allows 1 s each and a failure 20 s
    // of shrinking (harness/time-box.ts): a failing CI run (100 per flavour) ends within 120 s.
    const box = new TimeBox(20_000, RUNS * 1_000 + 20_000);
    it(`${flavour}: ${RUNS} random policies (seed ${SEED})`, async () => {
      const ns = Netns.create(`ri${flavour}`);
      try {
        // Asynchronous so that the event loop turns between runs (signals, timeouts).
        await fc.assert(
          // Rebuilt per draw: one long-lived policyArb keeps ~0.5 MB per policy (random-policy.ts).
          fc.asyncProperty(rebuiltPerDraw(() => policyArb({ expectations: false, host: false, matchKinds: MATCHES })), box.wrap(async (p) => roundTrip(ns, flavour, p))),
          { seed: SEED, numRuns: RUNS, endOnFailure: process.env.NFPROOF_NO_SHRINK === '1', ...box.options },
        );
      } finally {
        ns.dispose();
        skipped.report(`save-reimport (${flavour})`);
        const cut = box.summary();
        if (cut) console.info(`save-reimport (${flavour}): ${cut}`);
      }
    }, box.totalMs + 60_000);
  }
});
