import type { NatAction } from '../ir/effect.js';
import { type Family, formatAddress, parseAddress } from '../util/ip.js';

/**
 * The `ADDR[-ADDR][:PORT[-PORT]]` mapping that SNAT, DNAT, MASQUERADE and REDIRECT share.
 * IPv6 addresses with a port are bracketed: `[fd00::1]:80`, `[fd00::1]-[fd00::9]:80-90`.
 * iptables writes port ranges with '-' here (unlike --dport, which uses ':').
 */
export interface NatRange {
  readonly family?: Family;
  readonly addr?: readonly [first: bigint, last: bigint];
  readonly ports?: readonly [lo: number, hi: number];
}

/**
 * Parses a NAT mapping as iptables writes it: `ADDR`, `ADDR-ADDR`, `ADDR:PORT[-PORT]`,
 * `:PORT[-PORT]`; IPv6 with a port in brackets, the range inside them: `[fd00::1-fd00::9]:80-90`
 * (iptables 1.8 refuses `[a]-[b]`). Returns a message on failure.
 */
export function parseNatRange(text: string, opts: { portsOnly?: boolean } = {}): NatRange | string {
  let addrPart = '';
  let portPart: string | undefined;
  if (opts.portsOnly || /^:\d/.test(text)) {
    // `:80` is a port mapping; `::1` is an IPv6 address.
    portPart = text.startsWith(':') ? text.slice(1) : text;
  } else if (text.startsWith('[')) {
    const m = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
    if (!m) return 'write an IPv6 mapping as ADDR, [ADDR]:PORT or [FIRST-LAST]:LOW-HIGH';
    addrPart = m[1];
    portPart = m[2];
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [addrPart, portPart] = text.split(':');
  } else {
    addrPart = text; // IPv4 without port, or a bare IPv6 address/range
  }
  let range: { family?: Family; addr?: readonly [bigint, bigint] } = {};
  if (addrPart !== '') {
    const dash = addrPart.indexOf('-');
    const first = parseAddress(dash < 0 ? addrPart : addrPart.slice(0, dash));
    const last = dash < 0 ? first : parseAddress(addrPart.slice(dash + 1));
    if (!first || !last) return `\`${addrPart}\` is not an address or address range`;
    if (first.family !== last.family || first.value > last.value) return 'an address range needs FIRST ≤ LAST of one family';
    range = { family: first.family, addr: [first.value, last.value] };
  }
  if (portPart === undefined) return range;
  const pm = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(portPart);
  if (!pm) return `\`${portPart}\` is not a port or port range (LOW-HIGH)`;
  const lo = Number(pm[1]);
  const hi = pm[2] === undefined ? lo : Number(pm[2]);
  if (hi > 65535 || lo > hi) return 'ports are 0-65535, written LOW-HIGH';
  return { ...range, ports: [lo, hi] };
}

/** Prints a mapping the way iptables-save does (IPv6 in brackets only when a port follows). */
export function formatNatRange(r: NatRange): string {
  let s = '';
  if (r.addr && r.family) {
    const [a, b] = r.addr;
    s = formatAddress(r.family, a) + (b !== a ? `-${formatAddress(r.family, b)}` : '');
    if (r.family === 'ipv6' && r.ports) s = `[${s}]`;
  }
  if (r.ports) s += `:${r.ports[0] === r.ports[1] ? r.ports[0] : `${r.ports[0]}-${r.ports[1]}`}`;
  return s;
}

/** Protocols iptables accepts a NAT port mapping with (libxt_NAT: "Need TCP, UDP, SCTP or DCCP"; ICMP maps the id). */
export const NAT_PORT_PROTOS: readonly number[] = [6, 17, 132, 33, 1, 58];

export function natAction(
  type: NatAction['type'],
  r: NatRange,
  flags: { random?: boolean; fullyRandom?: boolean; persistent?: boolean },
): NatAction {
  return {
    type,
    ...(r.addr ? { addr: r.addr } : {}),
    ...(r.ports ? { ports: [BigInt(r.ports[0]), BigInt(r.ports[1])] as const } : {}),
    random: flags.random ?? false,
    fullyRandom: flags.fullyRandom ?? false,
    persistent: flags.persistent ?? false,
  };
}
