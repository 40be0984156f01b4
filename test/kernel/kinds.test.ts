import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { TABLE_HOOKS, type TableName, TABLES } from '../../src/ir/netfilter.js';
import type { Family } from '../../src/util/ip.js';
import { ALL_CASES } from '../kinds/cases/index.js';
import { REFUSED_CASES } from '../kinds/cases/refused.js';
import { parseRule } from '../kinds/support/dsl.js';
import { emitRule } from '../kinds/support/iptables.js';
import type { KindCase } from '../kinds/support/cases.js';
import { kernelAvailable, requirement } from '../support/env.js';
import { type Netns, withNetns } from '../support/netns.js';

/**
 * The kernel checks the expected iptables texts of every kind case (test/kinds/cases): each
 * case's rules are loaded with iptables-legacy-restore and iptables-nft-restore (ip6tables-* for
 * IPv6) in a fresh network namespace, and iptables-save must print every rule exactly as the
 * case says. This is what makes those texts the kernel's canonical form rather than nfproof's
 * own output. All cases of one family go in one restore file per variant; when the kernel
 * refuses the file, each case is loaded alone to name the culprit.
 *
 * Runtime: about 2 s (4 namespaces, a few restores each).
 */
const env = kernelAvailable();

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** `-m set` cases need the ipset tool to create their sets; without it they are left out, loudly. */
const ipset = env.run ? requirement('ipset cases', have('ipset'), 'the ipset tool is missing (apt-get install ipset)') : { run: false };
const CASES = ALL_CASES.filter((c) => ipset.run || !c.ipt.some((r) => r.includes('-m set ')));

/** ipsets the `set` cases refer to (an ipset match needs the set to exist). */
function createSets(ns: Netns): void {
  if (!ipset.run) return;
  ns.run('ipset', ['create', 'blocklist', 'hash:ip']);
  ns.run('ipset', ['create', 'blocklist6', 'hash:ip', 'family', 'inet6']);
  ns.run('ipset', ['create', 'svc', 'hash:ip,port']);
}

function restoreText(list: readonly KindCase[], tables: readonly TableName[]): string {
  const lines: string[] = [];
  for (const t of tables) {
    const mine = list.filter((c) => c.table === t);
    if (mine.length === 0) continue;
    lines.push(`*${t}`);
    for (const h of TABLE_HOOKS[t]) lines.push(`:${h} ACCEPT [0:0]`);
    const userChains = new Set<string>(['svc', 'logdrop']);
    for (const c of mine) if (!(TABLE_HOOKS[t] as readonly string[]).includes(c.chain)) userChains.add(c.chain);
    for (const u of userChains) lines.push(`:${u} - [0:0]`);
    for (const c of mine) for (const r of c.ipt) lines.push(`-A ${c.chain} ${r}`);
    lines.push('COMMIT');
  }
  return lines.join('\n') + '\n';
}

/** `-A` lines of iptables-save, per table and chain, in order. */
function savedRules(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let table = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    const m = /^-A (\S+) (.*)$/.exec(line);
    if (m) out.set(`${table}/${m[1]}`, [...(out.get(`${table}/${m[1]}`) ?? []), m[2]]);
  }
  return out;
}

function expectedRules(list: readonly KindCase[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const c of list) for (const r of c.ipt) out.set(`${c.table}/${c.chain}`, [...(out.get(`${c.table}/${c.chain}`) ?? []), r]);
  return out;
}

const VARIANTS = ['legacy', 'nft'] as const;

describe.skipIf(!env.run)('kind cases on the kernel', () => {
  for (const family of ['ipv4', 'ipv6'] as Family[]) {
    for (const variant of VARIANTS) {
      const tool = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${variant}`;
      it(`${tool}-save prints every ${family} case exactly`, async () => {
        const list = CASES.filter((c) => c.family === family);
        await withNetns(['kinds'], (ns) => {
          createSets(ns);
          const text = restoreText(list, TABLES);
          const r = ns.exec(`${tool}-restore`, [], text);
          if (r.status !== 0) {
            // Name every case the tools or the kernel refuse, each loaded on its own.
            const refused: string[] = [];
            for (const c of list) {
              const one = ns.exec(`${tool}-restore`, [], restoreText([c], [c.table]));
              if (one.status !== 0) refused.push(`${c.table}/${c.chain}: ${c.dsl} -> ${c.ipt.join(' | ')}: ${one.stderr.split('\n')[0]}`);
            }
            expect(refused, `${tool}-restore refused cases`).toEqual([]);
            expect.fail(`${tool}-restore failed: ${r.stderr}`);
          }
          const saved = savedRules(ns.run(`${tool}-save`, []));
          const expected = expectedRules(list);
          const diffs: string[] = [];
          for (const [key, rules] of expected) {
            const got = saved.get(key) ?? [];
            rules.forEach((rule, i) => {
              if (got[i] !== rule) diffs.push(`${key}: expected\n    ${rule}\n  kernel printed\n    ${got[i] ?? '(nothing)'}`);
            });
            if (got.length !== rules.length) diffs.push(`${key}: ${rules.length} rules expected, ${got.length} saved`);
          }
          expect(diffs.join('\n'), 'cases whose iptables text differs from iptables-save').toBe('');
        });
      });
    }
  }
});

/**
 * The other direction: each rule the kinds declare out of place (test/kinds/cases/refused.ts)
 * is refused by iptables-legacy-restore or by the kernel. (iptables-nft is laxer in places —
 * it loads a TCPMSS rule without a SYN test — so the strict legacy path is the reference.)
 */
describe.skipIf(!env.run)('restrictions the kinds declare are the kernel\'s', () => {
  for (const family of ['ipv4', 'ipv6'] as Family[]) {
    it(`${family === 'ipv4' ? 'iptables' : 'ip6tables'}-legacy-restore refuses every misplaced rule`, async () => {
      const tool = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-legacy-restore`;
      await withNetns(['refused'], (ns) => {
        const accepted: string[] = [];
        for (const c of REFUSED_CASES.filter((x) => x.family === family)) {
          const r = parseRule(c.dsl, { family });
          const lines = emitRule(r.matches, r.target, family);
          const text = [`*${c.table}`, ...TABLE_HOOKS[c.table].map((h) => `:${h} ACCEPT [0:0]`), ...lines.map((l) => `-A ${c.chain} ${l}`), 'COMMIT', ''].join('\n');
          if (ns.exec(tool, [], text).status === 0) accepted.push(`${c.table}/${c.chain}: ${lines.join(' | ')}  (${c.dsl})`);
        }
        expect(accepted, 'rules the kinds flag but the kernel accepted').toEqual([]);
      });
    });
  }
});
