/** `baton ls [--workflow W] [--status S] [--limit N] [--cursor C] [--json]`: executions, newest first. */
import { parseArgs } from "node:util";
import { executionStatuses, type ExecutionStatus } from "../../../sdk/client/types.ts";
import { UsageError, exitCodes, type Command, type Io } from "../command.ts";
import { apiUsageFooter, createApiClient, reportApiErrors } from "./api-client.ts";
import { formatExecutionTable } from "./execution-text.ts";

const usage = `Usage: baton ls [--workflow NAME] [--status STATUS] [--limit N] [--cursor CURSOR] [--json]

Lists executions, newest first.
  --workflow NAME   only executions of this workflow
  --status STATUS   only executions with this status: ${executionStatuses.join(", ")}
  --limit N         at most N (default 20)
  --cursor CURSOR   the page after the one that printed this cursor
  --json            the page as the API answers it

${apiUsageFooter}`;

function isStatus(value: string): value is ExecutionStatus {
  return (executionStatuses as readonly string[]).includes(value);
}

async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      workflow: { type: "string" },
      status: { type: "string" },
      limit: { type: "string", default: "20" },
      cursor: { type: "string" },
      json: { type: "boolean", default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 0) throw new UsageError(`takes no arguments, got "${positionals.join(" ")}"`);
  const { status } = values;
  if (status !== undefined && !isStatus(status))
    throw new UsageError(`--status "${status}" is not a status; use one of ${executionStatuses.join(", ")}`);
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a whole number >= 1`);
  const client = createApiClient();
  return reportApiErrors("ls", io, async () => {
    const page = await client.executions.list({
      workflow: values.workflow,
      status,
      limit,
      cursor: values.cursor,
    });
    if (values.json) {
      io.stdout(`${JSON.stringify(page, null, 2)}\n`);
      return exitCodes.ok;
    }
    if (page.items.length === 0) io.stderr("no executions\n");
    else io.stdout(formatExecutionTable(page.items));
    if (page.next !== undefined) {
      const filters = [
        values.workflow === undefined ? "" : ` --workflow ${values.workflow}`,
        status === undefined ? "" : ` --status ${status}`,
        values.limit === "20" ? "" : ` --limit ${limit}`,
      ].join("");
      io.stderr(`more: baton ls${filters} --cursor ${page.next}\n`);
    }
    return exitCodes.ok;
  });
}

export const lsCommand: Command = {
  name: "ls",
  summary: "List executions, newest first (filter by workflow and status)",
  usage,
  run,
};
