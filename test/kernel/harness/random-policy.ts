import fc from 'fast-check';
import type { HostModel, Policy, Route, Ruleset } from '../../../src/ir/policy.js';
import type { Match, Target } from '../../../src/kinds/index.js';
import { routeMetric } from '../../../src/netfilter/host.js';
import { policyArb } from '../../gen/policy.js';
import { hostFamilies } from './traffic.js';

/**
 * The random policies of the differential property (test/gen/policy.ts, restricted to what the
 * kernel and the harness can reproduce), and what the property does with one before running it.
 *
 * Kinds left out, and why: mac (our frames carry the peer's MAC; inputs have none), limit/
 * hashlimit/recent/connlimit (real-time token buckets and per-source state), ipset (no sets are
 * loaded), ipsec/physdev/rpfilter/sctp-dccp/fragment (no xfrm, no bridge, routing checks and
 * protocols the traffic generator does not make; fragments are reassembled by the kernel's
 * conntrack), opaque (not modelled by definition). Targets: queue/tproxy (need a userspace
 * program or a socket), tcpmss (rewrites MSS, not modelled), opaque.
 */
export const DIFF_MATCHES: readonly Match['kind'][] = [
  'addr', 'port', 'proto', 'iface', 'ct-state', 'ct-status', 'ct-direction', 'ct-tuple', 'tcp-flags', 'tcp-option',
  'icmp', 'mark', 'addrtype', 'dscp', 'ttl', 'pkttype', 'length', 'helper', 'owner',
];
export const DIFF_TARGETS: readonly Target['kind'][] = [
  'verdict', 'reject', 'return', 'log', 'nflog', 'snat', 'dnat', 'masquerade', 'redirect', 'netmap', 'notrack', 'ct',
  'mark-set', 'dscp-set', 'ttl-set', 'checksum', 'classify', 'counter',
];

/**
 * Random policies for the differential property.
 *
 * Two things about policyArb, which is built on `fc.gen()`, matter on long runs:
 *  - A gen-based arbitrary never advances the random source it is handed (it draws from a
 *    clone), so `.filter()` on it retries the same draw forever when the predicate says no:
 *    with seed 1001 the 66th policy has a host without any address, and the worker grew to
 *    4 GB retrying it. Policies the harness cannot run are therefore not filtered here; the
 *    property skips them (see `runnable`).
 *  - One `fc.gen()` instance caches every arbitrary its draws name, and the generator's draws
 *    name a fresh closure each time: the cache grows by about 0.5 MB per policy for as long as
 *    the arbitrary lives (500 MB after 1000 policies, more while shrinking). Building the
 *    arbitrary afresh per value (`chain` from a constant, which draws nothing, so seeds give the
 *    same policies as before) lets each cache go with its policy.
 */
export function differentialPolicyArb(): fc.Arbitrary<Policy> {
  return rebuiltPerDraw(() =>
    policyArb({
      tables: ['raw', 'mangle', 'nat', 'filter'],
      matchKinds: DIFF_MATCHES,
      targetKinds: DIFF_TARGETS,
      expectations: false,
      maxRules: 4,
    }),
  );
}

/**
 * An arbitrary built afresh for every value it draws, so that what one `fc.gen()` instance
 * caches goes with its value (see above); `chain` from a constant draws nothing of its own, so a
 * seed gives the same values as `make()` itself would.
 */
export function rebuiltPerDraw<T>(make: () => fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.constant(null).chain(make);
}

/** Why the property cannot run this policy on the kernel, or undefined when it can. */
export function notRunnable(p: Policy): string | undefined {
  if (!p.host) return 'no host model';
  if (hostFamilies(p.host).length === 0) return 'host without addresses (no traffic to send)';
  return undefined;
}

/**
 * Routes the kernel cannot hold at once (a second route with the same destination and metric
 * is refused with "File exists"; for IPv6, metric 0 is 1024) are left out of the host, for
 * both sides.
 */
export function kernelHost(host: HostModel): HostModel {
  const seen = new Set<string>();
  const routes: Route[] = [];
  for (const r of host.routes) {
    const key = `${r.family} ${r.dest.addr}/${r.dest.len} ${routeMetric(r.family, r.metric)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    routes.push(r);
  }
  return { ...host, routes };
}

/**
 * Gives every rule its own source line ("random.nfp:N"), so that the emitter's comments tell
 * which iptables rules came from which policy rule and counters compare rule by rule even
 * through split rules and auxiliary chains (generated rules all carry NO_SPAN otherwise).
 */
export function numberRules(p: Policy): Policy {
  let line = 0;
  const span = () => {
    line++;
    return { file: 'random.nfp', start: { line, col: 1, offset: 0 }, end: { line, col: 2, offset: 1 } };
  };
  const renumber = (rs: Ruleset): Ruleset => ({
    ...rs,
    tables: rs.tables.map((t) => ({ ...t, chains: t.chains.map((c) => ({ ...c, rules: c.rules.map((r) => ({ ...r, span: span() })) })) })),
  });
  return { ...p, rulesets: { ipv4: renumber(p.rulesets.ipv4), ipv6: renumber(p.rulesets.ipv6) } };
}
