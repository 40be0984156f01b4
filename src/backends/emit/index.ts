import { TABLES, TABLE_HOOKS } from '../../ir/netfilter.js';
import type { Chain, Policy, Table } from '../../ir/policy.js';
import { type Diagnostic, diag } from '../../util/diagnostics.js';
import type { Family } from '../../util/ip.js';
import { emitRule } from './rule.js';

/**
 * The iptables emitter: IR → an iptables-restore file in exactly the form iptables-save prints,
 * so that loading it and saving it again gives the same bytes (test/kernel/emit.test.ts checks
 * this with both iptables-legacy and iptables-nft).
 *
 * Layout of the file:
 * - a `#` header naming the source (iptables-restore skips `#` lines);
 * - the tables the policy declares, in the order the kernel runs them on a hook (raw, mangle,
 *   nat, filter, security). iptables-save's own table order is not stable — legacy prints the
 *   reverse of the order the tables were first used, nft its own — so the kernel test compares
 *   table by table;
 * - per table, every built-in chain of that table (`:INPUT ACCEPT [0:0]`; a built-in chain the
 *   policy leaves out gets ACCEPT, as the kernel has it), then the user chains, auxiliary
 *   chains included, sorted by byte value (strcmp), as both iptables-save variants sort them;
 * - the rules of the built-in chains in hook order, then those of the user chains in the same
 *   sorted order; then COMMIT.
 *
 * A family whose ruleset declares no table gives a file with only `#` comments: loading it is a
 * no-op, so deploying rules.v4 and rules.v6 never touches what the policy does not mention.
 */
export interface EmitOptions {
  /**
   * Prefix every rule's `-m comment` with its source `file:line` (default true). The corpus
   * round trip turns it off to compare imported dumps with the original byte for byte.
   */
  readonly sourceComments?: boolean;
}

export interface EmitResult {
  readonly text: string;
  readonly diagnostics: readonly Diagnostic[];
  /** Rules in the IR, iptables rules written (auxiliary chains included), auxiliary chains. */
  readonly stats: { readonly rules: number; readonly lines: number; readonly auxChains: number };
}

const FAMILY_TOOL: Record<Family, string> = { ipv4: 'iptables-restore', ipv6: 'ip6tables-restore' };
const FAMILY_NAME: Record<Family, string> = { ipv4: 'IPv4', ipv6: 'IPv6' };

/** strcmp order, which both iptables-save variants use for user chains. */
function byteOrder(a: string, b: string): number {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return Buffer.compare(x, y);
}

interface ChainOut {
  readonly name: string;
  readonly builtin: boolean;
  readonly policy: string;
  readonly lines: string[];
}

function emitTable(table: Table, family: Family, opts: Required<EmitOptions>, report: (d: Diagnostic) => void, stats: { rules: number; lines: number; auxChains: number }): string[] {
  const taken = new Set(table.chains.map((c) => c.name));
  const allocateChain = (wanted: string): string => {
    // Names must stay within 28 characters (XT_EXTENSION_MAXNAMELEN - 1) and must not clash
    // with a user chain or an earlier auxiliary chain: shorten the head, then number it.
    const fit = (name: string, suffix: string) => name.slice(0, 28 - suffix.length) + suffix;
    const tilde = wanted.indexOf('~');
    const head = tilde < 0 ? wanted : wanted.slice(0, tilde);
    const tail = tilde < 0 ? '' : wanted.slice(tilde);
    let name = fit(head, tail);
    for (let n = 2; taken.has(name); n++) name = fit(head, `${tail}~${n}`);
    taken.add(name);
    stats.auxChains++;
    return name;
  };

  const byName = new Map<string, Chain>(table.chains.map((c) => [c.name, c]));
  const builtins: ChainOut[] = TABLE_HOOKS[table.name].map((hook) => {
    const c = table.chains.find((x) => x.hook === hook) ?? byName.get(hook);
    return { name: hook, builtin: true, policy: c?.policy ?? 'ACCEPT', lines: [] };
  });
  const users: ChainOut[] = table.chains.filter((c) => c.hook === undefined && !TABLE_HOOKS[table.name].includes(c.name as never)).map((c) => ({ name: c.name, builtin: false, policy: '-', lines: [] }));
  const out = new Map<string, ChainOut>([...builtins, ...users].map((c) => [c.name, c]));

  for (const chain of table.chains) {
    const target = out.get(chain.hook ?? chain.name);
    if (!target) {
      // Lowering refuses this; an IR built by other means gets an error, not a crash.
      report(diag('error', 'E-emit-chain', chain.span, `the ${table.name} table has no built-in chain ${chain.hook}`, `its built-in chains are ${TABLE_HOOKS[table.name].join(', ')}`));
      continue;
    }
    chain.rules.forEach((rule, i) => {
      stats.rules++;
      const emitted = emitRule(rule, {
        family,
        chain: target.name,
        ruleIndex: i + 1,
        sourceTag: opts.sourceComments,
        allocateChain,
        report,
      });
      target.lines.push(...emitted.lines);
      for (const a of emitted.aux) {
        const c: ChainOut = { name: a.name, builtin: false, policy: '-', lines: [...a.lines] };
        out.set(a.name, c);
        users.push(c);
      }
    });
  }

  users.sort((a, b) => byteOrder(a.name, b.name));
  const ordered = [...builtins, ...users];
  const text = [`*${table.name}`];
  for (const c of ordered) text.push(`:${c.name} ${c.policy} [0:0]`);
  for (const c of ordered) {
    text.push(...c.lines);
    stats.lines += c.lines.length;
  }
  text.push('COMMIT');
  return text;
}

/** The iptables-restore text of one family of the policy. */
export function emitRuleset(policy: Policy, family: Family, options: EmitOptions = {}): EmitResult {
  const opts: Required<EmitOptions> = { sourceComments: options.sourceComments ?? true };
  const diagnostics: Diagnostic[] = [];
  const stats = { rules: 0, lines: 0, auxChains: 0 };
  const ruleset = policy.rulesets[family];
  const source = policy.sources[0] ?? '<generated>';
  const lines: string[] = [];
  const tables = [...ruleset.tables].sort((a, b) => TABLES.indexOf(a.name) - TABLES.indexOf(b.name));
  if (tables.length === 0) {
    lines.push(`# Generated by nfproof from ${source}: it declares no ${FAMILY_NAME[family]} tables.`);
    lines.push(`# Loading this file with ${FAMILY_TOOL[family]} changes nothing.`);
  } else {
    lines.push(`# Generated by nfproof from ${source}; load with ${FAMILY_TOOL[family]}.`);
    for (const t of tables) lines.push(...emitTable(t, family, opts, (d) => diagnostics.push(d), stats));
  }
  return { text: lines.join('\n') + '\n', diagnostics, stats };
}

/** Both files of a policy, as `nfproof compile` writes them. */
export function emitPolicy(policy: Policy, options: EmitOptions = {}): Record<'rules.v4' | 'rules.v6', EmitResult> {
  return { 'rules.v4': emitRuleset(policy, 'ipv4', options), 'rules.v6': emitRuleset(policy, 'ipv6', options) };
}

