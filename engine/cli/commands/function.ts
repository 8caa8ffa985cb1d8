/**
 * `baton function deploy|ls|get|rm`: function packages through the API (docs/functions.md).
 */
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { defaultApiUrl } from "../../../sdk/client/client.ts";
import { Transport } from "../../../sdk/client/transport.ts";
import { UsageError, exitCodes, type Command, type Io } from "../command.ts";
import { apiUsageFooter, reportApiErrors } from "./api-client.ts";

const usage = `Usage: baton function deploy PATH [--name NAME] [--min-scale N] [--max-scale N]
                             [--concurrency N] [--idle DURATION] [--environment node20]
       baton function ls
       baton function get NAME
       baton function rm NAME

deploy  bundles the module at PATH (TypeScript or JavaScript) with its npm dependencies into
        one ES module (esbuild), uploads it as the function's next version and prints the
        version. An unchanged bundle keeps its version. NAME defaults to the one function the
        module defines; a module that defines several needs --name. The scale settings tell
        the pool how to run it (defaults: --min-scale 0 --max-scale 4 --concurrency 16 --idle 5m).
ls      lists the deployed functions, their latest version and health.
get     prints one function as JSON: versions, scale settings, health, serving workers.
rm      deletes a function: the pools stop its workers; queued tasks wait for a worker.

${apiUsageFooter}`;

interface FunctionView {
  name: string;
  version: number;
  digest: string;
  size: number;
  environment: string;
  scale: { minScale: number; maxScale: number; concurrency: number; idle: string };
  health: { status: string; reason?: string };
}

function transport(env: NodeJS.ProcessEnv = process.env): Transport {
  const url = env.BATON_URL === undefined || env.BATON_URL === "" ? defaultApiUrl : env.BATON_URL;
  try {
    return new Transport(url, env.BATON_TOKEN, 120_000);
  } catch (error) {
    throw new UsageError(`BATON_URL: ${error instanceof Error ? error.message : String(error)}`);
  }
}

const positiveInteger = (option: string, text: string | undefined, minimum = 1): number | undefined => {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < minimum)
    throw new UsageError(`${option} takes a whole number of at least ${minimum}, not "${text}"`);
  return value;
};

export interface DeployRequest {
  path: string;
  name?: string | undefined;
  environment?: string | undefined;
  minScale?: number | undefined;
  maxScale?: number | undefined;
  concurrency?: number | undefined;
  idle?: string | undefined;
}

/** Bundles and uploads one function; the API's view of it and what the upload did. */
export async function deployFunction(
  api: Transport,
  request: DeployRequest,
): Promise<{ fn: FunctionView; outcome: string }> {
  const { bundleFunction, BundleError } = await import("../../functions/bundle.ts");
  const { packageContentType } = await import("../../functions/package-archive.ts");
  let bundle: Uint8Array;
  try {
    bundle = await bundleFunction(request.path);
  } catch (error) {
    if (error instanceof BundleError)
      throw new UsageError(`cannot bundle ${request.path}:\n${error.message}`);
    throw error;
  }
  const name = request.name ?? (await onlyFunctionOf(request.path, bundle));
  const answer = await api.request("PUT", `/v1/functions/${encodeURIComponent(name)}`, {
    bytes: bundle,
    contentType: packageContentType(bundle),
    query: {
      environment: request.environment,
      minScale: request.minScale,
      maxScale: request.maxScale,
      concurrency: request.concurrency,
      idle: request.idle,
    },
  });
  return {
    fn: answer.body as FunctionView,
    outcome: answer.headers.get("baton-deploy-outcome") ?? "deployed",
  };
}

/** The one function a bundle defines, read by loading it in an isolate. */
async function onlyFunctionOf(path: string, bundle: Uint8Array): Promise<string> {
  const { inspectBundle, PackageRefusedError } = await import("../../functions/check-package.ts");
  let names: string[];
  try {
    names = await inspectBundle(bundle);
  } catch (error) {
    if (error instanceof PackageRefusedError) throw new UsageError(`${path}: ${error.message}`);
    throw error;
  }
  if (names.length === 1) return names[0]!;
  throw new UsageError(
    `${basename(path)} defines several functions (${names.join(", ")}); choose one with --name`,
  );
}

export function formatDeployed(fn: FunctionView, outcome: string): string {
  return `${fn.name} version ${fn.version} (${outcome}) ${fn.digest} ${fn.size} bytes\n`;
}

async function deploy(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      name: { type: "string" },
      environment: { type: "string" },
      "min-scale": { type: "string" },
      "max-scale": { type: "string" },
      concurrency: { type: "string" },
      idle: { type: "string" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1) throw new UsageError("name one module to deploy: baton function deploy PATH");
  const request: DeployRequest = {
    path: positionals[0]!,
    name: values.name,
    environment: values.environment,
    minScale: positiveInteger("--min-scale", values["min-scale"], 0),
    maxScale: positiveInteger("--max-scale", values["max-scale"]),
    concurrency: positiveInteger("--concurrency", values.concurrency),
    idle: values.idle,
  };
  const api = transport();
  return reportApiErrors("function deploy", io, async () => {
    const { fn, outcome } = await deployFunction(api, request);
    io.stdout(formatDeployed(fn, outcome));
    return exitCodes.ok;
  });
}

async function run(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "deploy":
      return deploy(rest, io);
    case "ls": {
      if (rest.length > 0) throw new UsageError(`ls takes no arguments, got "${rest.join(" ")}"`);
      const api = transport();
      return reportApiErrors("function ls", io, async () => {
        const { items } = (await api.request("GET", "/v1/functions")).body as { items: FunctionView[] };
        if (items.length === 0) io.stdout("no functions deployed (baton function deploy PATH)\n");
        for (const fn of items)
          io.stdout(
            `${fn.name}\tversion ${fn.version}\t${fn.environment}\t${fn.health.status}\tscale ${fn.scale.minScale}..${fn.scale.maxScale} x${fn.scale.concurrency} idle ${fn.scale.idle}\n`,
          );
        return exitCodes.ok;
      });
    }
    case "get":
    case "rm": {
      if (rest.length !== 1) throw new UsageError(`${sub} takes one function name`);
      const api = transport();
      const path = `/v1/functions/${encodeURIComponent(rest[0]!)}`;
      return reportApiErrors(`function ${sub}`, io, async () => {
        if (sub === "get") io.stdout(`${JSON.stringify((await api.request("GET", path)).body, null, 2)}\n`);
        else {
          await api.request("DELETE", path);
          io.stdout(`${rest[0]} deleted\n`);
        }
        return exitCodes.ok;
      });
    }
    case undefined:
      throw new UsageError("name what to do: deploy, ls, get or rm");
    default:
      throw new UsageError(`unknown subcommand "${sub}"; use deploy, ls, get or rm`);
  }
}

export const functionCommand: Command = {
  name: "function",
  summary: "Deploy, list, read and delete function packages (docs/functions.md)",
  usage,
  run,
};
