import { type IptablesFragment, MERGEABLE_MODULES } from '../../kinds/iptables.js';
import { quoteIptablesString } from '../../util/iptables-quote.js';

/**
 * Assembles one `-A CHAIN …` line from the fragments of a rule's matches, in the canonical form
 * iptables-save prints, so that what nfproof writes is what the kernel gives back:
 *
 * - built-in options first (-s -d -i -o -p -f, whatever order the matches came in);
 * - then one `-m MODULE` section per match, in the rule's match order, options sorted by the
 *   module's print order;
 * - sections of `tcp`, `udp`, `sctp` and `dccp` (MERGEABLE_MODULES, declared by the kinds) are
 *   merged into the first one: iptables-nft turns tcp/udp options into native payload
 *   expressions and prints them back as a single match (checked on the kernel: `-m tcp
 *   --sport 1 -m state … -m tcp --dport 2` comes back from iptables-nft-save as `-m tcp
 *   --sport 1 --dport 2 -m state …`, from legacy unchanged), and an sctp/dccp section read
 *   from iptables-save (`-m sctp --dport 5 --chunk-types …`) must be written back as one.
 *   Every other module keeps one section per match in both variants, unless a fragment asks
 *   for a new section (newSection);
 * - then `-m comment`, then the target.
 */
export const MERGED_MODULES: ReadonlySet<string> = MERGEABLE_MODULES;

export interface Section {
  readonly module: string;
  readonly fragments: IptablesFragment[];
}

/** Groups the fragments of the matches into the built-in list and module sections. */
export function sectionsOf(matchFragments: readonly (readonly IptablesFragment[])[]): {
  builtins: IptablesFragment[];
  sections: Section[];
} {
  const builtins: IptablesFragment[] = [];
  const sections: Section[] = [];
  const merged = new Map<string, Section>();
  for (const frags of matchFragments) {
    let last: Section | undefined;
    for (const f of frags) {
      if (f.module === null) {
        builtins.push(f);
        continue;
      }
      const into = f.newSection ? undefined : MERGED_MODULES.has(f.module) ? merged.get(f.module) : last?.module === f.module ? last : undefined;
      if (into) {
        into.fragments.push(f);
        last = into;
        continue;
      }
      const s: Section = { module: f.module, fragments: [f] };
      sections.push(s);
      if (MERGED_MODULES.has(f.module)) merged.set(f.module, s);
      last = s;
    }
  }
  const byOrder = (a: IptablesFragment, b: IptablesFragment) => a.order - b.order;
  builtins.sort(byOrder);
  for (const s of sections) s.fragments.sort(byOrder);
  return { builtins, sections };
}

/** The option name of a fragment (`--dport` in `! --dport 22`). */
function optionName(f: IptablesFragment): string | undefined {
  return f.args.find((a) => a !== '!');
}

/**
 * Options that occur twice in one merged section. iptables-nft keeps only one of them (it
 * silently turned `-m tcp --dport 2 -m tcp ! --dport 3` into `-m tcp ! --dport 3`), so
 * such a rule cannot be written faithfully and the caller reports it.
 */
export function duplicateOptions(sections: readonly Section[]): string[] {
  const out: string[] = [];
  for (const s of sections) {
    if (!MERGED_MODULES.has(s.module)) continue;
    const seen = new Set<string>();
    for (const f of s.fragments) {
      const name = optionName(f);
      if (name === undefined) continue;
      if (seen.has(name)) out.push(`-m ${s.module} ${name}`);
      seen.add(name);
    }
  }
  return out;
}

/**
 * Built-in options that occur twice (`-i eth0 … ! -i eth1`): an iptables rule holds each at
 * most once ("multiple -i flags not allowed").
 */
export function repeatedBuiltins(builtins: readonly IptablesFragment[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const f of builtins) {
    const name = optionName(f);
    if (name === undefined) continue;
    if (seen.has(name)) out.push(name);
    seen.add(name);
  }
  return out;
}

const QUOTED = /^"(?:[^"\\]|\\.)*"$/;

/**
 * Kinds write string options already in iptables-save's quoting (quoteIptablesString); this
 * is a safety net for a word that would not survive iptables-restore's tokenizer as it is.
 */
export function safeWord(w: string): string {
  if (w !== '' && !/[\s"'\\]/.test(w)) return w;
  return QUOTED.test(w) ? w : quoteIptablesString(w);
}

export function assembleLine(
  chain: string,
  parts: { builtins: readonly IptablesFragment[]; sections: readonly Section[] },
  comment: readonly string[],
  target: readonly string[],
): string {
  const words: string[] = ['-A', chain];
  for (const f of parts.builtins) words.push(...f.args.map(safeWord));
  for (const s of parts.sections) {
    words.push('-m', s.module);
    for (const f of s.fragments) words.push(...f.args.map(safeWord));
  }
  words.push(...comment);
  words.push(...target.map(safeWord));
  return words.join(' ');
}
