import { describe, expect, it } from 'vitest';
import { emitRuleset } from '../../src/backends/emit/index.js';
import { idiomatic } from '../../src/backends/import/idiom.js';
import { importIptablesSave } from '../../src/backends/import/index.js';

/** The folding `nfproof import` applies before printing (hand-written dumps, hand-checked results). */
function imp(lines: string[]) {
  const r = importIptablesSave(['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':log - [0:0]', ...lines, 'COMMIT', ''].join('\n'), 'x.save');
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return r.policy!;
}
const input = (p: ReturnType<typeof imp>) => p.rulesets.ipv4.tables[0].chains[0].rules;

describe('idiomatic', () => {
  it('folds a run of rules that differ in one address into a set, which emits the same rules', () => {
    const p = imp(['-A INPUT -s 10.0.0.1/32 -p udp -m udp --dport 53 -j ACCEPT', '-A INPUT -s 10.0.0.2/32 -p udp -m udp --dport 53 -j ACCEPT', '-A INPUT -s 10.0.0.3/32 -p udp -m udp --dport 53 -j ACCEPT', '-A INPUT -j DROP']);
    const folded = idiomatic(p);
    expect(input(folded)).toHaveLength(2);
    expect(input(folded)[0].matches[0]).toMatchObject({ kind: 'addr', value: { items: [{ len: 32 }, { len: 32 }, { len: 32 }] } });
    expect(emitRuleset(folded, 'ipv4', { sourceComments: false }).text).toBe(emitRuleset(p, 'ipv4', { sourceComments: false }).text);
  });

  it('folds ports; leaves non-terminating targets, repeated values and different comments alone', () => {
    const p = imp([
      '-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT',
      '-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT',
      '-A INPUT -s 10.0.0.1/32 -j log',
      '-A INPUT -s 10.0.0.2/32 -j log',
      '-A INPUT -s 10.0.0.5/32 -j DROP',
      '-A INPUT -s 10.0.0.5/32 -j DROP',
      '-A INPUT -s 10.0.0.6/32 -m comment --comment a -j DROP',
      '-A INPUT -s 10.0.0.7/32 -m comment --comment b -j DROP',
    ]);
    const rules = input(idiomatic(p));
    expect(rules.map((r) => r.matches.map((m) => (m.kind === 'port' ? m.value.items.map((i) => i[0]).join(',') : m.kind)).join(' '))).toEqual(['proto 80,443', 'addr', 'addr', 'addr', 'addr', 'addr', 'addr']);
  });

  it('folds protocols, unless the folded rule would be invalid (a NAT port mapping needs one protocol)', () => {
    const p = imp(['-A INPUT -i eth0 -p udp -m udp --dport 53 -j ACCEPT', '-A INPUT -i eth0 -p tcp -m tcp --dport 53 -j ACCEPT']);
    expect(input(idiomatic(p)).map((r) => r.matches.map((m) => (m.kind === 'proto' ? m.protos.join(',') : m.kind)).join(' '))).toEqual(['iface 17,6 port']);
    expect(emitRuleset(idiomatic(p), 'ipv4', { sourceComments: false }).text).toBe(emitRuleset(p, 'ipv4', { sourceComments: false }).text);
  });

  it('names sets used more than once', () => {
    const p = imp([
      '-A INPUT -p tcp -m multiport --dports 137,138,139,445 -j ACCEPT',
      '-A INPUT -i lo -j ACCEPT',
      '-A FORWARD -p udp -m multiport --dports 137,138,139,445 -j ACCEPT',
      '-A FORWARD -p udp -m multiport --dports 53,5353 -j DROP',
    ]);
    const folded = idiomatic(p);
    const ports = folded.rulesets.ipv4.tables[0].chains.flatMap((c) => c.rules.flatMap((r) => r.matches.filter((m) => m.kind === 'port')));
    expect(ports.map((m) => (m.kind === 'port' ? (m.value.ref ?? '-') : ''))).toEqual(['ports1', 'ports1', '-']);
  });
});
