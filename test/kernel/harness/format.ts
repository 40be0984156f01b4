import { PROTO, TCP_FLAG } from '../../../src/ir/fields.js';
import type { CtEntrySnapshot, CtTuple } from '../../../src/netfilter/api.js';
import type { Packet } from '../../../src/netfilter/packet.js';
import { formatAddress } from '../../../src/util/ip.js';

/** One-line packet descriptions for diffs, in the spirit of tcpdump. */
const PROTO_NAMES: Record<number, string> = { [PROTO.tcp]: 'tcp', [PROTO.udp]: 'udp', [PROTO.icmp]: 'icmp', [PROTO.icmpv6]: 'icmpv6', [PROTO.udplite]: 'udplite' };

export function flagLetters(flags: number): string {
  const order: [number, string][] = [
    [TCP_FLAG.SYN, 'S'],
    [TCP_FLAG.FIN, 'F'],
    [TCP_FLAG.RST, 'R'],
    [TCP_FLAG.PSH, 'P'],
    [TCP_FLAG.ACK, 'A'],
    [TCP_FLAG.URG, 'U'],
    [TCP_FLAG.ECE, 'E'],
    [TCP_FLAG.CWR, 'C'],
  ];
  return order.filter(([b]) => flags & b).map(([, l]) => l).join('') || '.';
}

function hostPort(p: Packet, which: 'src' | 'dst'): string {
  const a = formatAddress(p.family, which === 'src' ? p.src : p.dst);
  const port = which === 'src' ? p.sport : p.dport;
  if (port === undefined) return a;
  return p.family === 'ipv6' ? `[${a}]:${port}` : `${a}:${port}`;
}

export function formatPacket(p: Packet): string {
  const name = PROTO_NAMES[p.proto] ?? `proto ${p.proto}`;
  const parts = [`${name} ${hostPort(p, 'src')} > ${hostPort(p, 'dst')}`];
  if (p.tcp) parts.push(`[${flagLetters(p.tcp.flags)}] seq ${p.tcp.seq} ack ${p.tcp.ack} win ${p.tcp.window}`);
  if (p.icmp) {
    parts.push(`type ${p.icmp.type} code ${p.icmp.code}`);
    if (p.icmp.id !== undefined) parts.push(`id ${p.icmp.id} seq ${p.icmp.seq ?? 0}`);
    if (p.icmp.inner) parts.push(`quoting (${formatPacket(p.icmp.inner)})`);
  }
  parts.push(`ttl ${p.ttl}`);
  if (p.payload.length) parts.push(`${p.payload.length} bytes`);
  if (p.fragment) parts.push('fragment');
  return parts.join(' ');
}

export function formatTuple(t: CtTuple, family: CtEntrySnapshot['family']): string {
  const f = (v: bigint) => formatAddress(family, v);
  const ports = t.sport !== undefined ? ` sport=${t.sport} dport=${t.dport}` : '';
  const icmp = t.icmpType !== undefined ? ` type=${t.icmpType} code=${t.icmpCode} id=${t.icmpId}` : '';
  return `src=${f(t.src)} dst=${f(t.dst)}${ports}${icmp}`;
}

/** An entry roughly as `conntrack -L` prints it (status bits in brackets by name). */
export function formatEntry(e: CtEntrySnapshot, statusNames: (s: number) => string[]): string {
  return [
    PROTO_NAMES[e.original.proto] ?? String(e.original.proto),
    String(e.timeout),
    e.tcpState ?? '',
    formatTuple(e.original, e.family),
    formatTuple(e.reply, e.family),
    statusNames(e.status).map((s) => `[${s}]`).join(''),
    `mark=${e.mark}`,
    e.zone ? `zone=${e.zone}` : '',
    e.helper ? `helper=${e.helper}` : '',
  ]
    .filter(Boolean)
    .join(' ');
}
