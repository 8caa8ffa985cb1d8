/**
 * The `baton` command: finds the subcommand named by the first argument and runs it. Each
 * subcommand lives in its own file under `commands/`, listed in commands/index.ts and imported
 * only when it runs (or its usage is shown): `baton --help` loads no command at all.
 */
import { commonJsExports } from "../../sdk/cjs-interop.ts";
import { NatsAccessError } from "../../sdk/nats-access.ts";
import { UsageError, exitCodes, type Command, type Io } from "./command.ts";
import { createHelpCommand, formatOverview, helpSummary, type CommandSummary } from "./commands/help.ts";
import { commandEntries } from "./commands/index.ts";

const summaries: readonly CommandSummary[] = [...commandEntries, helpSummary];

/** The command named `name`, loaded; undefined when there is none. */
async function loadCommand(name: string): Promise<Command | undefined> {
  if (name === helpSummary.name) return helpCommand;
  return commandEntries.find((entry) => entry.name === name)?.load();
}

const helpCommand = createHelpCommand(() => summaries, loadCommand);

const processIo: Io = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

/** Node's `parseArgs` reports bad options with these codes; they are the user's mistakes, not ours. */
function isParseArgsError(error: unknown): error is Error {
  return error instanceof Error && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS_");
}

async function suggestion(name: string): Promise<string> {
  const { closest } = commonJsExports(await import("fastest-levenshtein"));
  const near = closest(
    name,
    summaries.map((command) => command.name),
  );
  return near.length > 0 && Math.abs(near.length - name.length) <= 2 ? ` (did you mean "${near}"?)` : "";
}

/**
 * Runs `baton` with the arguments after the program name and resolves to the exit code:
 * 0 success, 1 the command found problems, 2 a usage error or an unreadable input, 70 a bug in Baton.
 */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    io.stderr(formatOverview(summaries));
    return exitCodes.usage;
  }
  if (name === "--help" || name === "-h") {
    io.stdout(formatOverview(summaries));
    return exitCodes.ok;
  }
  const command = await loadCommand(name);
  if (!command) {
    io.stderr(
      `baton: unknown command "${name}"${await suggestion(name)}. Run "baton help" for the list of commands.\n`,
    );
    return exitCodes.usage;
  }
  const options = args.slice(0, args.includes("--") ? args.indexOf("--") : args.length);
  if (options.includes("--help") || options.includes("-h")) {
    io.stdout(command.usage);
    return exitCodes.ok;
  }
  try {
    return await command.run(args, io);
  } catch (error) {
    if (error instanceof UsageError || isParseArgsError(error)) {
      io.stderr(`baton ${command.name}: ${error.message}\nRun "baton help ${command.name}" for usage.\n`);
      return exitCodes.usage;
    }
    // NATS credentials or TLS that cannot work (a file missing, a password refused): one line
    // naming the variable, no stack trace.
    if (error instanceof NatsAccessError) {
      io.stderr(`baton ${command.name}: ${error.message}\n`);
      return exitCodes.usage;
    }
    // A bug of ours, not the user's: say so plainly, with the stack, and do not pose as exit 1 ("problems found").
    io.stderr(
      `baton ${command.name}: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return exitCodes.internal;
  }
}
