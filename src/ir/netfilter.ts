/**
 * The fixed shape of netfilter's iptables tables: which tables exist, which hooks (built-in
 * chains) each one has, and in which order the kernel runs them. Everything that walks or
 * checks chains reads this one place.
 */
export type TableName = 'raw' | 'mangle' | 'nat' | 'filter' | 'security';
export type Hook = 'PREROUTING' | 'INPUT' | 'FORWARD' | 'OUTPUT' | 'POSTROUTING';

export const TABLES: readonly TableName[] = ['raw', 'mangle', 'nat', 'filter', 'security'];
export const HOOKS: readonly Hook[] = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];

/** Built-in chains of each table, in iptables-save order. */
export const TABLE_HOOKS: Readonly<Record<TableName, readonly Hook[]>> = {
  raw: ['PREROUTING', 'OUTPUT'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

/**
 * Table priorities on each hook (include/uapi/linux/netfilter_ipv4.h): lower runs first.
 * Conntrack itself sits at -200 (after raw, before mangle) and confirms at the very end;
 * nat splits into DNAT (-100, PREROUTING/OUTPUT) and SNAT (+100, INPUT/POSTROUTING).
 */
export const TABLE_PRIORITY: Readonly<Record<TableName, Partial<Record<Hook, number>>>> = {
  raw: { PREROUTING: -300, OUTPUT: -300 },
  mangle: { PREROUTING: -150, INPUT: -150, FORWARD: -150, OUTPUT: -150, POSTROUTING: -150 },
  nat: { PREROUTING: -100, OUTPUT: -100, INPUT: 100, POSTROUTING: 100 },
  filter: { INPUT: 0, FORWARD: 0, OUTPUT: 0 },
  security: { INPUT: 50, FORWARD: 50, OUTPUT: 50 },
};

export const CONNTRACK_PRIORITY = -200;

/** Tables on a hook in the order the kernel runs them. */
export function tablesOnHook(hook: Hook): TableName[] {
  return TABLES.filter((t) => TABLE_PRIORITY[t][hook] !== undefined).sort(
    (a, b) => (TABLE_PRIORITY[a][hook] as number) - (TABLE_PRIORITY[b][hook] as number),
  );
}

export function isHook(name: string): name is Hook {
  return (HOOKS as readonly string[]).includes(name);
}

export function isTableName(name: string): name is TableName {
  return (TABLES as readonly string[]).includes(name);
}

export type ChainPolicy = 'ACCEPT' | 'DROP';
