import type { ImportedOption } from '../../kinds/iptables.js';
import { type Diagnostic, diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import type { Token } from './tokenize.js';

/**
 * The words of one rule (everything after `-A CHAIN`), grouped the way iptables reads them:
 * the built-in options (-s -d -i -o -p -f, wherever they stand), one section per `-m MODULE`
 * with its options, and the target (`-j`/`-g NAME` with its options). Options written before
 * any `-m` (`-p tcp --dport 22`, as scripts do) belong to the protocol's own match, which
 * iptables loads implicitly; they are collected as `loose` and placed by the caller.
 */
export interface ModuleSection {
  readonly module: string;
  /** The `-m MODULE` words (or the first loose option for an implicit section). */
  readonly span: Span;
  readonly options: ImportedOption[];
}

export interface TargetSpec {
  readonly name: string;
  readonly isGoto: boolean;
  readonly span: Span;
  readonly options: ImportedOption[];
}

export interface RuleSpec {
  readonly builtins: ImportedOption[];
  /** Sections in rule order; `null` marks where the loose options' implicit section goes. */
  readonly sections: (ModuleSection | null)[];
  readonly loose: ImportedOption[];
  target?: TargetSpec;
  counters?: readonly [bigint, bigint];
}

/** Built-in options and their long forms, mapped to the short name iptables-save prints. */
const BUILTIN: Readonly<Record<string, string>> = {
  '-s': '-s',
  '--source': '-s',
  '--src': '-s',
  '-d': '-d',
  '--destination': '-d',
  '--dst': '-d',
  '-i': '-i',
  '--in-interface': '-i',
  '-o': '-o',
  '--out-interface': '-o',
  '-p': '-p',
  '--protocol': '-p',
  '-f': '-f',
  '--fragment': '-f',
};

/**
 * Options whose one argument is free text. iptables-save writes such a text bare when it is
 * only letters, digits, `_` and `-`, so `--comment -A` is possible: the argument is taken
 * whatever it looks like, as iptables' getopt does for an option with a required argument.
 */
const TEXT_OPTIONS: ReadonlySet<string> = new Set(['--comment', '--log-prefix', '--nflog-prefix', '--name', '--hashlimit-name', '--helper', '--set-class']);

function isWord(t: Token | undefined, ...texts: string[]): boolean {
  return t !== undefined && !t.quoted && texts.includes(t.text);
}

/** `--dport`, `-s`: an option name (a lone `-` or a negative number is not). */
function looksLikeOption(t: Token | undefined): boolean {
  return t !== undefined && !t.quoted && /^--?[A-Za-z]/.test(t.text);
}

function optionSpan(name: Token, args: readonly Token[]): Span {
  return args.length ? name.spanTo(args[args.length - 1]) : name.span;
}

/**
 * Reads the option at tokens[i] with its arguments: the words up to the next option name or
 * `!`. The deprecated intrapositioned negation of old iptables-save (`-d ! 10.0.0.0/8`,
 * `--dport ! 22`) is accepted and reported as such.
 */
function readOption(tokens: readonly Token[], i: number, negated: boolean, fixedArity: number | undefined, report: (d: Diagnostic) => void): { option: ImportedOption; next: number } {
  const name = tokens[i];
  let j = i + 1;
  let neg = negated;
  if (isWord(tokens[j], '!') && tokens[j + 1] !== undefined && !looksLikeOption(tokens[j + 1]) && fixedArity !== 0) {
    if (neg) report(diag('error', 'E-import-negation', tokens[j].span, `\`${name.text}\` is negated twice`, 'write one `!` before the option'));
    report(
      diag('warning', 'W-import-old-negation', tokens[j].span, `\`${name.text} ! …\` is the old way of negating; iptables 1.8 refuses it`, `write \`! ${name.text} …\` (nfproof reads it that way)`),
    );
    neg = true;
    j++;
  }
  const args: Token[] = [];
  while (j < tokens.length && (fixedArity === undefined ? !isWord(tokens[j], '!') && !looksLikeOption(tokens[j]) : args.length < fixedArity)) {
    args.push(tokens[j++]);
  }
  return { option: { name: BUILTIN[name.text] ?? name.text, args: args.map((a) => a.text), negated: neg, span: optionSpan(name, args) }, next: j };
}

export function parseRuleSpec(tokens: readonly Token[], report: (d: Diagnostic) => void): RuleSpec {
  const spec: RuleSpec = { builtins: [], sections: [], loose: [] };
  let current: ModuleSection | TargetSpec | undefined;
  let pendingNeg: Token | undefined;
  let i = 0;
  const takeNeg = (): boolean => {
    const n = pendingNeg !== undefined;
    pendingNeg = undefined;
    return n;
  };
  while (i < tokens.length) {
    const tk = tokens[i];
    if (isWord(tk, '!')) {
      if (pendingNeg) report(diag('error', 'E-import-negation', tk.span, 'two `!` in a row', 'write one `!` before the option to negate'));
      pendingNeg = tk;
      i++;
      continue;
    }
    if (isWord(tk, '-m', '--match')) {
      if (pendingNeg) report(diag('error', 'E-import-negation', pendingNeg.span, '`!` cannot negate a whole `-m` match', 'put `!` before one of its options'));
      pendingNeg = undefined;
      const mod = tokens[i + 1];
      if (mod === undefined || looksLikeOption(mod)) {
        report(diag('error', 'E-import-syntax', tk.span, '`-m` needs a module name', 'e.g. -m state --state ESTABLISHED'));
        i++;
        continue;
      }
      const section: ModuleSection = { module: mod.text, span: tk.spanTo(mod), options: [] };
      spec.sections.push(section);
      current = section;
      i += 2;
      continue;
    }
    if (isWord(tk, '-j', '--jump', '-g', '--goto')) {
      if (pendingNeg) report(diag('error', 'E-import-negation', pendingNeg.span, '`!` cannot negate a target'));
      pendingNeg = undefined;
      const name = tokens[i + 1];
      if (name === undefined || looksLikeOption(name)) {
        report(diag('error', 'E-import-syntax', tk.span, `\`${tk.text}\` needs a target or chain name`, 'e.g. -j ACCEPT'));
        i++;
        continue;
      }
      if (spec.target) {
        report(diag('error', 'E-import-two-targets', tk.span, 'a rule has one target; this is the second', 'split it into two rules'));
      }
      const target: TargetSpec = { name: name.text, isGoto: tk.text === '-g' || tk.text === '--goto', span: tk.spanTo(name), options: [] };
      spec.target ??= target;
      current = target;
      i += 2;
      continue;
    }
    if (!tk.quoted && BUILTIN[tk.text] !== undefined) {
      const { option, next } = readOption(tokens, i, takeNeg(), BUILTIN[tk.text] === '-f' ? 0 : 1, report);
      if (option.name !== '-f' && option.args.length !== 1) {
        report(diag('error', 'E-import-syntax', tk.span, `\`${tk.text}\` needs a value`));
      } else {
        spec.builtins.push(option);
      }
      i = next;
      continue;
    }
    if (isWord(tk, '-c', '--set-counters')) {
      const [p, b] = [tokens[i + 1], tokens[i + 2]];
      if (p && b && /^\d+$/.test(p.text) && /^\d+$/.test(b.text)) spec.counters = [BigInt(p.text), BigInt(b.text)];
      else report(diag('error', 'E-import-syntax', tk.span, '`-c` needs two numbers: packets and bytes'));
      i += 3;
      continue;
    }
    if (looksLikeOption(tk)) {
      const { option, next } = readOption(tokens, i, takeNeg(), TEXT_OPTIONS.has(tk.text) && tokens[i + 1] !== undefined ? 1 : undefined, report);
      if (current === undefined) {
        if (spec.loose.length === 0) spec.sections.push(null);
        spec.loose.push(option);
      } else {
        current.options.push(option);
      }
      i = next;
      continue;
    }
    report(diag('error', 'E-import-syntax', tk.span, `unexpected \`${tk.text}\``, 'each value belongs after an option such as -s, --dport or --state'));
    i++;
  }
  if (pendingNeg) report(diag('error', 'E-import-negation', pendingNeg.span, '`!` at the end of the rule negates nothing'));
  return spec;
}
