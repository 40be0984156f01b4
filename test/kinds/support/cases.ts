import { describe, expect, it } from 'vitest';
import type { TableName } from '../../../src/ir/netfilter.js';
import { printMatch, printTarget } from '../../../src/kinds/index.js';
import type { Family } from '../../../src/util/ip.js';
import { parseRule } from './dsl.js';
import { emitRule, importRule } from './iptables.js';

/**
 * Table-driven kind tests in the spirit of nftables' tests/py: one line per case —
 *
 *   [DSL clause(s), expected iptables-save rule body (or bodies when split), expected DSL print,
 *    expected DSL print of the rule imported back from the iptables text]
 *
 * The iptables texts are not taken from nfproof's output: test/kernel/kinds.test.ts loads every
 * case into a namespace with iptables-legacy-restore and iptables-nft-restore (ip6tables-* for
 * IPv6) and checks that iptables-save prints each line exactly as written here.
 */
export interface KindCase {
  readonly dsl: string;
  readonly ipt: readonly string[];
  readonly print: string;
  readonly imported: string;
  readonly family: Family;
  readonly table: TableName;
  readonly chain: string;
}

export interface CaseDefaults {
  readonly family?: Family;
  readonly table?: TableName;
  readonly chain?: string;
}

export type CaseRow = readonly [dsl: string, ipt: string | readonly string[], print?: string, imported?: string];

export function cases(defaults: CaseDefaults, rows: readonly CaseRow[]): KindCase[] {
  return rows.map(([dsl, ipt, print, imported]) => ({
    dsl,
    ipt: typeof ipt === 'string' ? [ipt] : ipt,
    print: print ?? dsl,
    imported: imported ?? print ?? dsl,
    family: defaults.family ?? 'ipv4',
    table: defaults.table ?? 'filter',
    chain: defaults.chain ?? 'INPUT',
  }));
}

function printRule(r: { matches: readonly Parameters<typeof printMatch>[0][]; target?: Parameters<typeof printTarget>[0] }): string {
  return [...r.matches.map(printMatch), ...(r.target ? [printTarget(r.target)] : [])].join(' ');
}

/** Registers one vitest test per case: parse, print, emit, import, emit again. */
export function runCases(title: string, list: readonly KindCase[]): void {
  describe(title, () => {
    for (const c of list) {
      it(`${c.family} ${c.table}/${c.chain}: ${c.dsl}`, () => {
        const parsed = parseRule(c.dsl, { family: c.family });
        expect(parsed.diagnostics, 'DSL diagnostics').toEqual([]);
        expect(printRule(parsed), 'DSL print').toBe(c.print);
        // print∘parse is the identity on IR: parsing the print gives the same print again.
        expect(printRule(parseRule(printRule(parsed), { family: c.family })), 'print is stable').toBe(c.print);
        expect(emitRule(parsed.matches, parsed.target, c.family), 'iptables').toEqual(c.ipt);
        if (c.ipt.length === 1) {
          const imported = importRule(c.ipt[0], c.family);
          expect(imported.diagnostics, 'import diagnostics').toEqual([]);
          expect(printRule(imported), 'DSL print of the import').toBe(c.imported);
          expect(emitRule(imported.matches, imported.target, c.family), 'iptables of the import').toEqual(c.ipt);
        }
      });
    }
  });
}

/** Checks that the DSL text is refused with a diagnostic of the given code. */
export function expectDslError(dsl: string, code: string, family?: Family): void {
  const parsed = parseRule(dsl, family ? { family } : {});
  expect(parsed.diagnostics.map((d) => d.code), `diagnostics for ${dsl}`).toContain(code);
}
