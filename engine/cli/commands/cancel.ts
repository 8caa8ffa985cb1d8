/** `baton cancel ID`: cancel an execution. */
import { parseArgs } from "node:util";
import { exitCodes, type Command, type Io } from "../command.ts";
import { apiUsageFooter, createApiClient, reportApiErrors, singleId } from "./api-client.ts";

const usage = `Usage: baton cancel ID

Cancels an execution: its running attempts are told to stop, its pending steps never start, and
it ends "cancelled". An execution that has already ended is refused (exit 1).

${apiUsageFooter}`;

async function run(args: string[], io: Io): Promise<number> {
  const { positionals } = parseArgs({ args, options: {}, allowPositionals: true, strict: true });
  const id = singleId(positionals);
  const client = createApiClient();
  return reportApiErrors("cancel", io, async () => {
    await client.execution(id).cancel();
    io.stdout(`cancel requested for ${id}\n`);
    return exitCodes.ok;
  });
}

export const cancelCommand: Command = {
  name: "cancel",
  summary: "Cancel an execution",
  usage,
  run,
};
