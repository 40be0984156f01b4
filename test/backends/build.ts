import type { ChainPolicy, Hook, TableName } from '../../src/ir/netfilter.js';
import type { Chain, Policy, Rule, Ruleset, Table } from '../../src/ir/policy.js';
import type { Match, Target } from '../../src/kinds/index.js';
import type { AddrItem } from '../../src/kinds/values.js';
import { type Family, parsePrefix } from '../../src/util/ip.js';
import type { Span } from '../../src/util/span.js';

/** Small builders for hand-written IR in backend tests (no parser needed). */
export function at(line: number, file = 'test.nfp'): Span {
  return { file, start: { line, col: 1, offset: 0 }, end: { line, col: 2, offset: 1 } };
}

export function prefix(text: string): AddrItem {
  const p = parsePrefix(text);
  if (!p) throw new Error(`bad prefix ${text}`);
  return { type: 'prefix', family: p.family, addr: p.addr, len: p.len };
}

export const m = {
  saddr: (items: string[], negated = false, line = 1): Match => ({ kind: 'addr', dir: 'src', negated, value: { items: items.map(prefix), excluded: [] }, span: at(line) }),
  daddr: (items: string[], negated = false, line = 1): Match => ({ kind: 'addr', dir: 'dst', negated, value: { items: items.map(prefix), excluded: [] }, span: at(line) }),
  proto: (protos: number[], negated = false, line = 1): Match => ({ kind: 'proto', negated, protos, span: at(line) }),
  dport: (items: [number, number][], negated = false, line = 1): Match => ({ kind: 'port', dir: 'dst', negated, value: { items }, span: at(line) }),
  sport: (items: [number, number][], negated = false, line = 1): Match => ({ kind: 'port', dir: 'src', negated, value: { items }, span: at(line) }),
  iif: (device: string, negated = false, wildcard = false, line = 1): Match => ({ kind: 'iface', dir: 'in', negated, device, wildcard, span: at(line) }),
  oif: (device: string, negated = false, wildcard = false, line = 1): Match => ({ kind: 'iface', dir: 'out', negated, device, wildcard, span: at(line) }),
  state: (states: ('NEW' | 'ESTABLISHED' | 'RELATED' | 'INVALID' | 'UNTRACKED')[], negated = false, line = 1): Match => ({ kind: 'ct-state', negated, states, span: at(line) }),
};

export const t = {
  accept: (line = 1): Target => ({ kind: 'verdict', verdict: 'accept', span: at(line) }),
  drop: (line = 1): Target => ({ kind: 'verdict', verdict: 'drop', span: at(line) }),
  jump: (chain: string, line = 1): Target => ({ kind: 'jump', mode: 'jump', chain, span: at(line) }),
  goto: (chain: string, line = 1): Target => ({ kind: 'jump', mode: 'goto', chain, span: at(line) }),
};

export function rule(line: number, matches: Match[], target: Target, comment?: string): Rule {
  return { matches, target, span: at(line), ...(comment !== undefined ? { comment } : {}) };
}

export function chain(name: string, rules: Rule[], opts: { hook?: Hook; policy?: ChainPolicy } = {}): Chain {
  return { name, rules, span: at(1), ...opts };
}

export function builtin(hook: Hook, rules: Rule[], policy: ChainPolicy = 'ACCEPT'): Chain {
  return chain(hook, rules, { hook, policy });
}

export function table(name: TableName, chains: Chain[]): Table {
  return { name, chains, span: at(1) };
}

export function policyOf(tables: Partial<Record<Family, Table[]>>, sources = ['test.nfp']): Policy {
  const rs = (family: Family): Ruleset => ({ family, tables: tables[family] ?? [] });
  return { rulesets: { ipv4: rs('ipv4'), ipv6: rs('ipv6') }, expectations: [], sources, origin: 'nfp' };
}
