/** `baton help [COMMAND]`: the list of commands, or one command's usage. */
import { UsageError, exitCodes, type Command, type Io } from "../command.ts";

/** What the overview shows of a command; the command's module need not be loaded for it. */
export interface CommandSummary {
  readonly name: string;
  readonly summary: string;
}

/** The overview `baton help` and `baton --help` print. */
export function formatOverview(commands: readonly CommandSummary[]): string {
  const width = Math.max(...commands.map((command) => command.name.length));
  const lines = commands.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`);
  return [
    "Usage: baton <command> [options]",
    "",
    "Durable workflows of serverless functions, on NATS JetStream.",
    "",
    "Commands:",
    ...lines,
    "",
    'Run "baton help <command>" or "baton <command> --help" for a command\'s options.',
    "",
  ].join("\n");
}

export const helpSummary: CommandSummary = {
  name: "help",
  summary: "Show the list of commands, or how to use one",
};

/**
 * `commands` lists every command (help included); `load` loads one by name (undefined when there
 * is none), so that only the command asked about is imported.
 */
export function createHelpCommand(
  commands: () => readonly CommandSummary[],
  load: (name: string) => Promise<Command | undefined>,
): Command {
  return {
    ...helpSummary,
    usage:
      "Usage: baton help [COMMAND]\n\nWithout COMMAND, lists the commands; with it, shows that command's usage.\n",
    async run(args: string[], io: Io): Promise<number> {
      if (args.length === 0) {
        io.stdout(formatOverview(commands()));
        return exitCodes.ok;
      }
      if (args.length > 1) throw new UsageError("help takes at most one command name");
      const name = args[0]!;
      const command = await load(name);
      if (!command) {
        io.stderr(`baton help: unknown command "${name}". Run "baton help" for the list of commands.\n`);
        return exitCodes.usage;
      }
      io.stdout(command.usage);
      return exitCodes.ok;
    },
  };
}
