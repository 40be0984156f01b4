import { describe, expect, it } from 'vitest';
import { parseAddress } from '../../src/util/ip.js';
import { at, check, lineOf } from './support/nfp.js';

/**
 * Hand-checked findings, one policy per finding kind. Each expected result was worked out by
 * reading the rules (the reasoning is in the comment above each case); the witnesses are also
 * replayed in the simulator by checkPolicy, and a disagreement would show as an internal error.
 *
 * Runtime: ~15 s (a few cases go to Z3).
 */
const addr = (a: string) => parseAddress(a)!.value;

describe('findings', () => {
  it('shadowed: a drop after an accept of every packet it matches', async () => {
    // Every tcp/22 packet is accepted by the first rule, so the drop of 10/8 never fires.
    const text = `
table ip filter {
  chain input policy drop {
    tcp dport 22 accept               # L1
    saddr 10.0.0.0/8 tcp dport 22 drop  # L2
  }
}`;
    const r = await check(text);
    const f = at(r, lineOf(text, '# L2'));
    expect(f.map((x) => x.kind)).toEqual(['shadowed']);
    expect(f[0].severity).toBe('error');
    expect(f[0].related[0].rule.span.start.line).toBe(lineOf(text, '# L1'));
    const w = f[0].witness!;
    expect(w.input.fields.dport).toBe(22n);
    expect(w.input.fields.saddr! >> 24n).toBe(10n);
    expect(w.verdict).toBe('local');
    expect(w.path.map((s) => s.rule?.span.start.line)).toContain(lineOf(text, '# L1'));
    expect(w.replay?.status).toBe('agrees');
    expect(r.internalErrors).toEqual([]);
    expect(at(r, lineOf(text, '# L1'))).toEqual([]);
  });

  it('redundant: already accepted by an earlier rule with the same action', async () => {
    const text = `
table ip filter {
  chain input policy drop {
    tcp dport 22 accept                      # L1
    saddr 10.1.0.0/16 tcp dport 22 accept    # L2
  }
}`;
    const r = await check(text);
    const f = at(r, lineOf(text, '# L2'));
    expect(f.map((x) => x.kind)).toEqual(['redundant']);
    expect(f[0].severity).toBe('warning');
    expect(f[0].witness?.replay?.status).toBe('agrees');
  });

  it('redundant: removable because a later rule gives its packets the same verdict', async () => {
    // Nothing between the two rules treats 10/8 ssh differently, so the first can go.
    const text = `
table ip filter {
  chain input policy drop {
    saddr 10.0.0.0/8 tcp dport 22 accept   # L1
    udp dport 53 accept
    tcp dport 22 accept                    # L3
  }
}`;
    const r = await check(text);
    const f = at(r, lineOf(text, '# L1'));
    expect(f.map((x) => x.kind)).toEqual(['redundant']);
    expect(f[0].message).toMatch(/removing it changes no verdict/);
    expect(f[0].related.map((x) => x.rule.span.start.line)).toEqual([lineOf(text, '# L3')]);
    // The later rule is live, so it is not reported itself.
    expect(at(r, lineOf(text, '# L3'))).toEqual([]);
  });

  it('not removable when a rule in between decides part of its packets otherwise', async () => {
    const text = `
table ip filter {
  chain input policy drop {
    saddr 10.0.0.0/8 tcp dport 22 accept   # L1
    saddr 10.9.0.0/16 drop
    tcp dport 22 accept
  }
}`;
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1'))).toEqual([]);
  });

  it('unreachable: an output-interface test in a chain only INPUT jumps to', async () => {
    // INPUT packets have no output interface ("" in the kernel's comparison).
    const text = `
table ip filter {
  chain input policy accept {
    tcp jump extra
  }
  chain extra {
    oif eth0 accept   # L1
    udp drop
  }
}`;
    const r = await check(text);
    const f = at(r, lineOf(text, '# L1'));
    expect(f.map((x) => x.kind)).toEqual(['unreachable']);
    // `udp drop` in a chain only tcp packets enter is unreachable too.
    expect(at(r, lineOf(text, 'udp drop')).map((x) => x.kind)).toEqual(['unreachable']);
  });

  it('unreachable: a conntrack state test in the raw table (conntrack has not run yet)', async () => {
    // From a device, raw PREROUTING sees no connection yet: INVALID. (A packet this host sends
    // to itself comes back over lo with its connection attached, so the test names eth0.)
    const text = `
table ip raw {
  chain prerouting {
    iif eth0 ct state established notrack   # L1
    ct state established notrack            # L2
  }
}`;
    const r = await check(text);
    const f = at(r, lineOf(text, '# L1'));
    expect(f.map((x) => x.kind)).toEqual(['unreachable']);
    expect(f[0].message).toMatch(/raw table/);
    expect(at(r, lineOf(text, '# L2'))).toEqual([]);
  });

  it('unused chain: reported once for the chain, not per rule', async () => {
    const text = `
table ip filter {
  chain input policy accept {
    tcp dport 22 accept
  }
  chain lonely {   # L1
    drop
    accept
  }
}`;
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1')).map((x) => x.kind)).toEqual(['unused-chain']);
    expect(r.findings.filter((x) => x.rule?.chain === 'lonely')).toEqual([]);
  });

  it('NAT: the nat table sees only first packets, so an ESTABLISHED DNAT never fires', async () => {
    const text = `
table ip nat {
  chain prerouting {
    ct state established tcp dport 80 dnat to 10.0.0.5   # L1
    tcp dport 8080 dnat to 10.0.0.6
  }
}`;
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1')).map((x) => x.kind)).toEqual(['nat-never-fires']);
    expect(at(r, lineOf(text, 'dport 8080'))).toEqual([]);
  });

  it('NAT: SNAT for traffic the filter always drops never fires (decided by Z3)', async () => {
    // FORWARD accepts only lan → wan and OUTPUT drops everything, so nothing ever leaves by
    // lan: its SNAT is dead. (Without the output chain, the host's own packets to the LAN would
    // pass POSTROUTING and fire it.)
    const text = `
host gw {
  interface lan dev eth0 address 10.0.0.1/24
  interface wan dev eth1 address 198.51.100.2/24
  route default via 198.51.100.1 dev wan
}
table ip nat {
  chain postrouting {
    oif lan snat to 10.0.0.1       # L1
    oif wan snat to 198.51.100.2   # L2
  }
}
table ip filter {
  chain forward policy drop {
    iif lan oif wan accept
  }
  chain output policy drop {
  }
}`;
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1')).map((x) => x.kind)).toEqual(['nat-never-fires']);
    expect(r.stats.z3Decided).toBeGreaterThan(0);
    expect(at(r, lineOf(text, '# L2'))).toEqual([]);
    expect(r.internalErrors).toEqual([]);
  });

  it('NAT: a forward rule on the port DNAT writes is live (the packet arrived on another port)', async () => {
    // wan:8080 is DNATed to the NAS port 80 before FORWARD; the accept of ct state dnat to port
    // 80 fires for it, although no packet arriving on port 80 from wan is forwarded.
    const text = `
host gw {
  interface lan dev br0 address 192.168.1.1/24
  interface wan dev eth0 address 203.0.113.7/24
  route default via 203.0.113.1 dev wan
}
define nas = 192.168.1.10
table ip nat {
  chain prerouting {
    iif wan tcp dport 8080 dnat to 192.168.1.10:80
  }
}
table ip filter {
  chain forward policy drop {
    ct state established,related accept
    iif wan oif lan daddr @nas tcp dport 80 ct status dnat accept   # L1
    iif lan oif wan accept
  }
}`;
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1'))).toEqual([]);
    expect(r.internalErrors).toEqual([]);
  });

  it('ct state: an established drop after established,related accept is shadowed', async () => {
    const text = `
table ip filter {
  chain forward policy drop {
    ct state established,related accept   # L1
    ct state established drop              # L2
    ct state new accept
  }
}`;
    const r = await check(text);
    expect(at(r, lineOf(text, '# L2')).map((x) => x.kind)).toEqual(['shadowed']);
  });

  it('correlation and generalization between live rules', async () => {
    const text = `
table ip filter {
  chain input policy drop {
    saddr 10.0.0.5 tcp dport 22 accept   # L1
    saddr 10.0.0.0/8 drop                # L2
    tcp dport 80 accept                  # L3
  }
}`;
    const r = await check(text, { anomalies: true });
    // L2 drops a superset of what L1 accepts first: L1 is an exception to L2.
    expect(at(r, lineOf(text, '# L2')).map((x) => x.kind)).toEqual(['generalization']);
    // L3 overlaps L2 (10/8 on port 80) with another verdict, neither inside the other.
    const c = at(r, lineOf(text, '# L3'));
    expect(c.map((x) => x.kind)).toEqual(['correlation']);
    const w = c[0].witness!;
    expect(w.input.fields.dport).toBe(80n);
    expect(w.input.fields.saddr! >= addr('10.0.0.0') && w.input.fields.saddr! <= addr('10.255.255.255')).toBe(true);
    expect(w.verdict).toBe('dropped');
  });

  it('a clean policy has no findings', async () => {
    const text = `
table ip filter {
  chain input policy drop {
    iif lo accept
    ct state established,related accept
    tcp dport 22 accept
  }
}`;
    const r = await check(text, { anomalies: true });
    expect(r.findings).toEqual([]);
    expect(r.internalErrors).toEqual([]);
  });
});
