/** `baton retry ID`: re-run a failed execution from the step that failed. */
import { parseArgs } from "node:util";
import { exitCodes, type Command, type Io } from "../command.ts";
import { apiUsageFooter, createApiClient, reportApiErrors, singleId } from "./api-client.ts";

const usage = `Usage: baton retry ID

Re-runs a failed execution from the step that failed; the steps that completed are not run again.
Follow it with: baton logs ID --follow

${apiUsageFooter}`;

async function run(args: string[], io: Io): Promise<number> {
  const { positionals } = parseArgs({ args, options: {}, allowPositionals: true, strict: true });
  const id = singleId(positionals);
  const client = createApiClient();
  return reportApiErrors("retry", io, async () => {
    await client.execution(id).retry();
    io.stdout(`retry requested for ${id}\n`);
    return exitCodes.ok;
  });
}

export const retryCommand: Command = {
  name: "retry",
  summary: "Re-run a failed execution from the step that failed",
  usage,
  run,
};
