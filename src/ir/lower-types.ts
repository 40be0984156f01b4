import type { Match, Target } from '../kinds/index.js';
import type { Family, IpPrefix } from '../util/ip.js';
import type { Span } from '../util/span.js';
import type { Expectation, InterfaceAddress } from './policy.js';

/**
 * The input of lowering: a policy as written, after its clauses were parsed by the kinds but
 * before anything was resolved. Names are still as written (chain `input`, interface `lan`),
 * tables may be `inet` (both families) and nothing is checked yet. src/syntax builds this from
 * .nfp files; src/ir/lower.ts turns it into the typed IR (src/ir/policy.ts).
 */
export interface SurfacePolicy {
  readonly host?: SurfaceHost;
  readonly tables: readonly SurfaceTable[];
  /** Flows are parsed; their interface names are resolved by lowering like rules'. */
  readonly expectations: readonly Expectation[];
  /** Files read, root first. */
  readonly sources: readonly string[];
}

export interface Named {
  readonly text: string;
  readonly span: Span;
}

export interface SurfaceHost {
  readonly name: string;
  readonly interfaces: readonly SurfaceInterface[];
  readonly routes: readonly SurfaceRoute[];
  readonly sysctls: readonly { readonly name: Named; readonly value: string }[];
  readonly span: Span;
}

export interface SurfaceInterface {
  readonly name: Named;
  /** The kernel device; the logical name when `dev` is not written. */
  readonly device: Named;
  readonly addresses: readonly InterfaceAddress[];
  readonly span: Span;
}

export interface SurfaceRoute {
  readonly family: Family;
  readonly dest: IpPrefix;
  readonly via?: bigint;
  /** Interface as written (logical name or device); absent: the interface whose subnet holds `via`. */
  readonly dev?: Named;
  readonly metric?: number;
  readonly span: Span;
}

export type TableFamily = Family | 'inet';

export interface SurfaceTable {
  readonly family: TableFamily;
  readonly name: Named;
  readonly chains: readonly SurfaceChain[];
  readonly span: Span;
}

export interface SurfaceChain {
  readonly name: Named;
  readonly policy?: Named;
  readonly rules: readonly SurfaceRule[];
  readonly span: Span;
}

export interface SurfaceRule {
  /** `ip` / `ip6` written at the start of the rule. */
  readonly family?: Family;
  readonly matches: readonly Match[];
  readonly target: Target;
  readonly comment?: string;
  readonly span: Span;
}
