/**
 * The `baton` command: finds the subcommand named by the first argument and runs it. Each
 * subcommand lives in its own file under `commands/`; only commands that work are listed.
 */
import { closest } from "fastest-levenshtein";
import { UsageError, exitCodes, type Command, type Io } from "./command.ts";
import { createHelpCommand, formatOverview } from "./commands/help.ts";
import { applyCommand } from "./commands/apply.ts";
import { cancelCommand } from "./commands/cancel.ts";
import { devCommand } from "./commands/dev.ts";
import { engineCommand } from "./commands/engine.ts";
import { functionCommand } from "./commands/function.ts";
import { getCommand } from "./commands/get.ts";
import { logsCommand } from "./commands/logs.ts";
import { lsCommand } from "./commands/ls.ts";
import { poolCommand } from "./commands/pool.ts";
import { retryCommand } from "./commands/retry.ts";
import { runCommand } from "./commands/run.ts";
import { signalCommand } from "./commands/signal.ts";
import { validateCommand } from "./commands/validate.ts";
import { workerCommand } from "./commands/worker.ts";

const commands: readonly Command[] = [
  devCommand,
  validateCommand,
  applyCommand,
  runCommand,
  getCommand,
  logsCommand,
  lsCommand,
  cancelCommand,
  signalCommand,
  retryCommand,
  engineCommand,
  workerCommand,
  functionCommand,
  poolCommand,
  createHelpCommand(() => commands),
];

const processIo: Io = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

/** Node's `parseArgs` reports bad options with these codes; they are the user's mistakes, not ours. */
function isParseArgsError(error: unknown): error is Error {
  return error instanceof Error && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS_");
}

function suggestion(name: string): string {
  const names = commands.map((command) => command.name);
  const near = closest(name, names);
  return near.length > 0 && Math.abs(near.length - name.length) <= 2 ? ` (did you mean "${near}"?)` : "";
}

/**
 * Runs `baton` with the arguments after the program name and resolves to the exit code:
 * 0 success, 1 the command found problems, 2 a usage error or an unreadable input, 70 a bug in Baton.
 */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    io.stderr(formatOverview(commands));
    return exitCodes.usage;
  }
  if (name === "--help" || name === "-h") {
    io.stdout(formatOverview(commands));
    return exitCodes.ok;
  }
  const command = commands.find((candidate) => candidate.name === name);
  if (!command) {
    io.stderr(
      `baton: unknown command "${name}"${suggestion(name)}. Run "baton help" for the list of commands.\n`,
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
    // A bug of ours, not the user's: say so plainly, with the stack, and do not pose as exit 1 ("problems found").
    io.stderr(
      `baton ${command.name}: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return exitCodes.internal;
  }
}
