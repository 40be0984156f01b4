import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkPolicy } from '../../src/analyze/check.js';
import { queryFlow } from '../../src/analyze/query.js';
import { parseFlow } from '../../src/syntax/index.js';
import { formatAddress, parseAddress } from '../../src/util/ip.js';
import { SourceFiles } from '../../src/util/sources.js';
import { REPO_ROOT } from '../support/env.js';
import { lineOf, nfp } from './support/nfp.js';

/**
 * `expect` statements and `query`. The example policies in policies/ state expectations their
 * authors checked by hand (and the kernel harness replays); all of them must be proved. The
 * made-up cases below fail on purpose, each for the reason given beside it.
 *
 * Runtime: ~20 s.
 */
const addr = (a: string) => parseAddress(a)!.value;

describe('expectations of the example policies', () => {
  const names = readdirSync(join(REPO_ROOT, 'policies')).filter((f) => f.endsWith('.nfp')).sort();
  it('finds the example policies', () => expect(names.length).toBeGreaterThanOrEqual(6));
  for (const name of names) {
    it(`${name}: every expectation holds`, async () => {
      const path = join(REPO_ROOT, 'policies', name);
      const policy = nfp(readFileSync(path, 'utf8'), path);
      const r = await checkPolicy(policy, { timeoutMs: 10_000 });
      expect(r.expectations.length).toBeGreaterThan(0);
      for (const e of r.expectations) expect(`${e.expectation.span.start.line}: ${e.status} ${e.message}`).toMatch(/: proved /);
      expect(r.internalErrors).toEqual([]);
    }, 60_000);
  }
});

const GW = `
host gw {
  interface lan dev eth0 address 10.0.0.1/24
  interface wan dev eth1 address 198.51.100.2/24
  route default via 198.51.100.1 dev wan
}
table ip nat {
  chain prerouting {
    iif wan daddr 198.51.100.2 tcp dport 8080 dnat to 10.0.0.10:80
  }
  chain postrouting {
    oif wan saddr 10.0.0.0/24 masquerade
  }
}
table ip filter {
  chain forward policy drop {
    ct state established,related accept
    iif lan oif wan accept
    iif wan daddr 10.0.0.10 tcp dport 80 accept
  }
}
`;

describe('expectations that fail, with counterexamples', () => {
  it('the source document example: SNAT with reply proves, and the reply is de-NATed', async () => {
    const text = `${GW}
expect reachable tcp from 10.0.0.7 iif lan to 203.0.113.9 dport 443 via forward translated saddr 198.51.100.2 with reply
`;
    const r = await checkPolicy(nfp(text), { timeoutMs: 10_000 });
    const e = r.expectations[0];
    expect(e.status).toBe('proved');
    // The example packet: SNATed on the way out, its reply reaches 10.0.0.7 again.
    const w = e.witness!;
    expect(w.verdict).toBe('forwarded');
    expect(w.egress).toBe('eth1');
    expect(w.egressSummary).toContain('198.51.100.2:');
    expect(w.reply?.verdict).toBe('forwarded');
    expect(w.reply?.egress).toBe('eth0');
    expect(w.reply?.egressSummary).toContain('-> 10.0.0.7:');
    expect(w.replay?.status).toBe('agrees');
    expect(w.reply?.replay?.status).toBe('agrees');
  }, 60_000);

  it('port forward with reply: the client reaches the inside server and gets its answer back', async () => {
    const text = `${GW}
expect reachable tcp iif wan to 198.51.100.2 dport 8080 translated daddr 10.0.0.10 dport 80 with reply
`;
    const r = await checkPolicy(nfp(text), { timeoutMs: 10_000 });
    expect(r.expectations[0].status).toBe('proved');
  }, 60_000);

  it('reachable fails: port 22 is not forwarded (counterexample names the policy drop)', async () => {
    const text = `${GW}
expect reachable tcp iif wan to 10.0.0.10 dport 22
`;
    const r = await checkPolicy(nfp(text), { timeoutMs: 10_000 });
    const e = r.expectations[0];
    expect(e.status).toBe('failed');
    expect(e.witness!.input.fields.dport).toBe(22n);
    expect(e.witness!.verdict).toBe('dropped');
    expect(e.witness!.path.at(-1)?.action).toBe('policy DROP');
    expect(e.witness!.replay?.status).toBe('agrees');
  }, 60_000);

  it('translated fails when the DNAT goes elsewhere', async () => {
    const text = `${GW}
expect reachable tcp iif wan to 198.51.100.2 dport 8080 translated daddr 10.0.0.11
`;
    const r = await checkPolicy(nfp(text), { timeoutMs: 10_000 });
    expect(r.expectations[0].status).toBe('failed');
    expect(r.expectations[0].message).toMatch(/daddr becomes 10\.0\.0\.10/);
  }, 60_000);

  it('unreachable fails: the LAN can reach the internet on any port', async () => {
    const text = `${GW}
expect unreachable tcp iif lan to 203.0.113.0/24 dport 25
`;
    const r = await checkPolicy(nfp(text), { timeoutMs: 10_000 });
    const e = r.expectations[0];
    expect(e.status).toBe('failed');
    expect(e.witness!.verdict).toBe('forwarded');
    const d = e.witness!.input.fields.daddr!;
    expect(d >= addr('203.0.113.0') && d <= addr('203.0.113.255')).toBe(true);
  }, 60_000);

  it('only fails: from the internet, web traffic is allowed but not only to port 80', async () => {
    const text = `${GW}
expect only tcp dport 443 within iif wan via forward
`;
    const r = await checkPolicy(nfp(text), { timeoutMs: 10_000 });
    const e = r.expectations[0];
    expect(e.status).toBe('failed');
    // The counterexample is the port forward (the only thing forwarded from wan), to port 80.
    expect(e.witness!.verdict).toBe('forwarded');
    expect(e.witness!.egressSummary).toContain('10.0.0.10:80');
  }, 60_000);

  it('no-findings fails when there is such a finding', async () => {
    const text = `
table ip filter {
  chain input policy drop {
    tcp dport 22 accept
    tcp dport 22 drop
  }
}
expect no shadowed rules
`;
    const r = await checkPolicy(nfp(text), { timeoutMs: 10_000 });
    expect(r.expectations[0].status).toBe('failed');
    expect(r.expectations[0].message).toMatch(new RegExp(`test.nfp:${lineOf(text, 'dport 22 drop')}`));
  }, 60_000);
});

describe('query', () => {
  it('lists every verdict with its deciding rules', async () => {
    const policy = nfp(GW);
    const sources = new SourceFiles();
    const flow = parseFlow('tcp iif wan to 198.51.100.2', '<flow>', sources, { policy }).flow!;
    const q = await queryFlow(policy, flow, { timeoutMs: 10_000 });
    const verdicts = new Set(q.outcomes.map((o) => o.verdict));
    // Port 8080 is forwarded to the server; anything else to the router itself is delivered
    // locally (no input chain, policy accept).
    expect(verdicts).toEqual(new Set(['forwarded', 'local']));
    const fwd = q.outcomes.find((o) => o.verdict === 'forwarded')!;
    expect(fwd.witness.input.fields.dport).toBe(8080n);
    expect(fwd.deciding.some((d) => d.rule?.text.includes('dnat to 10.0.0.10:80'))).toBe(true);
    expect(fwd.witness.replay?.status).toBe('agrees');
    expect(q.internalErrors).toEqual([]);
    expect(formatAddress('ipv4', fwd.witness.input.fields.daddr!)).toBe('198.51.100.2');
  }, 60_000);
});
