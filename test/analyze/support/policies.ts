import { importIptablesSave } from '../../../src/backends/import/index.js';
import type { HostModel, Policy } from '../../../src/ir/policy.js';
import { type Family, parseAddress, parsePrefix } from '../../../src/util/ip.js';
import { NO_SPAN } from '../../../src/util/span.js';

/**
 * Test policies written as iptables-save text (made-up rules, never corpus lines), with an
 * optional host model given compactly.
 */
export function fromSave(text: string, opts: { family?: Family; host?: HostSpec; file?: string } = {}): Policy {
  const r = importIptablesSave(text.replace(/^\s+/gm, ''), opts.file ?? 'test.rules', undefined, opts.family ? { family: opts.family } : {});
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (!r.policy || errors.length) throw new Error(`test policy does not import: ${errors.map((d) => d.message).join('; ')}`);
  return opts.host ? { ...r.policy, host: hostModel(opts.host) } : r.policy;
}

export interface HostSpec {
  /** device → addresses with prefix (`10.0.0.1/24`) */
  readonly interfaces: Readonly<Record<string, readonly string[]>>;
  /** `dest via gw dev` triples; dest may be `default`. */
  readonly routes?: readonly { readonly dest: string; readonly via?: string; readonly dev: string }[];
  readonly sysctls?: Readonly<Record<string, string>>;
}

export function hostModel(spec: HostSpec): HostModel {
  return {
    name: 'test-host',
    interfaces: Object.entries(spec.interfaces).map(([device, addrs]) => ({
      name: device,
      device,
      addresses: addrs.map((a) => {
        const [addr, len] = a.split('/');
        const p = parseAddress(addr)!;
        return { family: p.family, addr: p.value, prefixLen: Number(len ?? (p.family === 'ipv4' ? 32 : 128)) };
      }),
      span: NO_SPAN,
    })),
    routes: (spec.routes ?? []).map((r) => {
      const isV6 = r.dest.includes(':') || (r.via ?? '').includes(':');
      const dest = r.dest === 'default' ? { family: (isV6 ? 'ipv6' : 'ipv4') as Family, addr: 0n, len: 0 } : parsePrefix(r.dest)!;
      return {
        family: dest.family,
        dest: { family: dest.family, addr: dest.addr, len: dest.len },
        ...(r.via ? { via: parseAddress(r.via)!.value } : {}),
        device: r.dev,
        span: NO_SPAN,
      };
    }),
    sysctls: spec.sysctls ?? {},
    span: NO_SPAN,
  };
}

export function addr(text: string): bigint {
  return parseAddress(text)!.value;
}
