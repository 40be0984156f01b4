import { Command, CommanderError } from 'commander';
import { UserInputError } from '../util/diagnostics.js';
import { type CliContext, EXIT, defaultContext, printDiagnostics } from './context.js';
import { VERBS } from './verbs.js';

/**
 * Entry point: parse argv with commander, run one verb, return the exit code
 * (0 ok, 1 findings or failed expectations, 2 usage or input error).
 */
export async function main(argv: readonly string[], ctx: CliContext = defaultContext()): Promise<number> {
  let code: number = EXIT.ok;
  const program = new Command('nfproof')
    .description('Policy-as-code compiler and verifier for Linux netfilter')
    .version('0.1.0')
    .showHelpAfterError('(run nfproof --help for usage)')
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    })
    .exitOverride();

  for (const verb of VERBS) {
    const cmd = program.command(verb.name).description(verb.summary);
    verb.configure(cmd);
    cmd.action(async (...args: unknown[]) => {
      // commander passes positional arguments, then the options object, then the command.
      const command = args[args.length - 1] as Command;
      code = await verb.run(ctx, command.args, command.opts());
    });
  }

  try {
    await program.parseAsync(argv as string[]);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit through here with code 0.
      return e.exitCode === 0 ? EXIT.ok : EXIT.input;
    }
    if (e instanceof UserInputError) {
      printDiagnostics(ctx, e.diagnostics);
      return EXIT.input;
    }
    throw e;
  }
  return code;
}
