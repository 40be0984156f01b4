import type { Hook, TableName } from '../../../src/ir/netfilter.js';
import type { Family } from '../../../src/util/ip.js';

/**
 * Rules the kernel (or iptables-restore) refuses, each with what nfproof's kinds say about it
 * (a target's `tables`, a kind's `hooks()`, or a `validate()` code). test/kinds/placement.test.ts
 * checks the kinds flag each one; test/kernel/kinds.test.ts checks the kernel really refuses
 * it — so the restrictions the kinds declare are the kernel's, not guesses.
 */
export interface RefusedCase {
  readonly dsl: string;
  readonly table: TableName;
  readonly chain: Hook;
  readonly family: Family;
  /** What the kinds report: `table:KIND`, `hook:KIND` or a validate code. */
  readonly flagged: string;
}

const c = (dsl: string, table: TableName, chain: Hook, flagged: string, family: Family = 'ipv4'): RefusedCase => ({ dsl, table, chain, family, flagged });

export const REFUSED_CASES: readonly RefusedCase[] = [
  c('reject', 'mangle', 'INPUT', 'table:reject'),
  c('drop', 'nat', 'PREROUTING', 'E-drop-in-nat'),
  c('reject with tcp-reset', 'filter', 'INPUT', 'E-reject-tcp-reset'),
  c('dnat to 10.0.0.1', 'nat', 'POSTROUTING', 'hook:dnat'),
  c('dnat to 10.0.0.1', 'nat', 'INPUT', 'hook:dnat'),
  c('snat to 10.0.0.1', 'nat', 'PREROUTING', 'hook:snat'),
  c('snat to 10.0.0.1', 'nat', 'OUTPUT', 'hook:snat'),
  c('masquerade', 'nat', 'PREROUTING', 'hook:masquerade'),
  c('redirect', 'nat', 'POSTROUTING', 'hook:redirect'),
  c('dnat to 10.0.0.1:80', 'nat', 'PREROUTING', 'E-nat-ports-protocol'),
  c('masquerade to :1024', 'nat', 'POSTROUTING', 'E-nat-ports-protocol'),
  c('ct notrack', 'filter', 'INPUT', 'table:ct'),
  c('notrack', 'mangle', 'PREROUTING', 'table:notrack'),
  c('ct helper set ftp', 'raw', 'PREROUTING', 'E-ct-helper-protocol'),
  c('udp checksum fill', 'filter', 'INPUT', 'table:checksum'),
  c('dscp set ef', 'filter', 'INPUT', 'table:dscp-set'),
  c('ttl set 64', 'filter', 'INPUT', 'table:ttl-set'),
  c('classify set 1:1', 'mangle', 'INPUT', 'hook:classify'),
  c('tcp tproxy to :80', 'mangle', 'INPUT', 'hook:tproxy'),
  c('tproxy to :80', 'mangle', 'PREROUTING', 'E-tproxy-protocol'),
  c('tcp tcpmss set 1400', 'mangle', 'FORWARD', 'E-tcpmss-syn'),
  c('tcp flags syn / syn,rst tcpmss clamp-to-pmtu', 'filter', 'INPUT', 'hook:tcpmss'),
  c('ether saddr 00:11:22:33:44:55', 'filter', 'OUTPUT', 'hook:mac'),
  c('owner uid 0', 'filter', 'INPUT', 'hook:owner'),
  c('rpfilter', 'filter', 'INPUT', 'hook:rpfilter'),
  c('ipsec out', 'filter', 'INPUT', 'hook:ipsec'),
  c('daddr type local on oif', 'filter', 'INPUT', 'hook:addrtype'),
  c('oif eth0', 'filter', 'INPUT', 'hook:iface'),
  c('iif eth0', 'filter', 'OUTPUT', 'hook:iface'),
  c('dport 22', 'filter', 'INPUT', 'E-port-without-protocol'),
  c('flags syn / syn,ack', 'filter', 'INPUT', 'E-needs-tcp'),
  c('reject', 'mangle', 'INPUT', 'table:reject', 'ipv6'),
  c('tcp dnat to [fd00::1]:80', 'nat', 'POSTROUTING', 'hook:dnat', 'ipv6'),
];
