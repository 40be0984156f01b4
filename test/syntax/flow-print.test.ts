import { describe, expect, it } from 'vitest';
import type { Policy } from '../../src/ir/policy.js';
import { printMatch } from '../../src/kinds/index.js';
import { loadPolicy, parseFlow, parsePolicyText, printPolicy } from '../../src/syntax/index.js';
import { SourceFiles } from '../../src/util/sources.js';
import { policyOf, withoutSpans } from './support.js';

/** parseFlow (for `nfproof query`) and the printer's choices, on hand-written examples. */
describe('parseFlow', () => {
  it('parses a flow and infers its family from the addresses', () => {
    const r = parseFlow('tcp from 10.0.0.0/8 to 192.168.1.10 dport 22', '<query>', new SourceFiles());
    expect(r.diagnostics).toEqual([]);
    expect(r.flow!.family).toBe('ipv4');
    expect(r.flow!.matches.map(printMatch)).toEqual(['tcp', 'saddr 10.0.0.0/8', 'daddr 192.168.1.10', 'dport 22']);
  });

  it('leaves the family open when the clauses fit both', () => {
    expect(parseFlow('udp dport 53', '<query>', new SourceFiles()).flow!.family).toBeUndefined();
    expect(parseFlow('ip6 udp dport 53', '<query>', new SourceFiles()).flow!.family).toBe('ipv6');
  });

  it('uses the defines, services and interfaces of a policy', () => {
    const sources = new SourceFiles();
    const loaded = parsePolicyText('host h { interface lan dev eth0 }\ndefine net = { 10.1.0.0/16 }\nservice web = tcp dport 80\ntable filter { chain input { iif lan saddr @net service web accept } }', 'p.nfp', sources);
    const r = parseFlow('service web from @net iif lan', '<query>', sources, { scope: loaded.scope, policy: loaded.policy });
    expect(r.diagnostics).toEqual([]);
    expect(r.flow!.matches.map(printMatch)).toEqual(['tcp', 'dport 80', 'saddr @net', 'iif lan']);
    expect(r.flow!.matches.find((m) => m.kind === 'iface')).toMatchObject({ device: 'eth0', alias: 'lan' });
  });

  it('reports mistakes with positions in the flow text', () => {
    const r = parseFlow('tcp dport 99999 accept', '<query>', new SourceFiles());
    expect(r.flow).toBeUndefined();
    expect(r.diagnostics.map((d) => [d.code, d.span.start.col])).toEqual([
      ['E-bad-port', 11],
      ['E-action-here', 17],
    ]);
  });
});

describe('printPolicy', () => {
  it('prints an inet table once, with ip/ip6 on the rules of one family', () => {
    const text = 'table filter {\n  chain input policy drop {\n    ct state established accept\n    ip6 icmpv6 accept\n    saddr 10.0.0.0/8 accept\n  }\n}\n';
    expect(printPolicy(policyOf(text))).toBe(
      'table filter {\n  chain input policy drop {\n    ct state established accept\n    ip6 icmpv6 accept\n    ip saddr 10.0.0.0/8 accept\n  }\n}\n',
    );
  });

  it('prints tables of different chains per family as ip and ip6 tables', () => {
    const text = 'table ip filter { chain input { jump a } chain a { accept } }\ntable ip6 filter { chain input { drop } }';
    expect(printPolicy(policyOf(text))).toBe('table ip filter {\n  chain input {\n    jump a\n  }\n  chain a {\n    accept\n  }\n}\n\ntable ip6 filter {\n  chain input {\n    drop\n  }\n}\n');
  });

  it('prints one define per value name, with the items of both families', () => {
    const p = policyOf('define nets = { 10.0.0.0/8, fd00::/8 }\ntable filter { chain input { saddr @nets accept } }');
    expect(printPolicy(p)).toBe('define nets = { 10.0.0.0/8, fd00::/8 }\n\ntable filter {\n  chain input {\n    saddr @nets accept\n  }\n}\n');
  });

  it('prints a define value inline where a use disagrees with the first one', () => {
    // Two uses named alike with different values (an importer could make such IR): the second is inlined.
    const p = policyOf('define a = { 10.0.0.1 }\ntable ip filter { chain input { saddr @a accept; daddr 10.0.0.2 accept } }');
    const rules = p.rulesets.ipv4.tables[0].chains[0].rules;
    const second = rules[1].matches[0];
    const tampered: Policy = {
      ...p,
      rulesets: {
        ...p.rulesets,
        ipv4: { ...p.rulesets.ipv4, tables: [{ ...p.rulesets.ipv4.tables[0], chains: [{ ...p.rulesets.ipv4.tables[0].chains[0], rules: [rules[0], { ...rules[1], matches: [{ ...second, value: { ...(second as { value: object }).value, ref: 'a' } } as typeof second] }] }, ...p.rulesets.ipv4.tables[0].chains.slice(1)] }] },
      },
    };
    expect(printPolicy(tampered)).toContain('    saddr @a accept\n    daddr 10.0.0.2 accept\n');
  });

  it('prints host, expectations and a comment with quotes', () => {
    const text = [
      'host gw {',
      '  interface lan dev eth0 address 10.0.0.1/24',
      '  route default via 10.0.0.254 dev lan',
      '}',
      'table filter {',
      '  chain forward {',
      '    iif lan accept comment "say \\"hi\\""',
      '  }',
      '}',
      'expect reachable tcp saddr 10.0.0.2 dport 22 iif lan via forward translated daddr 10.0.0.9 dport 2222 with reply',
      'expect no redundant rules',
      '',
    ].join('\n');
    const p = policyOf(text);
    const printed = printPolicy(p);
    expect(printed).toBe(text.replace('host gw {', 'host gw {').replace(/\n\ntable/, '\ntable').replace('}\ntable', '}\n\ntable').replace('}\nexpect', '}\n\nexpect'));
    expect(withoutSpans(policyOf(printed))).toEqual(withoutSpans(p));
  });

  it('loads a policy from disk with its includes (relative to the including file)', () => {
    const sources = new SourceFiles();
    const r = loadPolicy('test/syntax/golden/inc/shared.nfp', sources);
    expect(r.policy?.sources).toEqual(['test/syntax/golden/inc/shared.nfp']);
  });
});
