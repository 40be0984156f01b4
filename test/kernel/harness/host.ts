import type { HostModel, Interface, Route } from '../../../src/ir/policy.js';
import { type Family, parseAddress, parsePrefix } from '../../../src/util/ip.js';
import { NO_SPAN } from '../../../src/util/span.js';

/**
 * A compact way to write a host model in scenarios, until (and besides) the .nfp parser:
 *
 *   hostModel({
 *     interfaces: { lan: ['eth0', '192.168.18.1/24', 'fd00:18::1/64'], wan: ['eth1', '192.168.20.1/24'] },
 *     routes: ['default via 192.168.20.254 dev wan'],
 *   })
 */
export interface HostSpec {
  readonly name?: string;
  /** Logical name → [device, ...addresses with prefix length]. */
  readonly interfaces: Readonly<Record<string, readonly [device: string, ...addrs: string[]]>>;
  /** `DEST|default [via ADDR] dev NAME [metric N]`; `default6` is the IPv6 default route. */
  readonly routes?: readonly string[];
  readonly sysctls?: Readonly<Record<string, string>>;
}

function must<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`host spec: ${what}`);
  return v;
}

export function hostModel(spec: HostSpec): HostModel {
  const interfaces: Interface[] = Object.entries(spec.interfaces).map(([name, [device, ...addrs]]) => ({
    name,
    device,
    addresses: addrs.map((text) => {
      const slash = text.indexOf('/');
      const a = must(parseAddress(text.slice(0, slash)), `bad address ${text}`);
      return { family: a.family, addr: a.value, prefixLen: Number(text.slice(slash + 1)) };
    }),
    span: NO_SPAN,
  }));
  const deviceOf = (name: string): string => must(interfaces.find((i) => i.name === name || i.device === name), `unknown interface ${name}`).device;
  const routes: Route[] = (spec.routes ?? []).map((text) => {
    const m = /^(\S+)(?: via (\S+))? dev (\S+)(?: metric (\d+))?$/.exec(text.trim());
    if (!m) throw new Error(`host spec: bad route ${text}`);
    const [, destText, viaText, dev, metric] = m;
    const via = viaText === undefined ? undefined : must(parseAddress(viaText), `bad gateway ${viaText}`);
    const family: Family = destText === 'default6' ? 'ipv6' : destText === 'default' ? (via?.family ?? 'ipv4') : must(parsePrefix(destText), `bad route ${text}`).family;
    const dest = destText.startsWith('default') ? { family, addr: 0n, len: 0 } : must(parsePrefix(destText), `bad destination ${destText}`);
    return {
      family,
      dest: { family: dest.family, addr: dest.addr, len: dest.len },
      ...(via ? { via: via.value } : {}),
      device: deviceOf(dev),
      ...(metric ? { metric: Number(metric) } : {}),
      span: NO_SPAN,
    };
  });
  return { name: spec.name ?? 'fw', interfaces, routes, sysctls: spec.sysctls ?? {}, span: NO_SPAN };
}
