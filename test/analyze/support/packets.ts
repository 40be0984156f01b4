import fc from 'fast-check';
import type { Constraint } from '../../../src/ir/constraint.js';
import { CT_STATE, type NumericField, PROTO } from '../../../src/ir/fields.js';
import type { PacketInput } from '../../../src/analyze/concrete/input.js';
import type { FamilyModel } from '../../../src/analyze/model/build.js';
import { familyMax } from '../../../src/util/ip.js';

/**
 * Random packets for a compiled policy, biased toward values its rules mention (interval ends
 * of address and port sets, host addresses, interface names) so that rules actually match.
 */
function pointsOf(c: Constraint, field: NumericField, out: Set<bigint>): void {
  switch (c.op) {
    case 'in':
      if (c.field === field) for (const [lo, hi] of c.set.slice(0, 4)) out.add(lo).add(hi);
      return;
    case 'and':
    case 'or':
      c.of.forEach((x) => pointsOf(x, field, out));
      return;
    case 'not':
      pointsOf(c.of, field, out);
      return;
    default:
      return;
  }
}

export function interesting(model: FamilyModel, field: NumericField): bigint[] {
  const out = new Set<bigint>();
  for (const r of model.rules) pointsOf(r.constraint, field, out);
  if (field === 'saddr' || field === 'daddr') {
    for (const a of model.routing.addresses) out.add(a.addr).add(a.addr + 1n);
    out.add(model.family === 'ipv4' ? 0xc6336407n : 0x20010db8000100000000000000000007n);
  }
  return [...out].filter((v) => v <= (field === 'saddr' || field === 'daddr' ? familyMax(model.family) : 0xffffffffn));
}

export function packetArb(model: FamilyModel): fc.Arbitrary<PacketInput> {
  const fam = model.family;
  const addr = (f: 'saddr' | 'daddr') => {
    const pts = interesting(model, f);
    return fc.oneof(fc.constantFrom(...pts), fc.bigInt(0n, familyMax(fam)));
  };
  const port = (f: 'sport' | 'dport') => {
    const pts = interesting(model, f);
    return fc.oneof(fc.constantFrom(...(pts.length ? pts : [80n])), fc.bigInt(0n, 65535n));
  };
  const devices = model.ifaces.names.filter((n) => n !== '');
  const icmp = fam === 'ipv4' ? PROTO.icmp : PROTO.icmpv6;
  return fc
    .record({
      local: fc.boolean(),
      device: fc.constantFrom(...devices),
      saddr: addr('saddr'),
      daddr: addr('daddr'),
      proto: fc.constantFrom(BigInt(PROTO.tcp), BigInt(PROTO.udp), BigInt(icmp), 47n),
      sport: port('sport'),
      dport: port('dport'),
      tcpflags: fc.constantFrom(0x02n, 0x12n, 0x10n, 0x18n, 0x04n, 0x11n),
      icmptype: fc.constantFrom(0n, 3n, 8n, 128n, 129n),
      ttl: fc.constantFrom(1n, 2n, 64n),
      tos: fc.constantFrom(0n, 0x10n, 0xb8n),
      fragment: fc.constantFrom(0n, 0n, 0n, 1n),
      state: fc.constantFrom<PacketInput['ctState']>('NEW', 'NEW', 'ESTABLISHED', 'RELATED', 'INVALID'),
      ctmark: fc.constantFrom(0n, 1n, 0xffn),
      ctdir: fc.constantFrom(0n, 1n),
      length: fc.constantFrom(60n, 1500n),
      macsrc: fc.constantFrom(0x02000000000an, 0x0200000000ffn),
      uid: fc.constantFrom(0n, 1000n),
    })
    .map((r) => ({
      family: fam,
      ingress: r.local ? { kind: 'local' } : { kind: 'iface', device: r.device },
      fields: {
        saddr: r.saddr,
        daddr: r.daddr,
        proto: r.proto,
        sport: r.sport,
        dport: r.dport,
        tcpflags: r.tcpflags,
        icmptype: r.icmptype,
        icmpcode: 0n,
        ttl: r.ttl,
        tos: r.tos,
        fragment: r.fragment,
        ctmark: r.ctmark,
        ctdir: r.ctdir,
        ctstatus: 0n,
        length: r.length,
        macsrc: r.macsrc,
        uid: r.uid,
        gid: r.uid,
      },
      ctState: r.state,
    }));
}

export const STATE_VALUE = CT_STATE;
