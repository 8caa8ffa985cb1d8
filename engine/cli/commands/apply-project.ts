/**
 * `baton apply [--project FILE]`: deploys a project file (baton.yaml): every function package,
 * then every workflow, after checking all of it (engine/functions/project.ts).
 */
import { existsSync } from "node:fs";
import { relative } from "node:path";
import { Transport } from "../../../sdk/client/transport.ts";
import { defaultApiUrl } from "../../../sdk/index.ts";
import { deployFunctions } from "../../functions/deploy-functions.ts";
import { loadProject, projectFileName, ProjectInvalidError } from "../../functions/project.ts";
import { UsageError, exitCodes, type Io } from "../command.ts";
import { createApiClient, reportApiErrors } from "./api-client.ts";

export async function applyProject(projectFile: string | undefined, io: Io): Promise<number> {
  const file = projectFile ?? projectFileName;
  if (!existsSync(file))
    throw new UsageError(
      projectFile === undefined
        ? `no ${projectFileName} here: name workflow files with -f, or a project file with --project`
        : `cannot read ${file}: no such file`,
    );
  let project;
  try {
    project = await loadProject(file);
  } catch (error) {
    if (!(error instanceof ProjectInvalidError)) throw error;
    for (const problem of error.problems) io.stdout(`${error.file}: ${problem}\n`);
    io.stderr(`baton apply: ${error.message}\n`);
    return exitCodes.failure;
  }
  const url =
    process.env.BATON_URL === undefined || process.env.BATON_URL === ""
      ? defaultApiUrl
      : process.env.BATON_URL;
  const api = new Transport(url, process.env.BATON_TOKEN, 120_000);
  const client = createApiClient();
  return reportApiErrors("apply", io, async () => {
    await deployFunctions(api, project.functions, ({ fn, version, outcome }) => {
      const where = relative(process.cwd(), fn.module) || fn.module;
      io.stdout(
        `${where}: function ${fn.name} version ${version} (${outcome === "unchanged" ? "unchanged, not uploaded" : outcome})\n`,
      );
    });
    for (const workflow of project.workflows) {
      const where = relative(process.cwd(), workflow.file) || workflow.file;
      for (const applied of await client.workflows.apply(workflow.text))
        io.stdout(
          `${where}: ${applied.name} revision ${applied.revision} (${applied.created ? "created" : "applied"})\n`,
        );
    }
    return exitCodes.ok;
  });
}
