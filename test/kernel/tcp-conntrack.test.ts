import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTrackerSysctls } from '../../src/netfilter/proto/registry.js';
import { CtDriver, type EntryView, type Observation } from '../netfilter/proto/ct-driver.js';
import { TCP_SCENARIOS, type TcpScenario } from '../netfilter/proto/tcp-scenarios.js';
import { c, DEFAULT_ENDPOINTS, describeSeg, type Endpoints, s as sv, type Seg, segPacket } from '../netfilter/proto/tcp-script.js';
import { TimeBox } from './harness/time-box.js';
import { labAvailable, type KernelCtState, type KernelEntry, TcpLab } from './tcp-lab.js';

/**
 * The TCP tracker against the real kernel. Every scenario of tcp-scenarios.ts is played
 * segment by segment through a firewall namespace (client — fw — server) and through
 * nfproof's tracker (via the small conntrack core in ct-driver.ts). After each segment we
 * compare the state the rules saw (NEW/ESTABLISHED/INVALID…, from per-state counting rules),
 * and the connection as `conntrack -L` shows it: TCP state, [ASSURED], [UNREPLIED], timeout
 * (the kernel rounds down and a few ms pass, so it may be up to 2 s lower). The expected
 * values are the kernel's; the tracker must agree. Runtime: ~15 s.
 */

const env = labAvailable();

interface Row {
  readonly seg: string;
  readonly ct: string;
  readonly entry: string;
}

function kernelRow(seg: string, ct: KernelCtState, e: KernelEntry | undefined): Row {
  return { seg, ct, entry: e ? `${e.state} ${e.assured ? 'ASSURED' : ''}${e.unreplied ? 'UNREPLIED' : ''} t=${e.timeout}` : 'none' };
}

function simRow(seg: string, o: Observation, e: EntryView | undefined, kernelTimeout: number | undefined): Row {
  if (!e) return { seg, ct: o.ctState, entry: 'none' };
  // Both are read at (about) the same moment; each side rounds down and the packet times are
  // estimates: timeouts agree within 2 s.
  const t = kernelTimeout !== undefined && Math.abs(kernelTimeout - e.timeout) <= 2 ? kernelTimeout : e.timeout;
  return { seg, ct: o.ctState, entry: `${e.state} ${e.assured ? 'ASSURED' : ''}${e.unreplied ? 'UNREPLIED' : ''} t=${t}` };
}

function flowEntry(entries: readonly KernelEntry[], ep: Endpoints): KernelEntry | undefined {
  return entries.find(
    (e) =>
      e.proto === 'tcp' &&
      ((e.sport === ep.cport && e.dport === ep.sport) || (e.sport === ep.sport && e.dport === ep.cport)),
  );
}

describe.skipIf(!env.run)('TCP conntrack: nfproof tracker vs the Linux kernel', () => {
  let lab: TcpLab;
  beforeAll(() => {
    lab = TcpLab.create();
  });
  afterAll(() => lab?.dispose());

  async function play(sc: TcpScenario, ep: Endpoints): Promise<{ kernel: Row[]; sim: Row[] }> {
    lab.reset();
    const sysctls = sc.sysctls ?? {};
    const saved = Object.keys(sysctls).map((k) => [k, lab.fw.run('sysctl', ['-n', k]).trim()] as const);
    for (const [k, v] of Object.entries(sysctls)) lab.sysctl(k, v);
    const parsed = parseTrackerSysctls(sysctls);
    expect(parsed.errors).toEqual([]);
    const driver = new CtDriver(parsed.sys);
    const kernel: Row[] = [];
    const sim: Row[] = [];
    const t0 = performance.now();
    try {
      for (const [i, seg] of sc.segs.entries()) {
        const pause = sc.pauses?.[i];
        if (pause) await new Promise((r) => setTimeout(r, pause * 1000));
        const sent = performance.now();
        const ct = await lab.inject(() => lab.sendSeg(seg, ep));
        const t = ((sent + performance.now()) / 2 - t0) / 1000; // the kernel saw it in between
        const o = driver.process(segPacket(seg, ep), t);
        const k = flowEntry(lab.conntrack(), ep);
        // nfproof's entry as it stands now, when the kernel's was read.
        const now = (performance.now() - t0) / 1000;
        const view = o.entry ? driver.entryOf(segPacket(seg, ep), now) : undefined;
        const label = `${i}: ${describeSeg(seg)}`;
        kernel.push(kernelRow(label, ct, k));
        sim.push(simRow(label, o, view, k?.timeout));
      }
    } finally {
      for (const [k, v] of saved) lab.sysctl(k, v);
    }
    return { kernel, sim };
  }

  /** Random conversations: a handshake or not, then segments near both sequence spaces. */
  const segArb = (ci: number, si: number): fc.Arbitrary<Seg> =>
    fc
      .record({
        fromClient: fc.boolean(),
        flags: fc.constantFrom('S', 'SA', 'A', 'A', 'PA', 'PA', 'FA', 'R', 'RA'),
        seqOff: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.integer({ min: -80_000, max: 150_000 })),
        ackOff: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.integer({ min: -80_000, max: 150_000 })),
        len: fc.constantFrom(0, 0, 1, 200),
        win: fc.constantFrom(0, 502, 65535),
      })
      .map((r) => {
        const [mine, theirs] = r.fromClient ? [ci, si] : [si, ci];
        const seq = (mine + 1 + r.seqOff) >>> 0;
        const ack = r.flags.includes('A') ? (theirs + 1 + r.ackOff) >>> 0 : 0;
        return (r.fromClient ? c : sv)(r.flags, seq, ack, { len: r.len, win: r.win });
      });
  const convArb = fc
    .tuple(fc.integer({ min: 1, max: 0xffffffff }), fc.integer({ min: 1, max: 0xffffffff }), fc.boolean())
    .chain(([ci, si, hs]) =>
      fc.array(segArb(ci, si), { minLength: 1, maxLength: 8 }).map((rest) => ({
        name: 'random',
        segs: hs ? [c('S', ci, 0, { mss: 1460, wscale: 7, sackok: true }), sv('SA', si, ci + 1, { mss: 1460, wscale: 7, sackok: true }), c('A', ci + 1, si + 1, { win: 502 }), ...rest] : rest,
      })),
    );

  // A conversation takes ~0.45 s on 2 busy cores; the cap allows 1.5 s each and a failure 20 s of shrinking
  // (harness/time-box.ts), so a failing CI run (40 conversations) ends within 80 s.
  const runs = Number(process.env.NFPROOF_KERNEL_RUNS ?? 40);
  const box = new TimeBox(20_000, runs * 1_500 + 20_000);
  it('random conversations agree with the kernel (fast-check, fixed seed)', async () => {
    let port = 50000;
    try {
      await fc.assert(
        fc.asyncProperty(
          convArb,
          box.wrap(async (sc) => {
            const ep = { ...DEFAULT_ENDPOINTS, cport: port++ };
            const { kernel, sim } = await play(sc, ep);
            if (JSON.stringify(kernel) !== JSON.stringify(sim)) {
              console.log(kernel.map((k, i) => `  ${k.seg}\n    kernel: ${k.ct} ${k.entry}\n    nfproof: ${sim[i].ct} ${sim[i].entry}`).join('\n'));
            }
            expect(sim).toEqual(kernel);
          }),
        ),
        { seed: Number(process.env.NFPROOF_SEED ?? 42), numRuns: runs, endOnFailure: false, ...box.options },
      );
    } finally {
      const cut = box.summary();
      if (cut) console.info(`tcp conversations: ${cut}`);
    }
  }, box.totalMs + 60_000);

  for (const [index, sc] of TCP_SCENARIOS.entries()) {
    it(sc.name, async () => {
      const ep = { ...DEFAULT_ENDPOINTS, cport: 41000 + index, ...(sc.ipv6 ? { client: 'fd00:1::2', server: 'fd00:2::2' } : {}) };
      const { kernel, sim } = await play(sc, ep);
      if (process.env.NFPROOF_VERBOSE || JSON.stringify(kernel) !== JSON.stringify(sim)) {
        console.log(`\n${sc.name}\n` + kernel.map((k, i) => `  ${k.seg}\n    kernel: ${k.ct} ${k.entry}\n    nfproof: ${sim[i].ct} ${sim[i].entry}`).join('\n'));
      }
      expect(sim).toEqual(kernel);
    });
  }
});
