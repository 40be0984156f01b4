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

function stripBrackets(s: string): string {
  return s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
}

/** Parses a NAT mapping; returns a message on failure. */
export function parseNatRange(text: string, opts: { portsOnly?: boolean } = {}): NatRange | string {
  let addrPart = text;
  let portPart: string | undefined;
  if (opts.portsOnly) {
    addrPart = '';
    portPart = text.startsWith(':') ? text.slice(1) : text;
  } else if (text.startsWith(':')) {
    addrPart = '';
    portPart = text.slice(1);
  } else if (text.includes('[')) {
    const m = /^(\[[^\]]+\](?:-\[[^\]]+\])?)(?::(.+))?$/.exec(text);
    if (!m) return 'write an IPv6 mapping as [ADDR] or [ADDR]:PORT or [FIRST]-[LAST]:LOW-HIGH';
    addrPart = m[1];
    portPart = m[2];
  } else {
    const colons = (text.match(/:/g) ?? []).length;
    if (colons === 1) {
      [addrPart, portPart] = text.split(':');
    } else if (colons > 1) {
      addrPart = text; // bare IPv6 address, no port
    }
  }
  let range: { family?: Family; addr?: readonly [bigint, bigint] } = {};
  if (addrPart !== '') {
    const [a, b] = addrPart.includes(']-[') ? addrPart.split(']-[').map((x, i) => (i === 0 ? x + ']' : '[' + x)) : addrPart.includes('-') && !addrPart.includes(':') ? addrPart.split('-') : [addrPart];
    const first = parseAddress(stripBrackets(a));
    const last = b === undefined ? first : parseAddress(stripBrackets(b));
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

/** Prints a mapping the way iptables-save does (brackets around IPv6 only when a port follows). */
export function formatNatRange(r: NatRange): string {
  let s = '';
  if (r.addr && r.family) {
    const [a, b] = r.addr;
    const v6 = r.family === 'ipv6';
    const wrap = (x: string) => (v6 && r.ports ? `[${x}]` : x);
    s = wrap(formatAddress(r.family, a));
    if (b !== a) s += `-${wrap(formatAddress(r.family, b))}`;
  }
  if (r.ports) s += `:${r.ports[0] === r.ports[1] ? r.ports[0] : `${r.ports[0]}-${r.ports[1]}`}`;
  return s;
}

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
