/**
 * `baton dev`: everything on one machine. Unless NATS_URL names a server, a nats-server child
 * with JetStream in the data directory; the engine and the HTTP API in this process; the
 * project's functions (deployed as packages when a baton.yaml declares them, run by the pool;
 * the other modules of `functions/` by a worker child process) and workflows. Stopping (SIGINT, SIGTERM)
 * goes in the reverse order, so that running work drains before what it needs goes away; a
 * second signal kills the children at once. The data stays for the next start.
 */
import { relative, resolve } from "node:path";
import { Transport } from "../../sdk/client/transport.ts";
import { BatonApiError, BatonClient, defaultApiUrl } from "../../sdk/index.ts";
import { deployFunctions } from "../functions/deploy-functions.ts";
import { natsAccessVariables, withoutNatsAccess } from "../../sdk/nats-access.ts";
import { startApi } from "../api/start-api.ts";
import { ConfigError, loadApiConfig, loadEngineConfig } from "../config.ts";
import { startEngine } from "../main.ts";
import type { Logger } from "../orchestrator/orchestrator.ts";
import { describeExit, type DevChild } from "./child-process.ts";
import { takeDataDir, type DataDir } from "./data-dir.ts";
import { ensureNatsServer, startNatsServer } from "./nats-server.ts";
import { submitWorkflows } from "./submit-workflows.ts";
import { findFunctionModules, startWorkers } from "./workers.ts";
import { startTracing, stopTracing } from "../telemetry/tracing.ts";
import { packageRoot } from "../package-root.ts";

export interface DevOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Where the banner goes (stdout). */
  readonly out?: (text: string) => void;
  /** Where the log of every part goes, one line at a time (stderr). */
  readonly log?: (line: string) => void;
  readonly workflowsDir?: string;
  readonly functionsDir?: string;
}

const stopGraceMs = 10_000;

/** Runs until SIGINT or SIGTERM (resolves 0) or until a part dies (resolves 1). */
export async function runDev(options: DevOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const out = options.out ?? ((text: string) => void process.stdout.write(text));
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const say = (line: string): void => log(`baton dev: ${line}`);
  const workflowsDir = options.workflowsDir ?? "workflows";
  const functionsDir = options.functionsDir ?? "functions";

  const stops: { name: string; stop: () => Promise<void> }[] = [];
  const children: DevChild[] = [];
  let stopReason: "signal" | "failure" | undefined;
  let wakeUp: (() => void) | undefined;
  const stopRequested = new Promise<void>((resolve) => (wakeUp = resolve));
  const requestStop = (reason: "signal" | "failure"): void => {
    stopReason ??= reason;
    wakeUp?.();
  };
  let signalCount = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signalCount++;
    if (signalCount === 1) {
      say(`${signal}: stopping (a second Ctrl-C or signal kills everything at once)`);
      requestStop("signal");
      return;
    }
    say(`${signal} again: killing the child processes`);
    for (const child of children) child.kill();
    process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  let dataDir: DataDir | undefined;
  try {
    const settings = readSettings(env);
    // 1. NATS: the one given, or our own child.
    let natsUrl = env.NATS_URL;
    let natsLine: string;
    // Our own server takes no credentials: the NATS_* credential and TLS variables are for a
    // NATS of the user's own (NATS_URL).
    let natsEnv = env;
    if (natsUrl === undefined || natsUrl === "") {
      natsEnv = withoutNatsAccess(env);
      const ignored = natsAccessVariables.filter((name) => (env[name] ?? "") !== "");
      if (ignored.length > 0)
        say(
          `${ignored.join(", ")} ignored: they are for a NATS of your own (NATS_URL); baton dev's own nats-server takes no credentials`,
        );
      dataDir = await takeDataDir(settings.dataDir, say);
      const binary = await ensureNatsServer(say);
      const nats = await startNatsServer({
        binary,
        dataDir: dataDir.path,
        port: settings.natsPort,
        onLine: (line) => {
          if (/\[(ERR|FTL|WRN)\]/.test(line)) log(`[nats-server] ${line}`);
        },
      });
      dataDir.recordChild("nats-server", nats.child.pid);
      children.push(nats.child);
      stops.push({ name: "nats-server", stop: async () => void (await nats.child.stop(stopGraceMs)) });
      natsUrl = nats.url;
      natsLine = `${nats.url}  (nats-server pid ${nats.child.pid}, JetStream data in ${displayPath(dataDir.path)})`;
    } else {
      natsLine = `${natsUrl}  (from NATS_URL)`;
    }
    if (stopReason !== undefined) return finish();

    // 2. The engine, in this process (traced when OTEL_* asks for it, like `baton engine`).
    if (startTracing("baton-engine", env, { asyncContext: true }))
      stops.push({ name: "tracing", stop: stopTracing });
    const engineConfig = loadEngineConfig({
      ...natsEnv,
      NATS_URL: natsUrl,
      BATON_ENGINE_ID: env.BATON_ENGINE_ID ?? "dev",
    });
    const engine = await startEngine(engineConfig, prefixedLogger(log, "[engine]", env));
    stops.push({ name: "engine", stop: () => engine.stop() });
    if (stopReason !== undefined) return finish();

    // 3. The HTTP API, in this process.
    const api = await startApi({
      config: settings.api,
      natsUrl,
      natsAccess: engineConfig.natsAccess,
      log: prefixedLogger(log, "[api]", env),
    });
    stops.push({ name: "API", stop: () => api.close() });
    if (stopReason !== undefined) return finish();

    // 4. The workflows, through the API, as a user would submit them.
    const client = new BatonClient({ url: api.url, token: settings.api.tokens[0] });
    // With a project file (baton.yaml, docs/functions.md), the workflows it declares, and its
    // functions deployed as packages, which the pool (6.) runs: what `baton apply` deploys.
    const { existsSync } = await import("node:fs");
    const { projectFileName, projectWorkflowPaths, loadProject, ProjectInvalidError } =
      await import("../functions/project.ts");
    let workflowPaths = [workflowsDir];
    const packaged = new Set<string>();
    let packagesLine: string | undefined;
    if (options.workflowsDir === undefined && existsSync(projectFileName)) {
      try {
        workflowPaths = await projectWorkflowPaths(projectFileName);
        const project = await loadProject(projectFileName);
        const api = new Transport(client.url, settings.api.tokens[0], 120_000);
        const deployed = new Map<string, number>();
        try {
          await deployFunctions(api, project.functions, ({ fn, version, outcome }) => {
            deployed.set(fn.name, version);
            if (outcome !== "unchanged") say(`function ${fn.name} version ${version} (${outcome})`);
          });
        } finally {
          // A module is left to the pool only when every function the file declares from it is
          // deployed: after a refusal part-way, the plain worker serves the rest of it.
          for (const fn of project.functions)
            if (project.functions.every((other) => other.module !== fn.module || deployed.has(other.name)))
              packaged.add(resolve(fn.module));
          if (deployed.size > 0)
            packagesLine = `${[...deployed].map(([name, version]) => `${name}@${version}`).join(" ")}  (from ${projectFileName}; the pool starts their workers when a task waits)`;
        }
      } catch (error) {
        // A project that is not valid, or a package the API refused: dev comes up all the same.
        if (!(error instanceof ProjectInvalidError || error instanceof BatonApiError)) throw error;
        const problems = error instanceof ProjectInvalidError ? error.problems : [error.message];
        say(
          `${projectFileName}: ${problems.join("; ")}; a plain worker serves the modules of ${functionsDir}/ not deployed` +
            (workflowPaths[0] === workflowsDir ? `, and ${workflowsDir}/ is submitted instead` : ""),
        );
      }
    }
    const submitted: Awaited<ReturnType<typeof submitWorkflows>> = { workflows: [], refused: [] };
    for (const path of workflowPaths) {
      const some = await submitWorkflows(client, path);
      submitted.workflows.push(...some.workflows);
      submitted.refused.push(...some.refused);
    }
    for (const { file, reason } of submitted.refused) say(`${file} refused: ${reason}`);
    if (stopReason !== undefined) return finish();

    // 5. A plain worker for the modules of functions/ that are not deployed as packages (all of
    // them without a project file; with one, those it does not declare, such as this repository's
    // modules that use sharp).
    const modules = findFunctionModules(functionsDir).filter((module) => !packaged.has(resolve(module)));
    let workersLine =
      packaged.size > 0 ? "none besides the pool's" : `none (no modules in ${functionsDir}/: see below)`;
    if (modules.length > 0) {
      const workers = await startWorkers({
        modules,
        natsUrl,
        ownServer: natsEnv !== env,
        onLine: (line) => log(`[worker] ${line}`),
      });
      dataDir?.recordChild("worker", workers.pid);
      children.push(workers);
      stops.push({ name: "workers", stop: async () => void (await workers.stop(stopGraceMs)) });
      workersLine = `${modules.map((module) => displayPath(module)).join(" ")}  (worker pid ${workers.pid})`;
    }

    // 6. The pool: workers for the function packages deployed with `baton function deploy` or
    // `baton apply` (docs/functions.md), started from zero when their tasks wait.
    const { startPool } = await import("../functions/pool.ts");
    const pool = await startPool({
      natsUrl,
      // dev's own server takes none; a NATS of the user's own the engine's (and the workers', by
      // their environment).
      natsAccess: engineConfig.natsAccess,
      workerEnv: natsEnv,
      logger: { debug: () => {}, ...prefixedLogger(log, "[pool]", env) },
      // Their warnings and errors (and anything that is not a log line, such as a crash's trace).
      onWorkerLine: (worker, line) => {
        if (!/^\{"time".*"level":"(debug|info)"/.test(line)) log(`[${worker}] ${line}`);
      },
    });
    // Stopped first (the list is stopped from its end): its workers drain while the engine runs.
    stops.push({ name: "pool", stop: () => pool.stop() });

    out(
      banner({
        apiUrl: api.url,
        natsLine,
        workersLine,
        packagesLine,
        submitted: submitted.workflows,
        refused: submitted.refused.length,
        workflowsDir,
        functionsDir,
        noFunctions: modules.length === 0 && packaged.size === 0,
        dataDir: dataDir?.path,
        hasTokens: settings.api.tokens.length > 0,
      }),
    );

    // Run until asked to stop, or until a child dies under us.
    for (const child of children) {
      void child.exited.then((exit) => {
        if (stopReason !== undefined) return;
        say(`${child.name} (pid ${child.pid}) exited unexpectedly (${describeExit(exit)}); stopping`);
        log(child.tail());
        requestStop("failure");
      });
    }
    await stopRequested;
    return await finish();
  } catch (error) {
    if (error instanceof ConfigError || isUserFacing(error)) {
      say(error instanceof Error ? error.message : String(error));
    } else if (isAddressInUse(error)) {
      const { host, port } = loadApiConfig(env).listen;
      say(
        `${host}:${port} is already in use (another baton dev?); stop that, or listen elsewhere: BATON_LISTEN=${host}:${port + 1}`,
      );
    } else {
      say(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    }
    stopReason ??= "failure";
    return await finish();
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }

  /** Stops what was started, newest first; each part gets its grace period, then the next goes. */
  async function finish(): Promise<number> {
    for (const { name, stop } of stops.reverse()) {
      try {
        await withTimeout(stop(), stopGraceMs + 5_000, `${name} did not stop in time`);
      } catch (error) {
        say(`stopping the ${name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    stops.length = 0;
    for (const child of children) child.kill(); // Whatever did not stop in time.
    dataDir?.release();
    if (stopReason === "signal")
      say(`stopped${dataDir ? `; the data stays in ${displayPath(dataDir.path)}` : ""}`);
    return stopReason === "signal" ? 0 : 1;
  }
}

interface DevSettings {
  readonly dataDir: string;
  readonly natsPort: number | undefined;
  readonly api: ReturnType<typeof loadApiConfig>;
}

function readSettings(env: NodeJS.ProcessEnv): DevSettings {
  const portText = env.BATON_NATS_PORT;
  let natsPort: number | undefined;
  if (portText !== undefined && portText !== "") {
    natsPort = Number(portText);
    if (!Number.isInteger(natsPort) || natsPort < 0 || natsPort > 65_535)
      throw new ConfigError(`BATON_NATS_PORT="${portText}" must be a port number (0 picks a free one)`);
  }
  return {
    dataDir: env.BATON_DATA_DIR === undefined || env.BATON_DATA_DIR === "" ? ".baton" : env.BATON_DATA_DIR,
    natsPort,
    api: loadApiConfig(env),
  };
}

function banner(parts: {
  apiUrl: string;
  natsLine: string;
  workersLine: string;
  packagesLine: string | undefined;
  submitted: string[];
  refused: number;
  workflowsDir: string;
  functionsDir: string;
  noFunctions: boolean;
  dataDir: string | undefined;
  hasTokens: boolean;
}): string {
  const refused =
    parts.refused > 0 ? `, ${parts.refused} refused (see above; check them with baton validate)` : "";
  const prefix = [
    parts.apiUrl === defaultApiUrl ? "" : `BATON_URL=${parts.apiUrl} `,
    parts.hasTokens ? "BATON_TOKEN=<one of BATON_API_TOKENS> " : "",
  ].join("");
  // In Baton's own checkout, its npm script; in a project that installed Baton, npx.
  const baton = relative(packageRoot, process.cwd()) === "" ? "npm run baton --" : "npx baton";
  const tryLine = parts.submitted.includes("hello")
    ? `${prefix}${baton} run hello --input '{"name":"ana"}' --wait`
    : `${prefix}${baton} ls`;
  return [
    "",
    "Baton dev is up.",
    `  API        ${parts.apiUrl}  (OpenAPI: ${parts.apiUrl}/docs)`,
    `  console    ${parts.apiUrl}/ui`,
    `  NATS       ${parts.natsLine}`,
    `  engine     in this process (pid ${process.pid})`,
    ...(parts.packagesLine === undefined ? [] : [`  packages   ${parts.packagesLine}`]),
    `  workers    ${parts.workersLine}`,
    `  workflows  ${parts.submitted.length} submitted from ${parts.workflowsDir}/${refused}`,
    "",
    ...gettingStarted(parts, baton),
    "Try:",
    `  ${tryLine}`,
    "",
    `Ctrl-C stops everything${parts.dataDir === undefined ? "" : `; the data stays in ${displayPath(parts.dataDir)} for the next start`}.`,
    "",
  ].join("\n");
}

/** What to add when the project has no workflows or no functions yet (a fresh `npm install baton`). */
function gettingStarted(
  parts: {
    submitted: string[];
    refused: number;
    workflowsDir: string;
    functionsDir: string;
    noFunctions: boolean;
  },
  baton: string,
): string[] {
  const lines: string[] = [];
  if (parts.noFunctions)
    lines.push(
      `No functions yet: add an ES module to ${parts.functionsDir}/ (.mjs, .js or .ts) that exports`,
      `  defineFunction({ name: "hello", handler: (input) => ({ greeting: \`hello \${input.name}\` }) })`,
      `  (import { defineFunction } from "baton"), then restart ${baton} dev: it serves every module there.`,
    );
  if (parts.submitted.length === 0 && parts.refused === 0)
    lines.push(
      `No workflows yet: add a workflow file, ${parts.workflowsDir}/hello.yaml (docs/workflow-language.md), check it`,
      `  with "${baton} validate ${parts.workflowsDir}", then restart ${baton} dev or submit it: ${baton} apply -f ${parts.workflowsDir}`,
    );
  return lines.length === 0 ? [] : [...lines, ""];
}

/** The engine's and the API's log lines, one readable line each, at BATON_LOG_LEVEL and above. */
function prefixedLogger(log: (line: string) => void, prefix: string, env: NodeJS.ProcessEnv): Logger {
  const levels = ["debug", "info", "warn", "error", "silent"];
  const threshold = levels.indexOf(env.BATON_LOG_LEVEL ?? "info");
  const line =
    (level: string) =>
    (message: string, fields?: object): void => {
      if (levels.indexOf(level) < threshold) return;
      const rest = fields === undefined ? "" : ` ${JSON.stringify(fields)}`;
      log(`${prefix} ${level} ${message}${rest}`);
    };
  return { info: line("info"), warn: line("warn"), error: line("error") };
}

function displayPath(path: string): string {
  const shown = relative(process.cwd(), path);
  return shown === "" ? "." : shown.startsWith("..") ? path : shown;
}

function isAddressInUse(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === "EADDRINUSE";
}

/** Errors whose message is meant for the user as is (they name the fix). */
function isUserFacing(error: unknown): error is Error {
  return (
    error instanceof Error && ["NatsServerError", "DataDirInUseError", "NatsAccessError"].includes(error.name)
  );
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
