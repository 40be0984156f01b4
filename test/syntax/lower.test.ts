import { describe, expect, it } from 'vitest';
import type { Chain, Policy, Rule } from '../../src/ir/policy.js';
import { printMatch, printTarget } from '../../src/kinds/index.js';
import { parse, policyOf, withoutSpans } from './support.js';

/**
 * Lowering .nfp to the IR, checked on hand-written policies: every expected value below was
 * worked out by hand from the DSL text (family split, chain order, interface resolution…).
 */
const EXAMPLE = `
host gw {
  interface lan dev eth0 address 192.168.18.1/24, fd00:18::1/64
  interface wan dev eth1 address 192.168.20.1/24
  route default via 192.168.20.254 dev wan
  route 10.0.0.0/8 via 192.168.18.254 metric 10
  sysctl nf_conntrack_tcp_loose 0
}
define inside = { 192.168.18.0/24, 10.0.0.0/8, !10.9.0.0/16 }
define web = { 80, 443 }
service dns = proto { udp, tcp } dport 53
table filter {
  chain INPUT policy drop {
    ct state established,related accept
    iif lo accept
    tcp dport @web saddr @inside accept comment "web from inside"
    service dns accept
    ip6 icmpv6 type echo-request accept
    jump logdrop
  }
  chain logdrop { log prefix "drop: " level warn; drop }
}
table ip nat { chain postrouting { oif wan saddr @inside tcp snat to 192.168.20.1:450 } }
expect reachable tcp from 192.168.18.2 to 202.10.10.1 dport 30 iif lan via forward with reply
expect no shadowed rules
`;

function text(r: Rule): string {
  return [...r.matches.map(printMatch), printTarget(r.target)].join(' ');
}

function chain(p: Policy, family: 'ipv4' | 'ipv6', table: string, name: string): Chain {
  const c = p.rulesets[family].tables.find((t) => t.name === table)?.chains.find((x) => x.name === name);
  if (!c) throw new Error(`no ${family} ${table} ${name}`);
  return c;
}

describe('lowering the example policy', () => {
  const p = policyOf(EXAMPLE);

  it('builds the host model, resolving logical names to devices', () => {
    expect(withoutSpans(p.host)).toEqual({
      name: 'gw',
      interfaces: [
        {
          name: 'lan',
          device: 'eth0',
          addresses: [
            { family: 'ipv4', addr: 0xc0a81201n, prefixLen: 24 },
            { family: 'ipv6', addr: 0xfd000018000000000000000000000001n, prefixLen: 64 },
          ],
        },
        { name: 'wan', device: 'eth1', addresses: [{ family: 'ipv4', addr: 0xc0a81401n, prefixLen: 24 }] },
      ],
      routes: [
        { family: 'ipv4', dest: { family: 'ipv4', addr: 0n, len: 0 }, via: 0xc0a814fen, device: 'eth1' },
        // No `dev`: the gateway 192.168.18.254 is in lan's subnet.
        { family: 'ipv4', dest: { family: 'ipv4', addr: 0x0a000000n, len: 8 }, via: 0xc0a812fen, device: 'eth0', metric: 10 },
      ],
      sysctls: { nf_conntrack_tcp_loose: '0' },
    });
  });

  it('splits the inet table into both families, each rule where it can match', () => {
    expect(chain(p, 'ipv4', 'filter', 'INPUT').rules.map(text)).toEqual([
      'ct state related,established accept', // the kind prints states in iptables' order
      'iif lo accept',
      'tcp dport @web saddr @inside accept',
      'proto { udp, tcp } dport 53 accept',
      'jump logdrop',
    ]);
    // @inside has no IPv6 item, so the web rule is IPv4 only; the ip6 rule is IPv6 only.
    expect(chain(p, 'ipv6', 'filter', 'INPUT').rules.map(text)).toEqual([
      'ct state related,established accept', // the kind prints states in iptables' order
      'iif lo accept',
      'proto { udp, tcp } dport 53 accept',
      'icmpv6 type echo-request accept',
      'jump logdrop',
    ]);
    expect(chain(p, 'ipv4', 'filter', 'INPUT').rules[2].comment).toBe('web from inside');
  });

  it('keeps every built-in chain of a declared table, in iptables-save order, then user chains', () => {
    for (const f of ['ipv4', 'ipv6'] as const) {
      const filter = p.rulesets[f].tables.find((t) => t.name === 'filter')!;
      expect(filter.chains.map((c) => [c.name, c.hook, c.policy])).toEqual([
        ['INPUT', 'INPUT', 'DROP'],
        ['FORWARD', 'FORWARD', 'ACCEPT'],
        ['OUTPUT', 'OUTPUT', 'ACCEPT'],
        ['logdrop', undefined, undefined],
      ]);
    }
    expect(p.rulesets.ipv4.tables.map((t) => t.name)).toEqual(['nat', 'filter']);
    expect(p.rulesets.ipv6.tables.map((t) => t.name)).toEqual(['filter']);
    expect(chain(p, 'ipv4', 'nat', 'POSTROUTING').rules.map(text)).toEqual(['oif wan saddr @inside tcp snat to 192.168.20.1:450']);
  });

  it('resolves interface names to devices and keeps the written name', () => {
    const oif = chain(p, 'ipv4', 'nat', 'POSTROUTING').rules[0].matches[0];
    expect(withoutSpans(oif)).toEqual({ kind: 'iface', dir: 'out', negated: false, device: 'eth1', wildcard: false, alias: 'wan' });
  });

  it('keeps define values with their name and the excluded items', () => {
    const saddr = chain(p, 'ipv4', 'filter', 'INPUT').rules[2].matches.find((m) => m.kind === 'addr');
    expect(withoutSpans(saddr)).toEqual({
      kind: 'addr',
      dir: 'src',
      negated: false,
      value: {
        items: [
          { type: 'prefix', family: 'ipv4', addr: 0xc0a81200n, len: 24 },
          { type: 'prefix', family: 'ipv4', addr: 0x0a000000n, len: 8 },
        ],
        excluded: [{ type: 'prefix', family: 'ipv4', addr: 0x0a090000n, len: 16 }],
        ref: 'inside',
      },
    });
  });

  it('parses expectations, giving a flow the one family its addresses allow', () => {
    const [reach, none] = p.expectations;
    expect(reach.kind).toBe('reachable');
    if (reach.kind !== 'reachable') return;
    expect(reach.flow.family).toBe('ipv4');
    expect(reach.flow.matches.map(printMatch)).toEqual(['tcp', 'saddr 192.168.18.2', 'daddr 202.10.10.1', 'dport 30', 'iif lan']);
    expect(reach.via).toBe('FORWARD');
    expect(reach.withReply).toBe(true);
    expect(withoutSpans(none)).toEqual({ kind: 'no-findings', finding: 'shadowed' });
  });

  it('records the files read', () => {
    expect(p.sources).toEqual(['test.nfp']);
    expect(p.origin).toBe('nfp');
  });
});

describe('lowering details', () => {
  it('treats built-in chain names case-insensitively and user chains case-sensitively', () => {
    const p = policyOf('table filter { chain Input { jump Web } chain Web { accept } chain web { drop } }');
    expect(p.rulesets.ipv4.tables[0].chains.map((c) => c.name)).toEqual(['INPUT', 'FORWARD', 'OUTPUT', 'Web', 'web']);
  });

  it('restricts a table to one family with `table ip`/`table ip6`', () => {
    const p = policyOf('table ip6 raw { chain prerouting { udp dport 53 notrack } }');
    expect(p.rulesets.ipv4.tables).toEqual([]);
    expect(p.rulesets.ipv6.tables.map((t) => t.name)).toEqual(['raw']);
  });

  it('drops a clause that constrains nothing in one family (negated address of the other family)', () => {
    // `saddr != 10.0.0.0/8` holds for every IPv6 packet: in the IPv6 rule only `tcp` remains.
    const p = policyOf('table filter { chain input { tcp saddr != 10.0.0.0/8 accept } }');
    expect(p.rulesets.ipv6.tables[0].chains[0].rules.map(text)).toEqual(['tcp accept']);
    expect(p.rulesets.ipv4.tables[0].chains[0].rules.map(text)).toEqual(['tcp saddr != 10.0.0.0/8 accept']);
  });

  it('splits a mixed address set by family', () => {
    const p = policyOf('table filter { chain input { saddr { 10.0.0.1, fd00::1 } accept } }');
    expect(p.rulesets.ipv4.tables[0].chains[0].rules.map(text)).toEqual(['saddr 10.0.0.1 accept']);
    expect(p.rulesets.ipv6.tables[0].chains[0].rules.map(text)).toEqual(['saddr fd00::1 accept']);
  });

  it('takes `;` and line breaks as separators, and line breaks inside sets after commas', () => {
    const p = policyOf('table filter {\n  chain input {\n    tcp dport {\n      22,\n      80\n    } accept; drop\n  }\n}');
    expect(p.rulesets.ipv4.tables[0].chains[0].rules.map(text)).toEqual(['tcp dport { 22, 80 } accept', 'drop']);
  });

  it('resolves a service in an expect flow and in rules', () => {
    const p = policyOf('service ssh = tcp dport 22\ntable filter { chain input { service ssh accept } }\nexpect unreachable service ssh from 10.0.0.1');
    expect(p.rulesets.ipv4.tables[0].chains[0].rules.map(text)).toEqual(['tcp dport 22 accept']);
    const e = p.expectations[0];
    expect(e.kind === 'unreachable' && e.flow.matches.map(printMatch)).toEqual(['tcp', 'dport 22', 'saddr 10.0.0.1']);
  });

  it('reads CRLF line ends, tabs and a byte-order mark, with the right line numbers', () => {
    const r = parse('\uFEFFtable filter {\r\n\tchain input {\r\n\t\ttcp dport 99999 accept\r\n\t}\r\n}\r\n');
    expect(r.diagnostics.map((d) => [d.code, d.span.start.line, d.span.start.col])).toEqual([['E-bad-port', 3, 13]]);
    expect(policyOf('table filter {\r\n  chain input { accept }\r\n}\r\n').rulesets.ipv4.tables[0].chains[0].rules).toHaveLength(1);
  });

  it('reads escapes in strings', () => {
    const p = policyOf('table filter { chain input { accept comment "a \\"quoted\\" \\\\ word" } }');
    expect(p.rulesets.ipv4.tables[0].chains[0].rules[0].comment).toBe('a "quoted" \\ word');
  });

  it('reports a policy with only warnings, and gives the policy', () => {
    const r = policyOf('define unused = { 10.0.0.1 }\ntable filter { chain input { accept } }');
    expect(r.rulesets.ipv4.tables[0].chains[0].rules).toHaveLength(1);
  });
});
