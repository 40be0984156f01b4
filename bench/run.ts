import { spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Benchmark, Measurement } from './harness.js';

/**
 * `npm run bench [filter]`: runs every bench/*.bench.ts in a child process, prints a table and
 * writes it to bench/RESULTS.md. Numbers are measurements on this machine, never assertions.
 */
const here = dirname(fileURLToPath(import.meta.url));

interface Row {
  file: string;
  name: string;
  target: string;
  value?: number;
  unit?: string;
  detail?: string;
  meets?: boolean;
  error?: string;
}

async function child(file: string): Promise<void> {
  const mod = (await import(pathToFileURL(join(here, file)).href)) as { benchmarks: Benchmark[] };
  const rows: Row[] = [];
  for (const b of mod.benchmarks) {
    if (process.env.BENCH_FILTER && !b.name.includes(process.env.BENCH_FILTER)) continue;
    try {
      const m: Measurement = await b.run();
      rows.push({ file, name: b.name, target: b.target, ...m, meets: b.meets(m) });
    } catch (e) {
      rows.push({ file, name: b.name, target: b.target, error: e instanceof Error ? e.message : String(e) });
    }
  }
  process.stdout.write(`\n@@BENCH@@${JSON.stringify(rows)}\n`);
}

function fmt(v: number): string {
  return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en-US') : v.toPrecision(3);
}

function parent(): void {
  const filter = process.argv[2];
  const files = readdirSync(here)
    .filter((f) => f.endsWith('.bench.ts'))
    .sort();
  const rows: Row[] = [];
  for (const f of files) {
    process.stderr.write(`bench: ${f}…\n`);
    const r = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=4096', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', f], {
      encoding: 'utf8',
      env: { ...process.env, ...(filter ? { BENCH_FILTER: filter } : {}) },
      maxBuffer: 64 * 1024 * 1024,
    });
    const marker = r.stdout.lastIndexOf('@@BENCH@@');
    if (marker < 0) {
      rows.push({ file: f, name: '(whole file)', target: '', error: (r.stderr || 'no output').trim().split('\n').slice(-3).join(' ') });
      continue;
    }
    rows.push(...(JSON.parse(r.stdout.slice(marker + 9).trim()) as Row[]));
  }
  const cpu = spawnSync('sh', ['-c', "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], { encoding: 'utf8' }).stdout.trim();
  const header = [
    `# nfproof benchmarks`,
    ``,
    `Measured ${new Date().toISOString()} on ${cpu || 'unknown CPU'} (${process.platform}, Node ${process.version}).`,
    `Regenerate with \`npm run bench\`. These are measurements, not test assertions.`,
    ``,
    `| benchmark | measured | target | meets | detail |`,
    `|---|---|---|---|---|`,
  ];
  const lines = rows.map((r) =>
    r.error
      ? `| ${r.name} (${r.file}) | error: ${r.error.replace(/\|/g, '\\|')} | ${r.target} | no | |`
      : `| ${r.name} | ${fmt(r.value!)} ${r.unit} | ${r.target} | ${r.meets ? 'yes' : '**no**'} | ${(r.detail ?? '').replace(/\|/g, '\\|')} |`,
  );
  const table = [...header, ...lines, ''].join('\n');
  process.stdout.write(table);
  if (!filter) writeFileSync(join(here, 'RESULTS.md'), table);
}

if (process.argv[2] === '--child') await child(process.argv[3]);
else parent();
