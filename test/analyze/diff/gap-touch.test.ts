import { describe, expect, it } from 'vitest';
import { diffPolicies } from '../../../src/analyze/diff/index.js';
import { fromSave } from '../support/policies.js';

/**
 * A changed rule touches only the packets it can catch. Made-up ruleset without a host model
 * (routing left open, so the region of the INPUT change is every packet, forwarded ones too):
 * forwarded traffic from a /24 passes an anti-spoofing chain of per-host rules (RETURN for the
 * host's MAC, DROP otherwise); the new side accepts where one host's DROP stood and drops
 * `-i lo` from the INPUT accept. By hand: packets delivered to this host are now accepted (the
 * INPUT policy dropped them), and forwarded packets from 10.0.0.7 with another MAC are now
 * forwarded (its DROP dropped them, the ACCEPT lets them through); nothing else differs.
 * Before a gap touched only its hull's part of a term, the new ACCEPT (a gap of the old side)
 * marked every forwarded packet of the /24 as touched on the old side: each then walked on
 * through every later per-host rule on both sides instead of being let go.
 *
 * Runtime: well under a second.
 */
const HOSTS = 40;

function ruleset(acceptOne: boolean, loOnly: boolean): string {
  const macs: string[] = [];
  for (let h = 2; h < 2 + HOSTS; h++) {
    const mac = `02:00:00:00:00:${h.toString(16).padStart(2, '0')}`;
    macs.push(`-A macs -s 10.0.0.${h}/32 -m mac --mac-source ${mac} -j RETURN`, `-A macs -s 10.0.0.${h}/32 -j DROP`);
  }
  // The DROP of host 10.0.0.7 made an ACCEPT: its packets with another MAC are now forwarded.
  if (acceptOne) macs[11] = macs[11].replace('-j DROP', '-j ACCEPT');
  return [
    '*filter',
    ':INPUT DROP [0:0]',
    ':FORWARD DROP [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':macs - [0:0]',
    loOnly ? '-A INPUT -i lo -j ACCEPT' : '-A INPUT -j ACCEPT',
    '-A FORWARD -s 10.0.0.0/24 -i eth0 -j macs',
    '-A FORWARD -i eth0 -o eth1 -j ACCEPT',
    ...macs,
    'COMMIT',
    '',
  ].join('\n');
}

describe('nfproof diff: a moved rule touches only what it can catch', () => {
  it("finds the INPUT change and 10.0.0.7's, and lets the other hosts' packets go at the gap", async () => {
    const a = fromSave(ruleset(false, true), { file: 'old.rules' });
    const b = fromSave(ruleset(true, false), { file: 'new.rules' });
    const r = await diffPolicies({ path: 'old.rules', policy: a }, { path: 'new.rules', policy: b });
    expect(r.internalErrors).toEqual([]);
    expect(r.unknown).toEqual([]);
    expect(r.status).toBe('different');
    expect(r.classes.length).toBeGreaterThan(0);
    for (const c of r.classes) {
      expect(c.kind).toBe('allowed');
      expect(c.old.verdict).toBe('dropped');
      if (c.new.verdict !== 'local') {
        expect(c.new.verdict).toBe('forwarded');
        expect(c.witness.summary).toMatch(/^\S+ 10\.0\.0\.7[: ]/);
      }
    }
    expect(r.classes.some((c) => c.new.verdict === 'forwarded')).toBe(true);
    const s = r.families[0].stats;
    // Touched on the old side: the packets for this host and 10.0.0.7's; the other hosts' packets
    // are let go at the gap. Before, each host's RETURN and DROP ended in a touched leaf that the
    // new side walked again (183/156 leaves at 40 hosts, counted at ac43f32; now 75/33).
    expect(s.leaves.new).toBeLessThan(2 * HOSTS);
  });
});
