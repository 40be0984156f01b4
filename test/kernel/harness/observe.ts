import { CT_STATUS } from '../../../src/ir/fields.js';
import { type TableName, isTableName } from '../../../src/ir/netfilter.js';
import type { ChainCounters, CtEntrySnapshot, CtTuple } from '../../../src/netfilter/api.js';
import { type Family, parseAddress } from '../../../src/util/ip.js';
import type { Netns } from '../../support/netns.js';

/**
 * Reading the kernel's state back: `conntrack -L -o extended` into CtEntrySnapshot, and
 * `iptables-save -c` into per-chain counters. Parsers are strict: a token they do not know is
 * an error, so a format change shows up as a failing test instead of silently lost data.
 */

/**
 * Status bits a conntrack listing lets us see: [UNREPLIED] is the absence of SEEN_REPLY,
 * [ASSURED] is ASSURED, and SRC_NAT/DST_NAT show as a reply tuple that is not the inverse of
 * the original. (CONFIRMED holds for every listed entry.) Comparisons use only these.
 */
export const OBSERVABLE_STATUS = CT_STATUS.SEEN_REPLY | CT_STATUS.ASSURED | CT_STATUS.SRC_NAT | CT_STATUS.DST_NAT | CT_STATUS.CONFIRMED;

export interface ParsedEntry extends CtEntrySnapshot {
  /** The line as conntrack printed it. */
  readonly line: string;
  /** `use=` reference count (not compared; the kernel's bookkeeping). */
  readonly use?: number;
}

const TUPLE_KEYS = new Set(['src', 'dst', 'sport', 'dport', 'type', 'code', 'id']);

/** Parses `conntrack -L -o extended` output (one entry per line; the stderr summary is not part of it). */
export function parseConntrackList(text: string): ParsedEntry[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('conntrack v'))
    .map(parseConntrackLine);
}

export function parseConntrackLine(line: string): ParsedEntry {
  const words = line.split(/\s+/);
  const bad = (why: string): never => {
    throw new Error(`conntrack line not understood (${why}): ${line}`);
  };
  const l3 = words[0];
  if (l3 !== 'ipv4' && l3 !== 'ipv6') return bad('expected ipv4/ipv6 first: use -o extended');
  const family: Family = l3;
  const proto = Number(words[3]);
  const timeout = Number(words[4]);
  if (!Number.isInteger(proto) || !Number.isInteger(timeout)) bad('protocol number and timeout');
  let i = 5;
  let tcpState: string | undefined;
  if (!words[i].includes('=')) tcpState = words[i++];
  const tuples: Record<string, string>[] = [];
  let current: Record<string, string> | undefined;
  let status = CT_STATUS.CONFIRMED | CT_STATUS.SEEN_REPLY;
  let mark = 0;
  let zone = 0;
  let helper: string | undefined;
  let use: number | undefined;
  for (; i < words.length; i++) {
    const w = words[i];
    if (w === '[UNREPLIED]') status &= ~CT_STATUS.SEEN_REPLY;
    else if (w === '[ASSURED]') status |= CT_STATUS.ASSURED;
    else if (w === '[OFFLOAD]' || w === '[HW_OFFLOAD]') bad('offloaded flows are not modelled');
    else {
      const eq = w.indexOf('=');
      if (eq < 0) bad(`token ${w}`);
      const key = w.slice(0, eq);
      const value = w.slice(eq + 1);
      if (TUPLE_KEYS.has(key)) {
        if (key === 'src') {
          current = {};
          tuples.push(current);
        }
        if (!current) bad('tuple field before src=');
        current![key] = value;
      } else if (key === 'mark') mark = Number(value);
      else if (key === 'zone') zone = Number(value);
      else if (key === 'helper') helper = value;
      else if (key === 'use') use = Number(value);
      else if (key === 'secctx' || key === 'packets' || key === 'bytes' || key === 'delta-time' || key === 'timestamp') {
        // accounting/security fields: not part of the model
      } else bad(`unknown field ${key}`);
    }
  }
  if (tuples.length !== 2) bad(`expected two tuples, found ${tuples.length}`);
  const tuple = (t: Record<string, string>): CtTuple => {
    const src = parseAddress(t.src);
    const dst = parseAddress(t.dst);
    if (!src || !dst) bad('addresses');
    return {
      src: src!.value,
      dst: dst!.value,
      proto,
      ...(t.sport !== undefined ? { sport: Number(t.sport) } : {}),
      ...(t.dport !== undefined ? { dport: Number(t.dport) } : {}),
      ...(t.type !== undefined ? { icmpType: Number(t.type) } : {}),
      ...(t.code !== undefined ? { icmpCode: Number(t.code) } : {}),
      ...(t.id !== undefined ? { icmpId: Number(t.id) } : {}),
    };
  };
  const original = tuple(tuples[0]);
  const reply = tuple(tuples[1]);
  status |= natBits(original, reply);
  return {
    family,
    original,
    reply,
    ...(tcpState !== undefined ? { tcpState } : {}),
    timeout,
    status,
    mark,
    zone,
    ...(helper !== undefined ? { helper } : {}),
    line,
    ...(use !== undefined ? { use } : {}),
  };
}

/** SRC_NAT/DST_NAT as a listing shows them: the reply tuple is not the original turned around. */
export function natBits(o: CtTuple, r: CtTuple): number {
  let bits = 0;
  if (r.dst !== o.src || r.dport !== o.sport || (o.icmpId !== undefined && r.icmpId !== o.icmpId)) bits |= CT_STATUS.SRC_NAT;
  if (r.src !== o.dst || r.sport !== o.dport) bits |= CT_STATUS.DST_NAT;
  return bits;
}

/** Every conntrack entry of the namespace (both families) and nf_conntrack_count. */
export function readConntrack(ns: Netns): { entries: ParsedEntry[]; count: number } {
  const entries: ParsedEntry[] = [];
  for (const f of ['ipv4', 'ipv6'] as const) {
    const r = ns.exec('conntrack', ['-L', '-f', f, '-o', 'extended']);
    if (r.status !== 0) throw new Error(`conntrack -L -f ${f} failed: ${r.stderr}`);
    entries.push(...parseConntrackList(r.stdout));
  }
  const count = Number(ns.run('cat', ['/proc/sys/net/netfilter/nf_conntrack_count']).trim());
  return { entries, count };
}

/** Pending expectations (`conntrack -L expect`), one line each, as printed. */
export function readExpectations(ns: Netns): string[] {
  const out: string[] = [];
  for (const f of ['ipv4', 'ipv6'] as const) {
    const r = ns.exec('conntrack', ['-L', 'expect', '-f', f]);
    if (r.status !== 0) throw new Error(`conntrack -L expect failed: ${r.stderr}`);
    out.push(...r.stdout.split('\n').filter((l) => l.trim() !== ''));
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// iptables-save -c

export interface SavedRule {
  readonly packets: number;
  readonly bytes: number;
  /** The rule without its counters: `-A CHAIN …`. */
  readonly text: string;
  /** Value of `-m comment --comment`, if any (the emitter's `file:line` tag). */
  readonly comment?: string;
}

export interface SavedChain {
  readonly family: Family;
  readonly table: TableName;
  readonly chain: string;
  readonly policy?: { readonly verdict: string; readonly packets: number; readonly bytes: number };
  readonly rules: SavedRule[];
}

/** Parses `iptables-save -c` (legacy or nft flavour) into chains with their counters. */
export function parseSave(text: string, family: Family): SavedChain[] {
  const out: SavedChain[] = [];
  let table: TableName | undefined;
  const byName = new Map<string, SavedChain>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line === 'COMMIT') continue;
    if (line.startsWith('*')) {
      const name = line.slice(1);
      if (!isTableName(name)) throw new Error(`iptables-save: unknown table ${name}`);
      table = name;
      byName.clear();
      continue;
    }
    if (!table) throw new Error(`iptables-save: line outside a table: ${line}`);
    const chainLine = /^:(\S+) (\S+) \[(\d+):(\d+)\]$/.exec(line);
    if (chainLine) {
      const [, chain, verdict, p, b] = chainLine;
      const c: SavedChain = {
        family,
        table,
        chain,
        ...(verdict !== '-' ? { policy: { verdict, packets: Number(p), bytes: Number(b) } } : {}),
        rules: [],
      };
      out.push(c);
      byName.set(chain, c);
      continue;
    }
    // A rule with neither match nor target (a bare counter) is just `-A CHAIN`.
    const ruleLine = /^\[(\d+):(\d+)\] (-A (\S+)(?: .*)?)$/.exec(line);
    if (!ruleLine) throw new Error(`iptables-save: line not understood: ${line}`);
    const [, p, b, rule, chain] = ruleLine;
    const c = byName.get(chain);
    if (!c) throw new Error(`iptables-save: rule for undeclared chain ${chain}`);
    const comment = /-m comment --comment ("(?:[^"\\]|\\.)*"|\S+)/.exec(rule)?.[1];
    c.rules.push({
      packets: Number(p),
      bytes: Number(b),
      text: rule,
      ...(comment !== undefined ? { comment: comment.startsWith('"') ? comment.slice(1, -1).replace(/\\(.)/g, '$1') : comment } : {}),
    });
  }
  return out;
}

/** The counters of saved chains in the simulator's shape (one entry per iptables rule). */
export function toChainCounters(chains: readonly SavedChain[]): ChainCounters[] {
  return chains.map((c) => ({
    family: c.family,
    table: c.table,
    chain: c.chain,
    ...(c.policy ? { policy: [c.policy.packets, c.policy.bytes] as const } : {}),
    rules: c.rules.map((r) => [r.packets, r.bytes] as const),
  }));
}
