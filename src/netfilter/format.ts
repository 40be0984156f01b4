import { PROTO } from '../ir/fields.js';
import { type Family, formatAddress } from '../util/ip.js';
import type { ChainCounters, CtEntrySnapshot, CtExpectationSnapshot, CtTuple } from './api.js';
import { IPS } from './conntrack/status.js';

/**
 * The simulator's state in the formats people already read: `conntrack -L`,
 * /proc/net/nf_conntrack (ct_seq_show), nf_conntrack_count/max and `iptables -L -v -x -n`.
 */

const L4_NAMES: Readonly<Record<number, string>> = {
  [PROTO.tcp]: 'tcp',
  [PROTO.udp]: 'udp',
  [PROTO.icmp]: 'icmp',
  [PROTO.icmpv6]: 'icmpv6',
  [PROTO.udplite]: 'udplite',
  [PROTO.sctp]: 'sctp',
  [PROTO.dccp]: 'dccp',
  [PROTO.gre]: 'gre',
};

function l4Name(proto: number): string {
  return L4_NAMES[proto] ?? 'unknown';
}

function tupleText(family: Family, t: CtTuple): string {
  const parts = [`src=${formatAddress(family, t.src)}`, `dst=${formatAddress(family, t.dst)}`];
  if (t.icmpType !== undefined) parts.push(`type=${t.icmpType}`, `code=${t.icmpCode ?? 0}`, `id=${t.icmpId ?? 0}`);
  else if (t.sport !== undefined) parts.push(`sport=${t.sport}`, `dport=${t.dport ?? 0}`);
  else if (t.proto === PROTO.gre) parts.push('srckey=0x0', 'dstkey=0x0');
  return parts.join(' ');
}

/** The part both formats share: state, tuples, flags. */
function body(e: CtEntrySnapshot): string[] {
  const out = [String(e.timeout)];
  if (e.tcpState) out.push(e.tcpState);
  out.push(tupleText(e.family, e.original));
  if (!(e.status & IPS.SEEN_REPLY)) out.push('[UNREPLIED]');
  out.push(tupleText(e.family, e.reply));
  if (e.status & IPS.ASSURED) out.push('[ASSURED]');
  out.push(`mark=${e.mark}`);
  return out;
}

/** One `conntrack -L` line (conntrack-tools' default output). */
export function conntrackLine(e: CtEntrySnapshot): string {
  const head = `${l4Name(e.original.proto).padEnd(8)} ${e.original.proto}`;
  const extra: string[] = [];
  if (e.zone !== 0) extra.push(`zone=${e.zone}`);
  if (e.helper) extra.push(`helper=${e.helper}`);
  return [head, ...body(e), ...extra, 'use=1'].join(' ');
}

/** One /proc/net/nf_conntrack line. */
export function procLine(e: CtEntrySnapshot): string {
  const l3 = e.family === 'ipv4' ? 'ipv4     2' : 'ipv6     10';
  return [l3, `${l4Name(e.original.proto).padEnd(8)} ${e.original.proto}`, ...body(e), `zone=${e.zone}`, 'use=2'].join(' ');
}

/** `conntrack -L` output; the summary line goes to stderr in the real tool, returned apart here. */
export function formatConntrackList(entries: readonly CtEntrySnapshot[]): { lines: string[]; summary: string } {
  return {
    lines: entries.map(conntrackLine),
    summary: `conntrack v1.4.8 (conntrack-tools): ${entries.length} flow entries have been shown.`,
  };
}

export function formatProc(entries: readonly CtEntrySnapshot[]): string[] {
  return entries.map(procLine);
}

export function formatCount(count: number, max: number): string[] {
  return [`net.netfilter.nf_conntrack_count = ${count}`, `net.netfilter.nf_conntrack_max = ${max}`];
}

export interface CounterListing {
  /** The rule's text (the CLI passes the iptables-save form; tests the DSL form). */
  describe(c: ChainCounters, rule: number): string;
  /** How many rules jump to a user chain. */
  references(c: ChainCounters): number;
  /** A built-in chain's policy word. */
  policyOf(c: ChainCounters): string;
}

/**
 * `iptables -L -v -x -n` layout per table: chain headers with policy counters (built-ins) or
 * reference counts (user chains), then one line per rule with exact packet and byte counts.
 */
export function formatCounters(counters: readonly ChainCounters[], how: CounterListing): string[] {
  const out: string[] = [];
  let current = '';
  for (const c of counters) {
    const key = `${c.family} ${c.table}`;
    if (out.length > 0) out.push('');
    if (key !== current) {
      out.push(`# ${c.family === 'ipv4' ? 'iptables' : 'ip6tables'} -t ${c.table} -L -v -x -n`);
      current = key;
    }
    out.push(
      c.policy
        ? `Chain ${c.chain} (policy ${how.policyOf(c)} ${c.policy[0]} packets, ${c.policy[1]} bytes)`
        : `Chain ${c.chain} (${how.references(c)} references)`,
    );
    out.push(`${'pkts'.padStart(8)} ${'bytes'.padStart(10)} rule`);
    c.rules.forEach(([p, b], i) => {
      out.push(`${String(p).padStart(8)} ${String(b).padStart(10)} ${how.describe(c, i)}`);
    });
  }
  return out;
}

const FLAG_ORDER: readonly [number, string][] = [
  [0x02, 'S'],
  [0x01, 'F'],
  [0x04, 'R'],
  [0x08, 'P'],
  [0x10, 'A'],
  [0x20, 'U'],
  [0x40, 'E'],
  [0x80, 'C'],
];

function endpoint(family: Family, a: bigint, port: number | undefined): string {
  const text = formatAddress(family, a);
  if (port === undefined) return text;
  return family === 'ipv6' ? `[${text}]:${port}` : `${text}:${port}`;
}

/** One line for a packet, tcpdump-like: `tcp 10.0.0.5:1000 → 192.0.2.80:80 [S] seq=1000`. */
export function describePacket(p: import('./packet.js').Packet): string {
  const name = l4Name(p.proto);
  const head = `${name === 'unknown' ? `proto ${p.proto}` : name} ${endpoint(p.family, p.src, p.sport)} → ${endpoint(p.family, p.dst, p.dport)}`;
  const parts = [head];
  if (p.tcp) {
    const flags = FLAG_ORDER.filter(([bit]) => p.tcp!.flags & bit)
      .map(([, l]) => l)
      .join('');
    parts.push(`[${flags || '.'}]`, `seq=${p.tcp.seq}`);
    if (p.tcp.flags & 0x10) parts.push(`ack=${p.tcp.ack}`);
  }
  if (p.icmp) {
    parts.push(`type=${p.icmp.type} code=${p.icmp.code}`);
    if (p.icmp.id !== undefined) parts.push(`id=${p.icmp.id}`);
    if (p.icmp.inner) parts.push(`(quoting ${describePacket(p.icmp.inner)})`);
  }
  if (p.payload.length > 0) parts.push(`len=${p.payload.length}`);
  parts.push(`ttl=${p.ttl}`);
  return parts.join(' ');
}

/**
 * One `conntrack -L expect` line: timeout, the expected tuple with its mask (the source port
 * is a wildcard), the master's original tuple, class and helper.
 */
export function expectationLine(e: CtExpectationSnapshot): string {
  const f = e.family;
  const all = f === 'ipv4' ? '255.255.255.255' : 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
  const t = e.tuple;
  const m = e.master;
  return [
    String(e.timeout),
    `proto=${t.proto}`,
    `src=${formatAddress(f, t.src)}`,
    `dst=${formatAddress(f, t.dst)}`,
    `sport=0 dport=${t.dport ?? 0}`,
    `mask-src=${all}`,
    `mask-dst=${all}`,
    'sport=0 dport=65535',
    `master-src=${formatAddress(f, m.src)}`,
    `master-dst=${formatAddress(f, m.dst)}`,
    `sport=${m.sport ?? 0} dport=${m.dport ?? 0}`,
    'class=0',
    `helper=${e.helper}`,
  ].join(' ');
}
