import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SimInput } from '../../src/netfilter/api.js';
import { parsePacketFile } from '../../src/netfilter/packet-file.js';
import { encodeIp } from '../../src/netfilter/wire.js';
import { hostModel } from './harness/host.js';
import type { InputContext } from './harness/run.js';
import { hostFamilies, packetLine, resolveSequence, sequenceArb } from './harness/traffic.js';

/**
 * The traffic generator of the differential property, without a kernel: every sequence it
 * makes can be sent (one family per packet, a real ingress, encodable bytes), replies come back
 * the way their request went, and packet lines are JSON. ~0.5 s.
 */
const SEED = Number(process.env.NFPROOF_SEED ?? 42);
const host = hostModel({
  interfaces: { lan: ['eth0', '192.168.18.1/24', 'fd00:18::1/64'], wan: ['eth1', '192.168.20.1/24'], dmz: ['wan0', 'fd00:dd::1/64'] },
  routes: ['default via 192.168.20.254 dev wan', '10.0.0.0/8 via 192.168.18.254 dev lan'],
});
const devices = new Set(['local', ...host.interfaces.map((i) => i.device)]);

/** A context in which every request "left" unchanged by device `eth1`, as if forwarded. */
function echoContext(inputs: SimInput[]): InputContext {
  return { out: (i) => inputs[i]?.packet, outDevice: (i) => (inputs[i] ? 'eth1' : undefined) };
}

describe('traffic generator', () => {
  it('makes sendable sequences whose replies go back the way the request came', () => {
    expect(hostFamilies(host)).toEqual(['ipv4', 'ipv6']);
    fc.assert(
      fc.property(sequenceArb, (sessions) => {
        const specs = resolveSequence(host, sessions);
        const inputs: SimInput[] = [];
        const ctx = echoContext(inputs);
        for (const spec of specs) inputs.push(typeof spec === 'function' ? spec(ctx) : spec);
        for (const input of inputs) {
          const p = input.packet;
          expect(devices.has(input.ingress.kind === 'local' ? 'local' : input.ingress.device)).toBe(true);
          if (p.icmp?.inner) expect(p.icmp.inner.family).toBe(p.family);
          expect(() => encodeIp(p)).not.toThrow();
          // The line reads back (nfproof simulate --packets) as the same input.
          const [back] = parsePacketFile(packetLine(input), (name) => name);
          expect(back.ingress).toEqual(input.ingress);
          expect(back.packet).toEqual(input.packet);
        }
        // A computed reply (not the first packet of its session) swaps the request's endpoints.
        specs.forEach((spec, i) => {
          if (typeof spec !== 'function' || inputs[i].packet.icmp?.inner) return;
          const reply = inputs[i].packet;
          const req = inputs.slice(0, i).reverse().find((x) => x.packet.family === reply.family && x.packet.src === reply.dst && x.packet.dst === reply.src);
          if (reply.tcp?.flags === 0x02) return; // an FTP data SYN to the announced port
          expect(req, packetLine(inputs[i])).toBeDefined();
        });
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});
