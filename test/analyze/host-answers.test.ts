import { describe, expect, it } from 'vitest';
import type { PacketInput } from '../../src/analyze/concrete/input.js';
import { CHOICE } from '../../src/analyze/concrete/interp.js';
import { diffPolicies } from '../../src/analyze/diff/index.js';
import { parseAddress } from '../../src/util/ip.js';
import { allEngines } from './support/engines.js';
import { at, check, lineOf, nfp } from './support/nfp.js';
import { GATEWAY_HOST } from './support/hosts.js';

/**
 * The host's own answers (a REJECT's ICMP error or TCP reset, icmp_send's errors) carry the
 * connection of the packet they answer from the start (nf_ct_attach), so raw/OUTPUT sees them
 * RELATED; a socket's packet has no connection there. Checked on the kernel with counters
 * (test/kernel/answer-conntrack.test.ts), where the simulator makes such answers itself.
 * Here the analyzer's engines take one as a local RELATED ICMP error whose CHOICE.answer is 1
 * (ct-validity.ts canBeAnswer): the interpreter, the Z3 encoding and the diff walk agree on
 * it, `check` no longer calls a raw/OUTPUT rule about RELATED packets unreachable, and `diff`
 * sees a change that only answers can tell. Found by the diff's trust property (seed 2).
 *
 * Runtime: ~3 s.
 */
const addr = (a: string) => parseAddress(a)!.value;

/** A local ICMP port-unreachable error, RELATED, as a socket (answer 0) or this host's own answer (1). */
function icmpError(answer: 0n | 1n): PacketInput {
  return {
    family: 'ipv4',
    ingress: { kind: 'local' },
    fields: { saddr: addr('192.168.18.1'), daddr: addr('192.168.18.5'), proto: 1n, icmptype: 3n, icmpcode: 3n, length: 56n, ttl: 64n, tos: 0n, fragment: 0n, uid: 0n, gid: 0n, ctdir: 1n },
    ctState: 'RELATED',
    choices: { [CHOICE.answer]: answer },
  };
}


describe('the host\u2019s own answers are RELATED in raw/OUTPUT', () => {
  it('the interpreter, Z3 and the diff walk drop an answer there, not a socket\u2019s packet', async () => {
    const policy = nfp(`${GATEWAY_HOST}
table ip raw {
  chain output {
    icmp ct state related ct direction reply drop
  }
}`);
    const engines = async (p: PacketInput) => {
      const { simulator: _made, ...rest } = await allEngines(policy, p);
      return rest;
    };
    // The simulator sends no such packet from a socket: it makes answers itself (kernel test).
    const dropped = { verdict: 'dropped' };
    const sent = { verdict: 'sent', egress: 'eth0' };
    expect(await engines(icmpError(1n))).toEqual({ interpreter: dropped, z3: dropped, walk: dropped });
    expect(await engines(icmpError(0n))).toEqual({ interpreter: sent, z3: sent, walk: sent });
  });

  it('check finds a raw/OUTPUT rule about RELATED packets reachable', async () => {
    const text = `
table ip raw {
  chain output {
    ct state related drop   # L1
  }
}`;
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1'))).toEqual([]);
    expect(r.internalErrors).toEqual([]);
  });

  it('diff reports a raw/OUTPUT change that only answers can tell', async () => {
    const side = (rule: string) => ({ path: `${rule}.nfp`, policy: nfp(`${GATEWAY_HOST}\ntable ip raw {\n  chain output {\n    ${rule}\n  }\n}`) });
    // Widened from UDP to every protocol: a socket's packet has no connection in raw, so only
    // the host's ICMP errors and TCP resets (RELATED, the connection attached) are newly dropped.
    const report = await diffPolicies(side('udp ct direction original drop'), side('ct direction original drop'), { timeoutMs: 10_000 });
    expect(report.status).toBe('different');
    expect(report.classes.map((c) => c.kind)).toEqual(['denied']);
    const w = report.classes[0].witness;
    expect(w.summary).toContain('sent by this host in answer to another packet');
    expect([w.input.ctState, w.input.fields.proto === 1n || w.input.fields.proto === 6n]).toEqual(['RELATED', true]);
    expect(report.internalErrors).toEqual([]);
  });
});
