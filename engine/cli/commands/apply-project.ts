/**
 * `baton apply [--project FILE]`: deploys a project file (baton.yaml): every function package,
 * then every workflow, after checking all of it (engine/functions/project.ts).
 */
import { existsSync } from "node:fs";
import { relative } from "node:path";
import { Transport } from "../../../sdk/client/transport.ts";
import { BatonApiError, defaultApiUrl } from "../../../sdk/index.ts";
import { loadProject, projectFileName, ProjectInvalidError } from "../../functions/project.ts";
import { parseDuration } from "../../workflow/duration.ts";
import { UsageError, exitCodes, type Io } from "../command.ts";
import { createApiClient, reportApiErrors } from "./api-client.ts";

interface DeployedView {
  name: string;
  version: number;
  digest: string;
  environment: string;
  scale: { minScale: number; maxScale: number; concurrency: number; idle: string };
}

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
    for (const fn of project.functions) {
      let current: DeployedView | undefined;
      try {
        current = (await api.request("GET", `/v1/functions/${fn.name}`)).body as DeployedView;
      } catch (error) {
        if (!(error instanceof BatonApiError && error.status === 404)) throw error;
      }
      const where = relative(process.cwd(), fn.module) || fn.module;
      if (
        current !== undefined &&
        current.digest === fn.digest &&
        current.environment === fn.environment &&
        current.scale.minScale === fn.query.minScale &&
        current.scale.maxScale === fn.query.maxScale &&
        current.scale.concurrency === fn.query.concurrency &&
        parseDuration(current.scale.idle) === fn.scale.idleMs
      ) {
        io.stdout(`${where}: function ${fn.name} version ${current.version} (unchanged, not uploaded)\n`);
        continue;
      }
      const answer = await api.request("PUT", `/v1/functions/${fn.name}`, {
        text: new TextDecoder().decode(fn.bundle),
        contentType: "application/javascript",
        query: fn.query,
      });
      const deployed = answer.body as DeployedView;
      const outcome = answer.headers.get("baton-deploy-outcome") ?? "deployed";
      io.stdout(`${where}: function ${deployed.name} version ${deployed.version} (${outcome})\n`);
    }
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
