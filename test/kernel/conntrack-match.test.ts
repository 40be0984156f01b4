import { describe, expect, it } from 'vitest';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type KernelRun, type Scenario, at, checkScenario, restore, tcp } from './harness/index.js';

/**
 * What `-m conntrack` tests mean for a packet that has no connection (INVALID or UNTRACKED).
 * xt_conntrack.c conntrack_mt: after the --ctstate test, `if (ct == NULL) return match_flags &
 * XT_CONNTRACK_STATE` — so without a connection a match with a --ctstate test is decided by
 * that test alone (its other tests are skipped), and a match without one fails, whatever its
 * `!`s say (--ctdir REPLY fails too, though ORIGINAL is the direction of nothing here). Found by the differential property (the simulator matched `! --ctstatus` on an
 * INVALID packet). ~1 s.
 */
const env = harnessAvailable();

/** A SYN/ACK nobody asked for: no connection exists and none is created (INVALID). */
const stray = tcp('198.51.100.7:80', '192.168.18.2:40000', 'SA', { seq: 1, ack: 1 });

const counts = (run: KernelRun) => run.final.chains.find((c) => c.table === 'filter' && c.chain === 'FORWARD')!.rules.map((r) => r.packets);

const noConnection: Scenario = {
  name: 'without a connection, ! --ctstatus does not match; next to --ctstate only the state decides',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      filter: [
        '-A FORWARD -m conntrack ! --ctstatus ASSURED',
        '-A FORWARD -m conntrack --ctdir REPLY',
        '-A FORWARD -m conntrack ! --ctproto 17',
        '-A FORWARD -m conntrack --ctstate INVALID --ctstatus ASSURED',
        '-A FORWARD -m conntrack --ctstate INVALID',
      ],
    }),
  },
  inputs: [at(0, 'eth1', stray)],
  expectKernel(run) {
    expect(run.steps[0].emitted.map((e) => e.device)).toEqual(['eth0']);
    expect(counts(run)).toEqual([0, 0, 0, 1, 1]);
    expect(run.final.entries).toEqual([]);
  },
};

describe.skipIf(!env.run)('conntrack match on packets without a connection (kernel)', () => {
  it(noConnection.name, async () => {
    await checkScenario(noConnection);
  });
});
