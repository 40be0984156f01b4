import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { diffPolicies } from '../src/analyze/diff/index.js';
import type { DiffReport } from '../src/analyze/diff/types.js';
import { emitRuleset } from '../src/backends/emit/index.js';
import { importIptablesSave } from '../src/backends/import/index.js';
import { loadAnyPolicy } from '../src/cli/load-policy.js';
import { verifyTranslation } from '../src/cli/verbs/diff.js';
import type { Policy } from '../src/ir/policy.js';
import { FAMILIES } from '../src/util/ip.js';
import { SourceFiles } from '../src/util/sources.js';
import { CORPUS_DIR, REPO_ROOT } from '../test/support/env.js';
import { type Benchmark, peakRssMb, rng, timeMs } from './harness.js';

/**
 * Figures of issue 8 (`nfproof diff`):
 *  - the chair ruleset of the corpus (2015-05-13, 4,849 rules) against a copy with 20 changed
 *    rules — 5 deleted, 5 widened (one option dropped), 5 with another verdict, 5 moved below
 *    their neighbour — made in memory with a fixed seed (the corpus stays out of the repo);
 *  - the same ruleset against itself emitted as iptables-restore text and read back (proved
 *    equivalent: the translation-validation case on a large real ruleset);
 *  - `nfproof compile --verify` over every policies/*.nfp.
 */
const CHAIR = 'configs_chair_for_Network_Architectures_and_Services/iptables-save-2015-05-13_10-53-20';

/** Options whose removal widens a rule and leaves it valid: an address, an interface, a port, a MAC. */
const WIDENERS: readonly RegExp[] = [/ -s \S+/, / -d \S+/, / -i \S+/, / -o \S+/, / -m mac --mac-source \S+/, / --dport \S+/, / --sport \S+/, / --dports \S+/];

/**
 * The ruleset text with 20 rules of the filter table changed, deterministically. Returns the
 * text and what was done (for the detail column).
 */
export function mutateSave(text: string, seed = 2015): { text: string; changes: string[] } {
  const r = rng(seed);
  const lines = text.split('\n');
  const filterStart = lines.indexOf('*filter');
  const candidates = lines.map((l, i) => ({ l, i })).filter(({ l, i }) => i > filterStart && l.startsWith('-A ') && / -j (ACCEPT|DROP|RETURN)\b/.test(l));
  const used = new Set<number>();
  const take = (ok: (l: string, i: number) => boolean): number | undefined => {
    for (let tries = 0; tries < 1000; tries++) {
      const c = candidates[Math.floor(r() * candidates.length)];
      if (used.has(c.i) || used.has(c.i + 1) || used.has(c.i - 1) || !ok(lines[c.i], c.i)) continue;
      used.add(c.i);
      return c.i;
    }
    return undefined;
  };
  const changes: string[] = [];
  const chainOf = (l: string) => l.split(' ')[1];
  for (let k = 0; k < 5; k++) {
    const i = take(() => true);
    if (i === undefined) break;
    changes.push(`deleted line ${i + 1}`);
    lines[i] = '';
  }
  for (let k = 0; k < 5; k++) {
    // An allow rule made broader (one of its conditions dropped): the edit a reviewer worries about.
    const i = take((l) => / -j ACCEPT\b/.test(l) && WIDENERS.some((w) => w.test(l)));
    if (i === undefined) break;
    const w = WIDENERS.filter((x) => x.test(lines[i]));
    const pick = w[Math.floor(r() * w.length)];
    changes.push(`widened line ${i + 1} (dropped${lines[i].match(pick)![0].replace(/ \S+$/, '')})`);
    lines[i] = lines[i].replace(pick, '');
  }
  for (let k = 0; k < 5; k++) {
    const i = take((l) => / -j (ACCEPT|DROP)\b/.test(l));
    if (i === undefined) break;
    const to = / -j ACCEPT\b/.test(lines[i]) ? 'DROP' : 'ACCEPT';
    changes.push(`line ${i + 1} now -j ${to}`);
    lines[i] = lines[i].replace(/ -j (ACCEPT|DROP)\b/, ` -j ${to}`);
  }
  for (let k = 0; k < 5; k++) {
    const i = take((l, j) => lines[j + 1]?.startsWith('-A ') && chainOf(lines[j + 1]) === chainOf(l) && !used.has(j + 1));
    if (i === undefined) break;
    used.add(i + 1);
    changes.push(`lines ${i + 1} and ${i + 2} swapped`);
    [lines[i], lines[i + 1]] = [lines[i + 1], lines[i]];
  }
  return { text: lines.filter((l, i) => l !== '' || !used.has(i)).join('\n'), changes };
}

function imported(text: string, file: string): Policy {
  const r = importIptablesSave(text, file, undefined, { family: 'ipv4' });
  if (!r.policy) throw new Error(`${file} does not import: ${r.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message).slice(0, 3).join('; ')}`);
  return r.policy;
}

function summary(r: DiffReport): string {
  const kinds = new Map<string, number>();
  for (const c of r.classes) kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
  const f = r.families[0]?.stats;
  const replayed = r.classes.filter((c) => c.replay.status === 'agrees').length;
  const phases = f ? `walk ${f.phases.walk} ms, compare ${f.phases.compare} ms, Z3 ${f.phases.z3} ms (${f.z3Queries} queries), classes ${f.phases.classes} ms` : '';
  return `${r.status}: ${r.classes.length} classes (${[...kinds].map(([k, n]) => `${n} ${k}`).join(', ') || 'none'}), ${replayed} replayed, ${r.unknown.length} open, ${r.internalErrors.length} internal errors; ${f ? `${f.changedRules.old}+${f.changedRules.new} changed rules, ${f.regionBoxes} region boxes, ${f.leaves.old}/${f.leaves.new} leaves; ` : ''}${phases}`;
}

function chairText(): string {
  const path = join(CORPUS_DIR, 'net-network', CHAIR);
  if (!existsSync(path)) throw new Error(`corpus file missing: ${path}`);
  return readFileSync(path, 'utf8');
}

export const benchmarks: Benchmark[] = [
  {
    name: 'diff chair ruleset vs a copy with 20 changed rules',
    target: '≤ 15,000 ms',
    meets: (m) => m.value <= 15_000,
    async run() {
      const text = chairText();
      const mutated = mutateSave(text);
      const a = imported(text, 'chair-2015-05-13.rules');
      const b = imported(mutated.text, 'chair-mutated.rules');
      let report: DiffReport | undefined;
      const ms = await timeMs(async () => {
        report = await diffPolicies({ path: 'chair-2015-05-13.rules', policy: a }, { path: 'chair-mutated.rules', policy: b });
      });
      return { value: ms, unit: 'ms', detail: `${mutated.changes.length} changes; ${summary(report!)}; peak RSS ${Math.round(peakRssMb())} MB` };
    },
  },
  {
    name: 'diff chair ruleset vs itself emitted and read back',
    target: 'equivalent (proved)',
    meets: (m) => m.detail?.startsWith('equivalent') ?? false,
    async run() {
      const a = imported(chairText(), 'chair-2015-05-13.rules');
      const b = imported(emitRuleset(a, 'ipv4').text, 'chair-reemitted.rules');
      let report: DiffReport | undefined;
      const ms = await timeMs(async () => {
        report = await diffPolicies({ path: 'chair-2015-05-13.rules', policy: a }, { path: 'chair-reemitted.rules', policy: b });
      });
      return { value: ms, unit: 'ms', detail: `${summary(report!)}; peak RSS ${Math.round(peakRssMb())} MB` };
    },
  },
  {
    name: 'compile --verify on every policies/*.nfp',
    target: '(all equivalent)',
    meets: (m) => m.detail?.includes(' 0 not equivalent') ?? false,
    async run() {
      const dir = join(REPO_ROOT, 'policies');
      const files = readdirSync(dir).filter((f) => f.endsWith('.nfp')).sort();
      let checks = 0;
      let bad = 0;
      const ms = await timeMs(async () => {
        for (const file of files) {
          const sources = new SourceFiles();
          const loaded = await loadAnyPolicy(join(dir, file), sources);
          if (!loaded.policy) throw new Error(`${file} does not load`);
          const emitted = FAMILIES.map((family) => ({ family, text: emitRuleset(loaded.policy!, family).text }));
          for (const c of await verifyTranslation(loaded.policy, join('policies', file), emitted, sources)) {
            checks++;
            if (c.report?.status !== 'equivalent') bad++;
          }
        }
      });
      return { value: ms, unit: 'ms', detail: `${files.length} policies, ${checks} family checks, ${bad} not equivalent` };
    },
  },
];
