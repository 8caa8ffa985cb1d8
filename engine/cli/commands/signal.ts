/** `baton signal ID NAME [--data JSON|@FILE]`: deliver a signal to an execution. */
import { parseArgs } from "node:util";
import { UsageError, exitCodes, type Command, type Io } from "../command.ts";
import { apiUsageFooter, createApiClient, readJsonArgument, reportApiErrors } from "./api-client.ts";

const usage = `Usage: baton signal ID NAME [--data JSON|@FILE]

Delivers the signal NAME to an execution: a step \`receive: { signal: NAME }\` gets the data as its
output. A signal sent before the execution reaches that step is kept until it does. The data is
JSON text or @FILE (@- reads stdin); without --data the signal carries none.

Example:
  baton signal 01JD3... approve --data '{"by":"sam"}'

${apiUsageFooter}`;

async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { data: { type: "string", short: "d" } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 2)
    throw new UsageError(`takes an execution id and a signal name, got ${positionals.length} arguments`);
  const [id, name] = positionals as [string, string];
  const data = values.data === undefined ? undefined : await readJsonArgument("--data", values.data);
  const client = createApiClient();
  return reportApiErrors("signal", io, async () => {
    await client.execution(id).signal(name, data);
    io.stdout(`signal ${name} delivered to ${id}\n`);
    return exitCodes.ok;
  });
}

export const signalCommand: Command = {
  name: "signal",
  summary: "Deliver a signal (with JSON data) to an execution",
  usage,
  run,
};
