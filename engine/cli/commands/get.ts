/** `baton get ID [--json]`: one execution, as it is now. */
import { parseArgs } from "node:util";
import { exitCodes, type Command, type Io } from "../command.ts";
import { apiUsageFooter, createApiClient, reportApiErrors, singleId } from "./api-client.ts";
import { formatExecution } from "./execution-text.ts";

const usage = `Usage: baton get ID [--json]

Shows one execution: workflow and revision, status, times, input, output or error, and its steps.
  --json   print the execution as the API answers it

${apiUsageFooter}`;

async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { json: { type: "boolean", default: false } },
    allowPositionals: true,
    strict: true,
  });
  const id = singleId(positionals);
  const client = createApiClient();
  return reportApiErrors("get", io, async () => {
    const execution = await client.executions.get(id);
    io.stdout(values.json ? `${JSON.stringify(execution, null, 2)}\n` : formatExecution(execution));
    return exitCodes.ok;
  });
}

export const getCommand: Command = {
  name: "get",
  summary: "Show one execution: status, input, output or error, steps",
  usage,
  run,
};
