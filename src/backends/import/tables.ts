import { type ChainPolicy, type Hook, TABLES, TABLE_HOOKS, type TableName, isHook } from '../../ir/netfilter.js';
import type { Chain, Rule, Table } from '../../ir/policy.js';
import type { Span } from '../../util/span.js';

/**
 * The tables of one family as the import builds them, command by command (`:X` / `-N`, `-A`,
 * `-I`, `-P`, `-F`, `-X`, `-E`, `-D`), with the kernel's rules for what each command may do.
 * Problems are returned as messages; the caller turns them into diagnostics at the right span.
 */
export interface ChainState {
  name: string;
  readonly hook?: Hook;
  policy?: ChainPolicy;
  counters?: readonly [bigint, bigint];
  rules: Rule[];
  readonly span: Span;
}

export class TableState {
  readonly chains = new Map<string, ChainState>();

  constructor(
    readonly name: TableName,
    readonly span: Span,
  ) {}

  isBuiltin(name: string): boolean {
    return (TABLE_HOOKS[this.name] as readonly string[]).includes(name);
  }

  /** Adds the built-in chains the table does not have yet (policy ACCEPT, as a fresh kernel table). */
  addBuiltins(span: Span): void {
    for (const hook of TABLE_HOOKS[this.name]) {
      if (!this.chains.has(hook)) this.chains.set(hook, { name: hook, hook, policy: 'ACCEPT', rules: [], span });
    }
  }

  /** `:NAME POLICY [p:b]` of iptables-save. */
  declare(name: string, policy: string, counters: readonly [bigint, bigint] | undefined, span: Span): string | undefined {
    if (this.isBuiltin(name)) {
      if (policy !== 'ACCEPT' && policy !== 'DROP') return `the policy of built-in chain ${name} must be ACCEPT or DROP, not \`${policy}\``;
      const existing = this.chains.get(name);
      if (existing) {
        existing.policy = policy;
        if (counters) existing.counters = counters;
      } else {
        this.chains.set(name, { name, hook: name as Hook, policy, rules: [], span, ...(counters ? { counters } : {}) });
      }
      return undefined;
    }
    if (isHook(name)) return `${name} is not a built-in chain of the ${this.name} table`;
    if (policy !== '-') return `user chain ${name} cannot have a policy (write \`:${name} - [0:0]\`)`;
    if (this.chains.has(name)) return `chain ${name} is declared twice`;
    this.chains.set(name, { name, rules: [], span, ...(counters ? { counters } : {}) });
    return undefined;
  }

  newChain(name: string, span: Span): string | undefined {
    if (this.chains.has(name)) return `chain ${name} already exists`;
    if (isHook(name)) return `${name} is a built-in chain name`;
    this.chains.set(name, { name, rules: [], span });
    return undefined;
  }

  setPolicy(name: string, policy: string): string | undefined {
    const c = this.chains.get(name);
    if (!c || !this.isBuiltin(name)) return `\`-P\` sets the policy of a built-in chain; ${name} is not one of the ${this.name} table`;
    if (policy !== 'ACCEPT' && policy !== 'DROP') return `a policy is ACCEPT or DROP, not \`${policy}\``;
    c.policy = policy;
    return undefined;
  }

  flush(name: string | undefined): string | undefined {
    if (name === undefined) {
      for (const c of this.chains.values()) c.rules = [];
      return undefined;
    }
    const c = this.chains.get(name);
    if (!c) return `no chain ${name} to flush`;
    c.rules = [];
    return undefined;
  }

  deleteChain(name: string | undefined): string | undefined {
    const victims = name === undefined ? [...this.chains.values()].filter((c) => !c.hook) : [this.chains.get(name)];
    for (const c of victims) {
      if (!c) return `no chain ${name} to delete`;
      if (c.hook) return `built-in chain ${c.name} cannot be deleted`;
      const user = this.referrer(c.name);
      if (user) return `chain ${c.name} is still used by a rule in ${user}`;
      if (c.rules.length > 0) return `chain ${c.name} is not empty (flush it first with -F)`;
      this.chains.delete(c.name);
    }
    return undefined;
  }

  rename(from: string, to: string): string | undefined {
    const c = this.chains.get(from);
    if (!c || c.hook) return `no user chain ${from} to rename`;
    if (this.chains.has(to)) return `chain ${to} already exists`;
    this.chains.delete(from);
    c.name = to;
    this.chains.set(to, c);
    for (const other of this.chains.values()) {
      other.rules = other.rules.map((r) => (r.target.kind === 'jump' && r.target.chain === from ? { ...r, target: { ...r.target, chain: to } } : r));
    }
    return undefined;
  }

  private referrer(name: string): string | undefined {
    for (const c of this.chains.values()) if (c.rules.some((r) => r.target.kind === 'jump' && r.target.chain === name)) return c.name;
    return undefined;
  }

  toTable(): Table {
    const builtins = TABLE_HOOKS[this.name].flatMap((h) => {
      const c = this.chains.get(h);
      return c ? [c] : [];
    });
    const users = [...this.chains.values()].filter((c) => !c.hook);
    const chain = (c: ChainState): Chain => ({
      name: c.name,
      ...(c.hook ? { hook: c.hook, policy: c.policy ?? 'ACCEPT' } : {}),
      rules: c.rules,
      span: c.span,
      ...(c.counters ? { counters: c.counters } : {}),
    });
    return { name: this.name, chains: [...builtins, ...users].map(chain), span: this.span };
  }
}

/** Tables in canonical order. */
export function orderedTables(tables: ReadonlyMap<TableName, TableState>): Table[] {
  return TABLES.flatMap((t) => {
    const s = tables.get(t);
    return s ? [s.toTable()] : [];
  });
}
