import { describe, expect, it } from 'vitest';
import { emitRuleset } from '../../src/backends/emit/index.js';
import { checkPolicy } from '../../src/ir/check/index.js';
import { lowerPolicyText } from '../../src/syntax/index.js';
import { SourceFiles } from '../../src/util/sources.js';
import { kernelAvailable } from '../support/env.js';
import { withNetns } from '../support/netns.js';

/**
 * The placement checks (src/ir/check) against the kernel: for each policy, nfproof refuses it
 * exactly when iptables-restore (legacy and nft) refuses the emitted rules in a fresh network
 * namespace. ~2 s as root; skipped loudly otherwise (fails under CI=true).
 */
const kernel = kernelAvailable();

/** [what, policy] — IPv4 tables only, so one restore per variant answers. */
const CASES: readonly (readonly [string, string])[] = [
  ['SNAT in nat POSTROUTING', 'table ip nat { chain postrouting { tcp snat to 10.0.0.1:1000-2000 } }'],
  ['SNAT in nat PREROUTING', 'table ip nat { chain prerouting { snat to 10.0.0.1 } }'],
  ['SNAT in nat INPUT', 'table ip nat { chain input { snat to 10.0.0.1 } }'],
  ['DNAT in nat OUTPUT', 'table ip nat { chain output { dnat to 10.0.0.1 } }'],
  ['DNAT in nat INPUT', 'table ip nat { chain input { dnat to 10.0.0.1 } }'],
  ['MASQUERADE in a user chain reached from PREROUTING', 'table ip nat { chain prerouting { jump m } chain m { masquerade } }'],
  ['MASQUERADE in a user chain reached by goto from POSTROUTING', 'table ip nat { chain postrouting { goto m } chain m { masquerade } }'],
  ['MASQUERADE in a user chain nothing reaches', 'table ip nat { chain m { masquerade } }'],
  ['DNAT in the filter table', 'table ip filter { chain input { dnat to 10.0.0.1 } }'],
  ['-o on INPUT', 'table ip filter { chain input { oif eth0 accept } }'],
  ['-i on OUTPUT', 'table ip filter { chain output { iif eth0 accept } }'],
  ['-i in a user chain reached from OUTPUT', 'table ip filter { chain output { jump u } chain u { iif eth0 accept } }'],
  ['-o in a user chain reached from INPUT', 'table ip filter { chain input { jump u } chain u { oif eth0 accept } }'],
  ['-m mac on OUTPUT', 'table ip filter { chain output { ether saddr 00:11:22:33:44:55 accept } }'],
  ['-m mac in a user chain reached from OUTPUT', 'table ip filter { chain output { jump u } chain u { ether saddr 00:11:22:33:44:55 accept } }'],
  ['-m mac in a user chain reached from INPUT', 'table ip filter { chain input { jump u } chain u { ether saddr 00:11:22:33:44:55 accept } }'],
  ['a jump loop reached from INPUT', 'table ip filter { chain input { jump a } chain a { tcp jump b } chain b { udp goto a } }'],
  ['a jump loop that no built-in chain reaches', 'table ip filter { chain a { tcp jump b } chain b { udp goto a } }'],
  ['a chain jumping to itself', 'table ip filter { chain input { jump a } chain a { tcp jump a } }'],
  ['a jump to a built-in chain', 'table ip filter { chain input { jump OUTPUT } }'],
  ['NOTRACK in raw PREROUTING', 'table ip raw { chain prerouting { udp dport 53 notrack } }'],
  ['NOTRACK in the filter table', 'table ip filter { chain input { notrack } }'],
];

/** Codes of the checks that stand for "the kernel or iptables-restore refuses this". */
const REFUSALS = new Set(['E-target-hook', 'E-target-table', 'E-match-hook', 'E-jump-loop', 'E-jump-to-builtin', 'E-undefined-chain']);

describe.skipIf(!kernel.run)('placement checks agree with iptables-restore', () => {
  it.each(CASES)('%s', async (_what, text) => {
    const lowered = lowerPolicyText(text, 'case.nfp', new SourceFiles());
    expect(lowered.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const policy = lowered.policy!;
    const refusedByUs = checkPolicy(policy).some((d) => d.severity === 'error' && REFUSALS.has(d.code));
    const rules = emitRuleset(policy, 'ipv4', { sourceComments: false }).text;
    await withNetns(['chk'], (ns) => {
      for (const tool of ['iptables-legacy-restore', 'iptables-nft-restore']) {
        const r = ns.exec(tool, [], rules);
        expect({ tool, refused: r.status !== 0, stderr: r.status !== 0 ? r.stderr.split('\n')[0] : '' }).toMatchObject({ tool, refused: refusedByUs });
      }
    });
  });
});
