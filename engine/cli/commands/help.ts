/** `baton help [COMMAND]`: the list of commands, or one command's usage. */
import { UsageError, exitCodes, type Command, type Io } from "../command.ts";

/** The overview `baton help` and `baton --help` print. */
export function formatOverview(commands: readonly Command[]): string {
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

export function createHelpCommand(commands: () => readonly Command[]): Command {
  return {
    name: "help",
    summary: "Show the list of commands, or how to use one",
    usage:
      "Usage: baton help [COMMAND]\n\nWithout COMMAND, lists the commands; with it, shows that command's usage.\n",
    run(args: string[], io: Io): Promise<number> {
      const all = commands();
      if (args.length === 0) {
        io.stdout(formatOverview(all));
        return Promise.resolve(exitCodes.ok);
      }
      if (args.length > 1) throw new UsageError("help takes at most one command name");
      const name = args[0]!;
      const command = all.find((candidate) => candidate.name === name);
      if (!command) {
        io.stderr(`baton help: unknown command "${name}". Run "baton help" for the list of commands.\n`);
        return Promise.resolve(exitCodes.usage);
      }
      io.stdout(command.usage);
      return Promise.resolve(exitCodes.ok);
    },
  };
}
