/**
 * The commands of `baton`, in the order `baton help` lists them: each one's name and summary, and
 * how to load it. A command's module (and all it imports: the engine, fastify, the NATS client,
 * the worker kit...) is imported only when that command runs or its usage is asked for, so that
 * `baton --help`, `baton validate` and `baton run` start without loading what they do not use.
 *
 * A new command: its own file under commands/ exporting a `Command`, and one entry here with a
 * dynamic `import()` of that file. Import nothing from commands/ statically in main.ts or here.
 * test/unit/cli-commands.test.ts checks that every entry's name and summary are the module's own.
 */
import type { Command } from "../command.ts";

export interface CommandEntry {
  readonly name: string;
  /** One line for `baton help`; the same as the loaded command's `summary`. */
  readonly summary: string;
  readonly load: () => Promise<Command>;
}

export const commandEntries: readonly CommandEntry[] = [
  {
    name: "dev",
    summary: "Run NATS, the engine, the API and the example workers on this machine",
    load: async () => (await import("./dev.ts")).devCommand,
  },
  {
    name: "validate",
    summary: "Check workflow files offline: every problem with its line, column and code",
    load: async () => (await import("./validate.ts")).validateCommand,
  },
  {
    name: "apply",
    summary: "Submit workflow files to the engine's API",
    load: async () => (await import("./apply.ts")).applyCommand,
  },
  {
    name: "run",
    summary: "Start an execution; with --wait, follow it and print its output",
    load: async () => (await import("./run.ts")).runCommand,
  },
  {
    name: "get",
    summary: "Show one execution: status, input, output or error, steps",
    load: async () => (await import("./get.ts")).getCommand,
  },
  {
    name: "logs",
    summary: "Print an execution's history; --follow to stream it live",
    load: async () => (await import("./logs.ts")).logsCommand,
  },
  {
    name: "ls",
    summary: "List executions, newest first (filter by workflow and status)",
    load: async () => (await import("./ls.ts")).lsCommand,
  },
  {
    name: "cancel",
    summary: "Cancel an execution",
    load: async () => (await import("./cancel.ts")).cancelCommand,
  },
  {
    name: "signal",
    summary: "Deliver a signal (with JSON data) to an execution",
    load: async () => (await import("./signal.ts")).signalCommand,
  },
  {
    name: "retry",
    summary: "Re-run a failed execution from the step that failed",
    load: async () => (await import("./retry.ts")).retryCommand,
  },
  {
    name: "engine",
    summary: "run the engine (orchestrator) against NATS_URL until stopped",
    load: async () => (await import("./engine.ts")).engineCommand,
  },
  {
    name: "worker",
    summary: "serve the functions of ES modules, or a deployed function package, to the engine over NATS_URL",
    load: async () => (await import("./worker.ts")).workerCommand,
  },
  {
    name: "function",
    summary: "Deploy, list, read and delete function packages (docs/functions.md)",
    load: async () => (await import("./function.ts")).functionCommand,
  },
  {
    name: "pool",
    summary:
      "Run workers for the deployed functions: from zero on demand, more under a backlog, back to zero when idle",
    load: async () => (await import("./pool.ts")).poolCommand,
  },
];
