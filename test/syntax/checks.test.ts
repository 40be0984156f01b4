import { describe, expect, it } from 'vitest';
import { parse } from './support.js';

/**
 * Every semantic check, one small policy each: the codes reported (errors and warnings) are
 * exactly the expected ones. What the messages say is in the golden files; here it is which
 * check fires and which does not.
 */
function diagnosticsOf(text: string): string[] {
  return parse(text).diagnostics.map((d) => `${d.severity === 'error' ? 'E' : 'W'}:${d.code}@${d.span.start.line}`);
}

const CASES: readonly (readonly [string, string, readonly string[]])[] = [
  // names
  ['undefined chain', 'table filter {\nchain input { jump nope }\n}', ['E:E-undefined-chain@2']],
  ['undefined define', 'table filter {\nchain input { saddr @nope accept }\n}', ['E:E-undefined-define@2']],
  ['undefined service', 'table filter {\nchain input { service nope accept }\n}', ['E:E-undefined-service@2']],
  ['undefined interface with a host', 'host h { interface lan dev eth0 }\ntable filter {\nchain input { iif eth1 accept; iif lan accept }\n}', ['E:E-undefined-interface@3']],
  ['any interface without a host', 'table filter {\nchain input { iif eth1 accept }\n}', []],
  ['lo needs no declaration', 'host h { interface lan dev eth0 }\ntable filter {\nchain input { iif lo accept; iif lan accept }\n}', []],
  ['a wildcard is a device prefix, not a logical name', 'host h { interface lan dev eth0 }\ntable filter {\nchain input { iif lan+ accept; iif eth+ accept }\n}', ['W:W-wildcard-no-device@3']],
  // duplicates
  ['duplicate chain', 'table filter {\nchain input { accept }\nchain INPUT { drop }\n}', ['E:E-duplicate-chain@3']],
  ['duplicate define', 'define a = { 1.2.3.4 }\ndefine a = { 1.2.3.5 }\ntable filter { chain input { saddr @a accept } }', ['E:E-duplicate-define@2']],
  ['duplicate service', 'service s = tcp\nservice s = udp\ntable filter { chain input { service s accept } }', ['E:E-duplicate-service@2']],
  ['duplicate interface', 'host h {\ninterface a dev eth0\ninterface a dev eth1\n}\ntable filter { chain input { iif a accept } }', ['E:E-duplicate-interface@3']],
  ['a device named like another interface', 'host h {\ninterface eth1 dev eth0\ninterface wan dev eth1\n}\ntable filter { chain input { iif eth1 accept } }', ['E:E-ambiguous-interface@3']],
  ['an interface named like another device', 'host h {\ninterface wan dev eth1\ninterface eth1 dev eth0\n}\ntable filter { chain input { iif eth1 accept } }', ['E:E-ambiguous-interface@3']],
  ['duplicate table', 'table filter { chain input { accept } }\ntable filter { chain output { accept } }', ['E:E-duplicate-table@2']],
  ['one table per family is no duplicate', 'table ip filter { chain input { accept } }\ntable ip6 filter { chain output { accept } }', []],
  ['duplicate host', 'host a { }\nhost b { }', ['E:E-duplicate-host@2']],
  // chain graph
  ['jump loop reached from a hook', 'table filter {\nchain input { jump a }\nchain a { jump b }\nchain b { jump a }\n}', ['E:E-jump-loop@4']],
  ['jump loop nothing enters', 'table filter {\nchain a { jump b }\nchain b { jump a }\n}', ['W:W-unreachable-chain@2', 'W:W-unreachable-chain@3', 'W:W-jump-loop@3']],
  ['unreachable user chain', 'table filter {\nchain input { accept }\nchain lonely { accept }\n}', ['W:W-unreachable-chain@3']],
  ['chain reached only from an unreachable one', 'table filter {\nchain a { jump b }\nchain b { accept }\n}', ['W:W-unreachable-chain@2', 'W:W-unreachable-chain@3']],
  ['chain reached in one family only is in use', 'table filter {\nchain input { saddr 10.0.0.0/8 jump v4 }\nchain v4 { accept }\n}', []],
  ['jump to a built-in chain', 'table filter {\nchain input { jump output }\n}', ['E:E-jump-to-builtin@2']],
  ['case of user chains matters', 'table filter {\nchain input { jump Web }\nchain web { accept }\n}', ['E:E-undefined-chain@2', 'W:W-unreachable-chain@3']],
  // tables and hooks
  ['unknown table', 'table firewall { }', ['E:E-unknown-table@1']],
  ['chain the table lacks', 'table raw { chain input { accept } }', ['E:E-chain-not-in-table@1']],
  ['SNAT outside POSTROUTING/INPUT', 'table nat {\nchain prerouting { snat to 1.2.3.4 }\n}', ['E:E-target-hook@2']],
  ['DNAT outside PREROUTING/OUTPUT', 'table nat {\nchain postrouting { dnat to 1.2.3.4 }\n}', ['E:E-target-hook@2']],
  ['NAT target outside the nat table', 'table filter {\nchain forward { masquerade }\n}', ['E:E-target-table@2']],
  ['user chain inherits the hooks of its callers', 'table nat {\nchain prerouting { jump x }\nchain postrouting { jump x }\nchain x { dnat to 1.2.3.4 }\n}', ['E:E-target-hook@4']],
  ['-o on INPUT', 'table filter {\nchain input { oif eth0 accept }\n}', ['E:E-match-hook@2']],
  // kinds' own checks
  ['port without tcp/udp', 'table filter {\nchain input { dport 22 accept }\n}', ['E:E-port-without-protocol@2']],
  ['port with a port protocol', 'table filter {\nchain input { udp dport 53 accept; proto { tcp, udp } dport 53 accept }\n}', []],
  // return and policies
  ['return in a built-in chain', 'table filter {\nchain input policy drop { return }\n}', ['W:W-return-in-builtin@2']],
  ['policy on a user chain', 'table filter {\nchain input { jump u }\nchain u policy drop { accept }\n}', ['E:E-policy-on-user-chain@3']],
  ['policy that is not accept/drop', 'table filter {\nchain input policy reject { accept }\n}', ['E:E-bad-policy@2']],
  // families
  ['IPv4 address in an IPv6-only rule', 'table filter {\nchain input { ip6 saddr 10.0.0.1 accept }\n}', ['E:E-no-family@2']],
  ['IPv4 address in an IPv6 table', 'table ip6 filter {\nchain input { daddr 10.0.0.1 accept }\n}', ['E:E-no-family@2']],
  ['addresses of both families in one rule', 'table filter {\nchain input { saddr 10.0.0.1 daddr ::1 accept }\n}', ['E:E-no-family@2']],
  ['negated address of one family in a rule of both', 'table filter {\nchain input { tcp saddr != 10.0.0.0/8 drop }\n}', ['W:W-negation-other-family@2']],
  ['negated address set of both families', 'table filter {\nchain input { tcp saddr != { 10.0.0.0/8, fd00::/8 } drop; ip tcp saddr != 10.0.0.0/8 drop }\n}', []],
  // unused definitions
  ['unused define, service and interface', 'host h {\ninterface lan dev eth0\n}\ndefine d = { 1.2.3.4 }\nservice s = tcp\ntable filter { chain input { accept } }', ['W:W-unused-interface@2', 'W:W-unused-define@4', 'W:W-unused-service@5']],
  ['a define used twice, directly and through another define, is no cycle', 'define a = { 1.2.3.4 }\ndefine b = { @a }\ndefine c = { @a, @b }\ntable filter { chain input { saddr @c accept; daddr { @a, @a } drop; tcp dport { @p, @p } accept } }\ndefine p = { 22 }', []],
  ['a define used by a used define is used', 'define a = { 1.2.3.4 }\ndefine b = { @a, 1.2.3.5 }\ntable filter { chain input { saddr @b accept } }', []],
  ['an interface used by a route only is used', 'host h {\ninterface wan dev eth1 address 10.0.0.2/24\nroute default via 10.0.0.1\n}', []],
];

describe('semantic checks', () => {
  it.each(CASES)('%s', (_what, text, expected) => {
    expect(diagnosticsOf(text)).toEqual(expected);
  });
});
