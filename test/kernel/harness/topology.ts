import type { HostModel } from '../../../src/ir/policy.js';
import { type Family, formatAddress } from '../../../src/util/ip.js';
import { Netns } from '../../support/netns.js';
import { PacketAgent } from './agent.js';

/**
 * A firewall host built from a policy's host model, inside network namespaces:
 *
 *     peer ns "lan" ── veth ── eth0 ┐
 *                                  ├─ firewall ns (addresses, routes, forwarding, the rules)
 *     peer ns "wan" ── veth ── eth1 ┘
 *
 * Peers are wire taps, not hosts: they have no addresses and IPv6 is off there, so their own
 * stack never answers the traffic we craft. The agent sends frames from a peer's veth and
 * captures everything the firewall puts on it. The firewall's veths run with ARP/ND off
 * (NOARP), so the firewall needs no neighbour answers: it addresses every frame to its own
 * MAC, which the peer stack ignores (PACKET_OTHERHOST) and the tap captures.
 *
 * Two hooks of our own in the firewall, in a separate nftables table that iptables never shows:
 *  - input, priority INT_MAX, created before any rule is loaded: nf_hook_entries_grow inserts a
 *    later hook of equal priority in front of ours, so conntrack's confirm (also INT_MAX) runs
 *    first. Our chain copies each packet that survived every hook to NFLOG (that is "delivered
 *    locally", after DNAT) and drops it, so the local TCP/UDP/ICMP stack never answers (no RST
 *    for a closed port, no echo reply, no port unreachable), which the simulator does not model.
 *  - output, priority -400 (before raw): drops the IPv6 multicast listener reports and router
 *    solicitations the kernel sends by itself when an interface comes up.
 * The firewall has only the addresses its model declares (no IPv6 link-local addresses are
 * generated) and sends no IPv4 redirects.
 * ICMP error rate limits are switched off in the firewall (icmp_ratemask): the simulator sends
 * every REJECT/ICMP answer, so the kernel must not be throttling them. Transmit checksum
 * offload is off on the firewall's veths, so packets the firewall makes itself (a REJECT's
 * reset) carry finished checksums as they would from a real NIC, and every capture is verified.
 */
/**
 * The firewall namespace's settings that differ from a default host and that the simulator
 * models (ICMP error rate limits off, no IPv4 redirects): every simulator compared with the
 * harness must be given them, or it answers less (or more) than the kernel for its own
 * reasons. Scenario sysctls come on top, for both sides.
 */
export const SIMULATOR_SYSCTLS: Readonly<Record<string, string>> = {
  'net.ipv4.icmp_ratemask': '0',
  'net.ipv6.icmp.ratemask': '',
  'net.ipv4.conf.all.send_redirects': '0',
};

/** NFLOG group and prefix of our delivery hook; copies from a policy's own NFLOG rules carry neither. */
export const NFLOG_GROUP = 65432;
export const NFLOG_PREFIX = 'nfproof-delivered';
export const HARNESS_TABLE = 'nfproof_harness';

export type IptablesBackend = 'legacy' | 'nft';

export interface TopologyOptions {
  /** iptables flavour for the rules: x_tables (legacy) or nf_tables (nft). Default legacy. */
  readonly backend?: IptablesBackend;
  /** Extra sysctls for the firewall namespace; short conntrack names are fine (`nf_conntrack_tcp_loose`). */
  readonly sysctls?: Readonly<Record<string, string>>;
  /** Reverse path filtering on the firewall (0 off, 1 strict, 2 loose). Default 0: the simulator does not model it. */
  readonly rpFilter?: 0 | 1 | 2;
  /** CPU the agent pins itself to (its sends' softirq work runs there). */
  readonly cpu?: number;
}

export interface Link {
  /** Logical interface name (`lan`). */
  readonly name: string;
  /** Firewall-side device (`eth0`). */
  readonly device: string;
  readonly peer: Netns;
  readonly peerDevice: string;
  readonly fwMac: Uint8Array;
  readonly peerMac: Uint8Array;
  readonly fwIfindex: number;
}

/** Turns `nf_conntrack_tcp_loose` into `net.netfilter.nf_conntrack_tcp_loose`; full names stay. */
export function sysctlName(key: string): string {
  return key.startsWith('net.') ? key : key.startsWith('nf_conntrack') ? `net.netfilter.${key}` : `net.${key}`;
}

function macOf(ns: Netns, dev: string): { mac: Uint8Array; ifindex: number } {
  const info = JSON.parse(ns.run('ip', ['-j', 'link', 'show', 'dev', dev])) as { address: string; ifindex: number }[];
  return { mac: Uint8Array.from(info[0].address.split(':').map((x) => parseInt(x, 16))), ifindex: info[0].ifindex };
}

function familyFlag(f: Family): string {
  return f === 'ipv4' ? '-4' : '-6';
}

export class Topology {
  private disposed = false;

  private constructor(
    readonly host: HostModel,
    readonly fw: Netns,
    readonly links: ReadonlyMap<string, Link>,
    readonly agent: PacketAgent,
    readonly backend: IptablesBackend,
    readonly loIfindex: number,
  ) {}

  /** Builds the namespaces, the veths and the agent's sockets. Everything is removed by dispose(), also when building fails half-way. */
  static async create(host: HostModel, opts: TopologyOptions = {}): Promise<Topology> {
    const made: Netns[] = [];
    let agent: PacketAgent | undefined;
    try {
      const fw = Netns.create('fw');
      made.push(fw);
      fw.run('nft', ['-f', '-'], harnessNft());
      const rp = String(opts.rpFilter ?? 0);
      const sysctls: Record<string, string> = {
        'net.ipv4.ip_forward': '1',
        'net.ipv6.conf.all.forwarding': '1',
        'net.ipv4.conf.all.rp_filter': rp,
        'net.ipv4.conf.default.rp_filter': rp,
        'net.ipv4.icmp_ratemask': '0',
        'net.ipv6.icmp.ratemask': '',
        'net.ipv6.conf.default.accept_ra': '0',
        'net.ipv6.conf.default.router_solicitations': '0',
        // The host is what its model declares: no link-local addresses of its own making
        // (addr_gen_mode 1 = none), no IPv4 redirects for traffic forwarded back out the
        // interface it came in by (the simulator does not model redirects; IPv6 has no switch
        // for them, the traffic generator avoids such hairpins).
        'net.ipv6.conf.default.addr_gen_mode': '1',
        'net.ipv4.conf.all.send_redirects': '0',
        'net.ipv4.conf.default.send_redirects': '0',
      };
      for (const [k, v] of Object.entries(sysctls)) {
        if (!fw.sysctl(k, v)) throw new Error(`could not set ${k}=${v} in the firewall namespace`);
      }
      const links = new Map<string, Link>();
      for (const iface of host.interfaces) {
        const peer = Netns.create(iface.name);
        made.push(peer);
        for (const k of ['net.ipv6.conf.all.disable_ipv6', 'net.ipv6.conf.default.disable_ipv6']) peer.sysctl(k, '1');
        const peerDevice = 'wire';
        fw.run('ip', ['link', 'add', iface.device, 'type', 'veth', 'peer', 'name', peerDevice, 'netns', peer.name]);
        fw.run('ip', ['link', 'set', iface.device, 'arp', 'off']);
        peer.run('ip', ['link', 'set', peerDevice, 'arp', 'off']);
        for (const a of iface.addresses) {
          const text = `${formatAddress(a.family, a.addr)}/${a.prefixLen}`;
          fw.run('ip', [familyFlag(a.family), 'addr', 'add', text, 'dev', iface.device, ...(a.family === 'ipv6' ? ['nodad'] : [])]);
        }
        peer.run('ip', ['link', 'set', peerDevice, 'up']);
        fw.run('ip', ['link', 'set', iface.device, 'up']);
        const f = macOf(fw, iface.device);
        const p = macOf(peer, peerDevice);
        links.set(iface.device, { name: iface.name, device: iface.device, peer, peerDevice, fwMac: f.mac, peerMac: p.mac, fwIfindex: f.ifindex });
      }
      for (const r of host.routes) {
        const dest = r.dest.len === 0 ? 'default' : `${formatAddress(r.family, r.dest.addr)}/${r.dest.len}`;
        fw.run('ip', [
          familyFlag(r.family),
          'route',
          'add',
          dest,
          ...(r.via !== undefined ? ['via', formatAddress(r.family, r.via)] : []),
          'dev',
          r.device,
          ...(r.metric !== undefined ? ['metric', String(r.metric)] : []),
        ]);
      }
      for (const [k, v] of Object.entries({ ...host.sysctls, ...(opts.sysctls ?? {}) })) {
        const name = sysctlName(k);
        if (!fw.sysctl(name, v)) {
          const now = fw.exec('sysctl', ['-n', name]).stdout.trim();
          throw new Error(`the kernel refused ${name}=${v} in a network namespace (it stays ${now || 'unset'}); this scenario cannot be checked on the kernel`);
        }
      }
      // The rp_filter that applies is the maximum of "all" and the device's own.
      for (const l of links.values()) fw.sysctl(`net.ipv4.conf.${l.device}.rp_filter`, rp);

      agent = await PacketAgent.start(opts.cpu ?? 0);
      for (const l of links.values()) {
        await agent.request('txcsum', { ns: fw.name, dev: l.device, on: false });
        await agent.tap(peerTap(l.device), l.peer.name, l.peerDevice);
        await agent.tap(fwTap(l.device), fw.name, l.device, true);
      }
      await agent.tap(fwTap('lo'), fw.name, 'lo', true);
      await agent.nflog('local', fw.name, NFLOG_GROUP);
      await agent.raw('local4', fw.name, 4);
      await agent.raw('local6', fw.name, 6);
      const lo = macOf(fw, 'lo');
      return new Topology(host, fw, links, agent, opts.backend ?? 'legacy', lo.ifindex);
    } catch (e) {
      agent?.close();
      for (const ns of made.reverse()) ns.dispose();
      throw e;
    }
  }

  /** The iptables-restore / -save command for a family, in the chosen flavour. */
  tool(family: Family, what: 'restore' | 'save'): string {
    return `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${this.backend}-${what}`;
  }

  /** Loads an iptables-restore file into the firewall (replacing the tables it names). */
  loadRules(family: Family, text: string): void {
    const r = this.fw.exec(this.tool(family, 'restore'), [], text);
    if (r.status !== 0) throw new Error(`${this.tool(family, 'restore')} refused the rules:\n${r.stderr.trim()}\n--- rules ---\n${text}`);
  }

  /** `iptables-save -c` of the firewall. */
  saveRules(family: Family): string {
    return this.fw.run(this.tool(family, 'save'), ['-c']);
  }

  /** The firewall device for an interface, by device or logical name. */
  link(deviceOrName: string): Link {
    const l = this.links.get(deviceOrName) ?? [...this.links.values()].find((x) => x.name === deviceOrName);
    if (!l) throw new Error(`the host model has no interface ${deviceOrName}`);
    return l;
  }

  /**
   * Back to a clean state between sequences run on one topology: no conntrack entries or
   * expectations, all rule and policy counters zero. Waits (bounded) until nf_conntrack_count
   * reads 0, since entries are freed after the flush returns.
   */
  async reset(families: readonly Family[]): Promise<void> {
    // One shell for all of it: flush entries and expectations, zero every table's counters.
    const zero = families
      .map((f) => `for t in $(${this.tool(f, 'save')} | sed -n 's/^\\*//p'); do ${f === 'ipv4' ? 'iptables' : 'ip6tables'}-${this.backend} -t "$t" -Z || exit 1; done`)
      .join('\n');
    this.fw.run('sh', ['-c', `conntrack -F 2>/dev/null; conntrack -F expect 2>/dev/null\n${zero}`]);
    const deadline = performance.now() + 2000;
    for (;;) {
      const count = Number(this.fw.run('cat', ['/proc/sys/net/netfilter/nf_conntrack_count']).trim());
      if (count === 0) break;
      if (performance.now() > deadline) throw new Error(`nf_conntrack_count stays ${count} after conntrack -F`);
      await new Promise((r) => setTimeout(r, 10));
    }
    await this.agent.drain();
  }

  /** Device name for an ifindex inside the firewall (NFLOG reports indexes). */
  deviceOfIndex(ifindex: number): string | undefined {
    if (ifindex === this.loIfindex) return 'lo';
    return [...this.links.values()].find((l) => l.fwIfindex === ifindex)?.device;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.agent.close();
    for (const l of this.links.values()) l.peer.dispose();
    this.fw.dispose();
  }
}

export function peerTap(device: string): string {
  return `peer:${device}`;
}

export function fwTap(device: string): string {
  return `fw:${device}`;
}

function harnessNft(): string {
  return [
    `table inet ${HARNESS_TABLE} {`,
    `  chain delivered {`,
    `    type filter hook input priority 2147483647; policy accept;`,
    `    log group ${NFLOG_GROUP} prefix "${NFLOG_PREFIX}" drop`,
    `  }`,
    `  chain quiet {`,
    `    type filter hook output priority -400; policy accept;`,
    `    icmpv6 type { mld-listener-report, mld2-listener-report, mld-listener-done, nd-router-solicit } drop`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}
