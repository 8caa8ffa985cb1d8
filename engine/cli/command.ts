/** What every `baton` subcommand is, and how it talks to the terminal. */

/** Where a command writes; the real CLI passes the process's streams, tests may pass buffers. */
export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Exit codes every command shares. */
export const exitCodes = {
  ok: 0,
  /** The command ran and found something wrong (a problem in a workflow, a failed execution). */
  failure: 1,
  /** The command was called wrongly, or could not read what it was given. */
  usage: 2,
  /** A bug in Baton itself (EX_SOFTWARE). */
  internal: 70,
} as const;

export interface Command {
  name: string;
  /** One line for `baton help`. */
  summary: string;
  /** The full usage text for `baton help <command>` and `baton <command> --help`. */
  usage: string;
  /** Runs the command on the arguments after its name; resolves to the exit code. */
  run(args: string[], io: Io): Promise<number>;
}

/** A mistake in how the command was called: printed with the usage hint, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}
