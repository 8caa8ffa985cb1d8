/**
 * `baton run NAME [--input JSON|@FILE] [--wait] [--idempotency-key K]`: start an execution; with
 * `--wait`, follow its events to the end and print its output (exit 0) or its error (exit 1).
 */
import { parseArgs } from "node:util";
import { BatonConnectionError } from "../../../sdk/client/errors.ts";
import type { ExecutionHandle } from "../../../sdk/client/execution-handle.ts";
import { UsageError, exitCodes, type Command, type Io } from "../command.ts";
import { apiUsageFooter, createApiClient, readJsonArgument, reportApiErrors } from "./api-client.ts";
import { formatEvent, formatStepError } from "./execution-text.ts";

const usage = `Usage: baton run NAME [--input JSON|@FILE] [--wait] [--idempotency-key KEY]

Starts an execution of the workflow NAME with the input (default {}), given as JSON text or as
@FILE (a file holding JSON; @- reads stdin).

Without --wait, prints the execution id on stdout and returns at once.
With --wait, follows the execution: one line per history event on stderr, then the output as
JSON on stdout (exit 0), or the error on stderr (exit 1) when it fails, is cancelled or times out.

  --idempotency-key KEY   starting again with the same key returns the first execution
                          instead of starting another (safe to retry)

Example:
  baton run hello --input '{"name":"ana"}' --wait

${apiUsageFooter}`;

async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      input: { type: "string", short: "i" },
      wait: { type: "boolean", short: "w", default: false },
      "idempotency-key": { type: "string" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1)
    throw new UsageError(
      positionals.length === 0
        ? "name the workflow to run"
        : `takes one workflow name, got ${positionals.length}`,
    );
  const name = positionals[0]!;
  const input = values.input === undefined ? {} : await readJsonArgument("--input", values.input);
  const client = createApiClient();
  return reportApiErrors("run", io, async () => {
    const started = await client.start(name, input, { idempotencyKey: values["idempotency-key"] });
    if (!values.wait) {
      io.stdout(`${started.id}\n`);
      io.stderr(
        `baton run: started ${name}: ${started.id}\nFollow it with: baton logs ${started.id} --follow\n`,
      );
      return exitCodes.ok;
    }
    io.stderr(`baton run: started ${name}: ${started.id}\n`);
    return follow(started, io);
  });
}

/** Streams the events to stderr, then prints the outcome. */
async function follow(execution: ExecutionHandle, io: Io): Promise<number> {
  try {
    for await (const event of execution.events()) io.stderr(`${formatEvent(event)}\n`);
  } catch (error) {
    // The stream is a view: when it breaks, the outcome is still there to be awaited.
    if (!(error instanceof BatonConnectionError)) throw error;
    io.stderr(`baton run: ${error.message}; waiting for the result instead\n`);
  }
  const ended = await execution.outcome();
  if (ended.status === "succeeded") {
    io.stdout(`${JSON.stringify(ended.output ?? null, null, 2)}\n`);
    return exitCodes.ok;
  }
  const error = ended.error ? `: ${formatStepError(ended.error)}` : "";
  io.stderr(`baton run: execution ${ended.id} ${ended.status}${error}\n`);
  return exitCodes.failure;
}

export const runCommand: Command = {
  name: "run",
  summary: "Start an execution; with --wait, follow it and print its output",
  usage,
  run,
};
