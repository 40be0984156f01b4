import type { Command } from 'commander';
import type { CliContext } from './context.js';

/**
 * One CLI verb. `configure` declares arguments and options on the commander command;
 * `run` does the work through the library and returns the exit code.
 */
export interface Verb {
  readonly name: string;
  /** One line for `nfproof --help`. */
  readonly summary: string;
  configure(cmd: Command): void;
  run(ctx: CliContext, args: readonly string[], opts: Record<string, unknown>): Promise<number>;
}
