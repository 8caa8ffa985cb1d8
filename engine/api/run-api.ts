/**
 * A process serving the HTTP API, with an engine (orchestrator) in it unless `--no-engine`:
 * `node dist/engine/api/run-api.js [--no-engine]` (compiled by `npm run build`; the tests run the
 * source with `node --import tsx engine/api/run-api.ts`). Configuration from the environment
 * (NATS_URL, BATON_LISTEN, BATON_API_TOKENS, ...: docs/api.md). Prints
 * `{"level":"info","message":"api listening","url":"http://127.0.0.1:8080",...}` once it
 * listens; SIGTERM or SIGINT stops it after the work under way.
 */
import { once } from "node:events";
import { NatsAccessError } from "../../sdk/nats-access.ts";
import { ConfigError, loadApiConfig, loadEngineConfig } from "../config.ts";
import { startEngine, type RunningEngine } from "../main.ts";
import { startTracing, stopTracing } from "../telemetry/tracing.ts";
import { checkListenAddress, startApi } from "./start-api.ts";

const args = process.argv.slice(2);
const unknown = args.filter((arg) => arg !== "--no-engine");
if (unknown.length > 0) {
  process.stderr.write(`run-api: unknown argument "${unknown.join(" ")}"; usage: run-api.ts [--no-engine]\n`);
  process.exit(2);
}

let engineConfig;
let apiConfig;
try {
  engineConfig = loadEngineConfig();
  apiConfig = loadApiConfig();
  // Before anything starts: a refused address stops the process at once.
  checkListenAddress(apiConfig);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`run-api: ${error.message}\n`);
  process.exit(2);
}

const shutdownGraceMs = Number(process.env.BATON_SHUTDOWN_GRACE_MS ?? 30_000);
if (!Number.isInteger(shutdownGraceMs) || shutdownGraceMs <= 0) {
  process.stderr.write(
    `run-api: BATON_SHUTDOWN_GRACE_MS must be a positive number of milliseconds, not "${process.env.BATON_SHUTDOWN_GRACE_MS}"\n`,
  );
  process.exit(2);
}

// Listened for from the start: a signal during start-up stops the process once it is up.
const stopSignal = Promise.race([once(process, "SIGTERM"), once(process, "SIGINT")]);

// Before the server is built: its requests are traced from the first one.
startTracing("baton-engine", process.env, { asyncContext: true });

let engine: RunningEngine | undefined;
try {
  engine = args.includes("--no-engine") ? undefined : await startEngine(engineConfig);
  const api = await startApi({
    config: apiConfig,
    natsUrl: engineConfig.natsUrl,
    natsAccess: engineConfig.natsAccess,
    ...(engineConfig.partitions === undefined ? {} : { partitions: engineConfig.partitions }),
  });
  const [signal] = (await stopSignal) as [NodeJS.Signals | undefined];
  process.stderr.write(`run-api: ${signal ?? "signal"} received, finishing the work under way\n`);
  // A stop that hangs (a connection that never ends, a NATS request that never answers) must
  // not keep the process: after the grace period it says where it stood and exits 1.
  let stage = "closing the HTTP server";
  setTimeout(() => {
    process.stderr.write(
      `run-api: still ${stage} after ${shutdownGraceMs} ms (BATON_SHUTDOWN_GRACE_MS); exiting\n`,
    );
    process.exit(1);
  }, shutdownGraceMs);
  await api.close();
  stage = "stopping the engine";
  await engine?.stop();
  stage = "flushing traces";
  await stopTracing();
  process.stderr.write("run-api: stopped\n");
  // Everything it started has stopped: a handle left open by a library (an idle socket, a
  // timer) does not keep the process alive.
  process.exit(0);
} catch (error) {
  if (!(error instanceof ConfigError || error instanceof NatsAccessError)) throw error;
  process.stderr.write(`run-api: ${error.message}\n`);
  await engine?.stop();
  process.exit(2);
}
