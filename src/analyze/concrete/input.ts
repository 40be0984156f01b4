import type { CtStateName, NumericField } from '../../ir/fields.js';
import type { Family } from '../../util/ip.js';

/**
 * One concrete packet as the analyzer's model takes it: header and metadata values where it
 * enters the host, the state conntrack gives it, and the values of everything the model leaves
 * open (unmodelled matches, NAT picks inside a range, routing when there is no host model).
 * Witnesses are PacketInputs; the concrete interpreter runs them; the replay turns them into
 * simulator packets.
 */
export interface PacketInput {
  readonly family: Family;
  /** An interface device (a class representative of the interface domain), or a local socket. */
  readonly ingress: { readonly kind: 'iface'; readonly device: string } | { readonly kind: 'local' };
  /**
   * Values at ingress. Fields the packet does not have (ports of ICMP…) may be left out or are
   * ignored; fields left out that it does have read as 0.
   */
  readonly fields: Readonly<Partial<Record<NumericField, bigint>>>;
  /** The state conntrack gives the packet (before any NOTRACK in raw, which overrides it). */
  readonly ctState: Exclude<CtStateName, 'UNTRACKED'>;
  /** Values of unmodelled matches by constraint key (absent: false). */
  readonly opaque?: Readonly<Record<string, boolean>>;
  /** Everything else the model leaves open, by choice key (see CHOICE in interp.ts). */
  readonly choices?: Readonly<Record<string, bigint>>;
  /** For a reply: the NAT its connection got, undone on the way back. */
  readonly binding?: NatBinding;
}

/** What NAT did to a connection's first packet: the values before and after. */
export interface NatBinding {
  readonly snat?: { readonly fromAddr: bigint; readonly fromPort?: bigint; readonly toAddr: bigint; readonly toPort?: bigint };
  readonly dnat?: { readonly fromAddr: bigint; readonly fromPort?: bigint; readonly toAddr: bigint; readonly toPort?: bigint };
}
