/** `baton logs ID [--follow] [--json]`: an execution's history, one line per event. */
import { parseArgs } from "node:util";
import type { HistoryEvent } from "../../../sdk/client/types.ts";
import { exitCodes, type Command, type Io } from "../command.ts";
import { apiUsageFooter, createApiClient, reportApiErrors, singleId } from "./api-client.ts";
import { formatEvent } from "./execution-text.ts";

const usage = `Usage: baton logs ID [--follow] [--json]

Prints the history of an execution, one line per event (time, seq, type, step, attempt, worker,
error or data).
  --follow, -f   keep printing events as they happen, until the execution ends
  --json         one JSON event per line, as the API sends them

${apiUsageFooter}`;

async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      follow: { type: "boolean", short: "f", default: false },
      json: { type: "boolean", default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  const id = singleId(positionals);
  const print = (event: HistoryEvent): void =>
    io.stdout(`${values.json ? JSON.stringify(event) : formatEvent(event)}\n`);
  const execution = createApiClient().execution(id);
  return reportApiErrors("logs", io, async () => {
    if (values.follow) {
      for await (const event of execution.events()) print(event);
    } else {
      for (const event of await execution.history()) print(event);
    }
    return exitCodes.ok;
  });
}

export const logsCommand: Command = {
  name: "logs",
  summary: "Print an execution's history; --follow to stream it live",
  usage,
  run,
};
