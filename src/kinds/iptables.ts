import type { Diagnostic } from '../util/diagnostics.js';
import type { Family } from '../util/ip.js';
import type { Span } from '../util/span.js';

/**
 * The iptables side of a kind: how its IR node is written in iptables-restore syntax and read
 * back from iptables-save.
 *
 * iptables-save prints a rule as: the built-in options in a fixed order (-s -d -i -o -p -f),
 * then each `-m module` section with that module's options in the module's own print order,
 * then `-j`/`-g`. The emitter reproduces exactly that canonical order, so that the kernel's
 * `iptables-save` of loaded rules reads byte for byte like what nfproof emitted.
 */
export interface IptablesFragment {
  /** `null` for built-in options (-s, -d, -i, -o, -p, -f); else the `-m` module name. */
  readonly module: string | null;
  /** The option words, negation included: ['!', '--dport', '22']. */
  readonly args: readonly string[];
  /**
   * Sort key within the section: for built-ins the iptables-save order (BUILTIN_ORDER), for a
   * module the position of this option in the module's print function. Adjacent fragments of
   * the same module are merged into one `-m` section when the module allows it.
   */
  readonly order: number;
  /**
   * Start a new `-m` section even when the previous fragment of this match has the same module
   * (a negated ICMP type set is one `-m icmp ! --icmp-type T` section per type).
   */
  readonly newSection?: boolean;
}

export const BUILTIN_ORDER = { '-s': 0, '-d': 1, '-i': 2, '-o': 3, '-p': 4, '-f': 5 } as const;

export interface EmitContext {
  readonly family: Family;
  /** The rule's protocol when it has exactly one (after splitting), e.g. 6 — ports need it to pick `-m tcp`. */
  readonly proto?: number;
}

/** An option as it appears in an iptables-save line, with its arguments. */
export interface ImportedOption {
  /** `-s`, `--dport`, `--state`… */
  readonly name: string;
  readonly args: readonly string[];
  /** `!` stood before the option. */
  readonly negated: boolean;
  readonly span: Span;
}

export interface ImportContext {
  readonly family: Family;
  /** The rule's `-p` value (number), if any. */
  readonly proto?: number;
  /** Span of the `-m MODULE` words of the section being imported (for sections without options). */
  readonly sectionSpan?: Span;
  report(d: Diagnostic): void;
}

/**
 * Modules whose options, coming from different matches of one rule, can share one `-m` section
 * without changing the meaning: each option is an independent test (port and flags of tcp,
 * chunk types of sctp …). Emitters may gather them into the first section of that module, which
 * is also how an imported `-m sctp --dport 5 --chunk-types …` comes back unchanged. Other
 * modules must keep one section per match (for -m conntrack the grouping changes the meaning:
 * see ct-state.ts).
 */
export const MERGEABLE_MODULES: ReadonlySet<string> = new Set(['tcp', 'udp', 'sctp', 'dccp']);

/**
 * Which options of which module a match kind reads. `module: null` is the built-in options.
 * A section with no options at all (`-m rpfilter`) goes to the first kind claiming its module;
 * a section, or the options of one, that no kind claims goes to OPAQUE_MATCH_FALLBACK.
 */
export interface ImportClaim {
  readonly module: string | null;
  readonly options: readonly string[];
}
