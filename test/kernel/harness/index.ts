/**
 * The kernel differential harness: build a firewall from a host model in network namespaces,
 * load iptables rules, replay simulator inputs on the real kernel, read back conntrack and
 * counters, and compare with the simulator. See test/kernel/README.md.
 */
import type { HostModel } from '../../../src/ir/policy.js';
import { type Topology as TopologyT, Topology, type TopologyOptions } from './topology.js';

export { PacketAgent } from './agent.js';
export * from './craft.js';
export { hostModel, type HostSpec } from './host.js';
export * from './observe.js';
export * from './run.js';
export * from './topology.js';
export * from './compare.js';
export * from './differential.js';
export * from './scenario.js';
export * from './format.js';

/** Builds a topology, runs `fn`, and always tears everything down. */
export async function withTopology<T>(host: HostModel, opts: TopologyOptions, fn: (t: TopologyT) => Promise<T>): Promise<T> {
  const topo = await Topology.create(host, opts);
  try {
    return await fn(topo);
  } finally {
    topo.dispose();
  }
}
