import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { emitRuleset } from '../src/backends/emit/index.js';
import { importIptablesSave } from '../src/backends/import/index.js';
import type { Chain, Policy, Rule } from '../src/ir/policy.js';
import type { Match } from '../src/kinds/index.js';
import { NO_SPAN, type Span } from '../src/util/span.js';
import { type Benchmark, heapUsedAfterGc, peakRssMb, timeMs } from './harness.js';

/**
 * Figures of the iptables backends (issues 3 and 7):
 * - import of the 4,849-rule chair ruleset (target ≤ 0.3 s), cold (first call in a fresh
 *   process, as `nfproof import` runs it) and warm;
 * - import of every corpus file, as a table in bench/CORPUS.md (with modelled/opaque counts);
 * - emit of a generated 10,000-rule policy (part of issue 3's parse + check + compile < 1 s,
 *   < 300 MB).
 */
const here = dirname(fileURLToPath(import.meta.url));
const CORPUS = resolve(here, '..', '..', 'shared', 'corpus', 'net-network');
const CHAIR = join(CORPUS, 'configs_chair_for_Network_Architectures_and_Services', 'iptables-save-2015-05-13_10-53-20');

function corpusFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir).sort()) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (!e.startsWith('UPSTREAM')) out.push(p);
    }
  };
  if (existsSync(CORPUS)) walk(CORPUS);
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function span(line: number): Span {
  return { file: 'gen.nfp', start: { line, col: 1, offset: 0 }, end: { line, col: 1, offset: 0 } };
}

/** A 10,000-rule policy: 40 user chains of 250 rules with addresses, ports, states, some sets. */
export function generatedPolicy(rules = 10_000): Policy {
  const chains: Chain[] = [];
  const perChain = 250;
  const users = Math.ceil(rules / perChain);
  let line = 1;
  const jumps: Rule[] = [];
  for (let c = 0; c < users; c++) {
    const name = `zone${c}`;
    const rs: Rule[] = [];
    for (let i = 0; i < perChain && c * perChain + i < rules; i++) {
      const sp = span(line++);
      const n = c * perChain + i;
      const matches: Match[] = [
        { kind: 'addr', dir: 'src', negated: false, value: { items: [{ type: 'prefix', family: 'ipv4', addr: (10n << 24n) + BigInt(n << 8), len: 24 }], excluded: [] }, span: sp },
        { kind: 'proto', negated: false, protos: [i % 3 === 0 ? 17 : 6], span: sp },
        { kind: 'port', dir: 'dst', negated: false, value: { items: i % 10 === 0 ? [[80, 80], [443, 443], [8000, 8100]] : [[1024 + (n % 50000), 1024 + (n % 50000)]] }, span: sp },
      ];
      if (i % 4 === 0) matches.push({ kind: 'ct-state', negated: false, states: ['NEW'], span: sp });
      rs.push({ matches, target: { kind: 'verdict', verdict: i % 7 === 0 ? 'drop' : 'accept', span: sp }, span: sp, ...(i % 5 === 0 ? { comment: `rule ${n}` } : {}) });
    }
    chains.push({ name, rules: rs, span: NO_SPAN });
    const sp = span(line++);
    jumps.push({ matches: [{ kind: 'iface', dir: 'in', negated: false, device: `eth${c}`, wildcard: false, span: sp }], target: { kind: 'jump', mode: 'jump', chain: name, span: sp }, span: sp });
  }
  const filter = { name: 'filter' as const, chains: [{ name: 'INPUT', hook: 'INPUT' as const, policy: 'DROP' as const, rules: jumps, span: NO_SPAN }, ...chains], span: NO_SPAN };
  return { rulesets: { ipv4: { family: 'ipv4', tables: [filter] }, ipv6: { family: 'ipv6', tables: [] } }, expectations: [], sources: ['gen.nfp'], origin: 'nfp' };
}

export const benchmarks: Benchmark[] = [
  {
    name: 'import chair ruleset (4,849 rules), cold',
    target: '≤ 0.3 s',
    meets: (m) => m.value <= 300,
    async run() {
      const text = readFileSync(CHAIR, 'utf8');
      let rules = 0;
      const cpu0 = process.cpuUsage();
      const cold = await timeMs(() => {
        rules = importIptablesSave(text, CHAIR).stats.rules;
      });
      const cpu = process.cpuUsage(cpu0);
      const warm: number[] = [];
      for (let i = 0; i < 7; i++) warm.push(await timeMs(() => importIptablesSave(text, CHAIR)));
      return { value: cold, unit: 'ms', detail: `${rules} rules; CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms (all threads) for the cold run; warm median ${median(warm).toFixed(0)} ms over 7 runs; load average ${loadavg()[0].toFixed(1)}` };
    },
  },
  {
    name: 'import every corpus file (table in bench/CORPUS.md)',
    target: 'report',
    meets: () => true,
    async run() {
      const rows: string[] = [];
      let total = 0;
      let rulesAll = 0;
      let modelledAll = 0;
      for (const f of corpusFiles()) {
        const text = readFileSync(f, 'utf8');
        importIptablesSave(text, f); // warm-up: each figure below is a warm run
        const times: number[] = [];
        let r = importIptablesSave(text, f);
        for (let i = 0; i < 5; i++) {
          times.push(await timeMs(() => (r = importIptablesSave(text, f))));
        }
        const ms = median(times);
        total += ms;
        rulesAll += r.stats.rules;
        modelledAll += r.stats.modelledRules;
        const opaque = [...[...r.stats.opaqueMatches].map(([k, n]) => `-m ${k} ×${n}`), ...[...r.stats.opaqueTargets].map(([k, n]) => `-j ${k} ×${n}`)].join(', ');
        const errors = r.diagnostics.filter((d) => d.severity === 'error').length;
        rows.push(`| ${relative(CORPUS, f)} | ${r.stats.rules} | ${r.stats.modelledRules} | ${ms.toFixed(1)} | ${errors} | ${opaque || '—'} |`);
      }
      const md = [
        '# Corpus import (net-network)',
        '',
        'Written by `npm run bench` (bench/backends.bench.ts). Times are the median of 5 warm',
        '`importIptablesSave` runs per file on this machine; *modelled* counts rules whose every',
        'match and target is a modelled kind; the last column lists what is kept verbatim (opaque).',
        'Files are read in place from ../shared/corpus (CC BY-NC-SA); nothing of them is copied here.',
        'They are imported as they are: the anonymisation placeholders of the chair dumps',
        '(`--mac-source XX:XX:XX:XX:XX:XX`, 3,283 rules) are no MAC address, so those matches stay opaque',
        'here; test/kernel/corpus.test.ts replaces them before its round trip and models every rule but one',
        '(`--dport 60000:29`, a reversed range the kernel accepts and never matches).',
        '',
        '| file | rules | modelled | ms | import errors | opaque (kept verbatim) |',
        '|---|---:|---:|---:|---:|---|',
        ...rows,
        `| **all** | ${rulesAll} | ${modelledAll} | ${total.toFixed(1)} | | |`,
        '',
      ].join('\n');
      writeFileSync(join(here, 'CORPUS.md'), md);
      return { value: total, unit: 'ms', detail: `${rows.length} files, ${rulesAll} rules, ${modelledAll} fully modelled` };
    },
  },
  {
    name: 'emit a generated 10,000-rule policy',
    target: 'part of parse+check+compile < 1 s, < 300 MB',
    meets: (m) => m.value < 1000,
    async run() {
      const policy = generatedPolicy();
      const before = heapUsedAfterGc();
      let lines = 0;
      const cpu0 = process.cpuUsage();
      const cold = await timeMs(() => {
        lines = emitRuleset(policy, 'ipv4').stats.lines;
      });
      const cpu = process.cpuUsage(cpu0);
      const heap = (heapUsedAfterGc() - before) / 1e6;
      const warm: number[] = [];
      for (let i = 0; i < 5; i++) warm.push(await timeMs(() => emitRuleset(policy, 'ipv4')));
      return { value: cold, unit: 'ms', detail: `${lines} iptables rules; CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms (all threads) cold; warm median ${median(warm).toFixed(0)} ms; heap after ${heap.toFixed(1)} MB; peak RSS ${peakRssMb().toFixed(0)} MB; load average ${loadavg()[0].toFixed(1)}` };
    },
  },
];
