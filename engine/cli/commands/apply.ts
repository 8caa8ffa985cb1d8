/**
 * `baton apply -f FILE_OR_DIR...`: submit workflows to the API. Each file's workflows are
 * stored together or not at all; a refused file does not stop the others.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { WorkflowInvalidError } from "../../../sdk/client/errors.ts";
import { UsageError, exitCodes, type Command, type Io } from "../command.ts";
import { apiUsageFooter, createApiClient, formatProblemDetail, reportApiErrors } from "./api-client.ts";
import { UnreadableError, unreadable, workflowFilesOf } from "./workflow-files.ts";

const usage = `Usage: baton apply -f FILE_OR_DIR [-f FILE_OR_DIR...]
       baton apply [--project FILE]

With --project (default: ./baton.yaml when no -f is given), deploys the whole project the file
declares (docs/functions.md): it checks everything first (the file, every workflow, every
function module, bundled and loaded) and changes nothing if anything is wrong; then deploys
each function package (one whose bundle and settings are unchanged is not uploaded again: same
digest, same version) and submits each workflow. Prints one line per package and workflow.

Submits workflows to the engine's API: a new name is created, a changed document gets the next
revision, an identical one keeps its revision. A directory stands for every *.yaml and *.yml file
directly inside it. A file may hold several workflows (---); they are stored together or not at all.

Prints one line per stored workflow, and for a refused file one line per problem:
  file:line:col CODE path: message

${apiUsageFooter}`;

async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      file: { type: "string", short: "f", multiple: true },
      project: { type: "string", short: "p" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 0)
    throw new UsageError(`name files with -f: baton apply -f ${positionals.join(" -f ")}`);
  const arguments_ = values.file ?? [];
  if (values.project !== undefined && arguments_.length > 0)
    throw new UsageError("give either --project or -f, not both");
  if (arguments_.length === 0) {
    const { applyProject } = await import("./apply-project.ts");
    return applyProject(values.project, io);
  }

  const files: string[] = [];
  for (const argument of arguments_) {
    try {
      files.push(...(await workflowFilesOf(argument)));
    } catch (error) {
      if (error instanceof UnreadableError) throw new UsageError(error.message);
      throw error;
    }
  }
  const client = createApiClient();
  return reportApiErrors("apply", io, async () => {
    let refused = 0;
    for (const file of [...new Set(files)]) {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (error) {
        throw new UsageError(unreadable(file, error).message);
      }
      try {
        for (const workflow of await client.workflows.apply(text)) {
          const what = workflow.created ? "created" : "applied";
          io.stdout(`${file}: ${workflow.name} revision ${workflow.revision} (${what})\n`);
        }
      } catch (error) {
        if (!(error instanceof WorkflowInvalidError)) throw error;
        refused++;
        for (const problem of error.problems) {
          const separator = problem.line === undefined ? ": " : ":";
          io.stdout(`${file}${separator}${formatProblemDetail(problem)}\n`);
        }
        io.stderr(`baton apply: ${file} refused: ${error.detail ?? error.message}\n`);
      }
    }
    return refused > 0 ? exitCodes.failure : exitCodes.ok;
  });
}

export const applyCommand: Command = {
  name: "apply",
  summary: "Submit workflow files to the engine's API",
  usage,
  run,
};
