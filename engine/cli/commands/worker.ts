/** `baton worker MODULE...` or `baton worker --package NAME[@VERSION]`: serve functions. */
import { runWorker } from "../../../sdk/worker/run-worker.ts";
import { startTracing, stopTracing } from "../../telemetry/tracing.ts";
import { UsageError, type Command } from "../command.ts";

export const workerCommand: Command = {
  name: "worker",
  summary: "serve the functions of ES modules, or a deployed function package, to the engine over NATS_URL",
  usage: `Usage: baton worker MODULE...
       baton worker --package NAME[@VERSION]

Serves the functions each module exports: its default export (a function definition or an
array of them) and its named exports that are function definitions (defineFunction). Every
function run is isolated in a worker thread. SIGTERM or SIGINT drains: no new tasks are taken,
running ones finish; a second signal stops at once and hands the running tasks back.

With --package, serves a function deployed with "baton function deploy": the version given, or
the latest, read from JetStream (its digest checked) into BATON_PACKAGE_CACHE (default
<tmp>/baton-packages); its heartbeats name the package and version (docs/functions.md).

Environment: NATS_URL, BATON_WORKER_NAME, BATON_WORKER_CONCURRENCY (default 16),
BATON_WORKER_EFFECT_CONCURRENCY, BATON_WORKER_HEAP_MB (default 512),
BATON_WORKER_DRAIN_TIMEOUT_MS (default 30000), BATON_LOG_LEVEL, BATON_PACKAGE_CACHE;
OpenTelemetry tracing with the standard OTEL_* variables (each run is a span under the
engine's attempt span).
`,
  async run(args) {
    if (args.length === 0)
      throw new UsageError("name at least one module, e.g. baton worker functions/examples.ts");
    let code: number;
    if (args[0] === "--package" || args[0]?.startsWith("--package=")) {
      const ref = args[0] === "--package" ? args[1] : args[0].slice("--package=".length);
      const rest = args.slice(args[0] === "--package" ? 2 : 1);
      const { parsePackageRef, runPackageWorker } = await import("../../functions/package-worker.ts");
      const parsed = ref === undefined ? undefined : parsePackageRef(ref);
      if (parsed === undefined)
        throw new UsageError(
          `--package takes NAME or NAME@VERSION (e.g. --package resize@3), not "${ref ?? ""}"`,
        );
      if (rest.length > 0)
        throw new UsageError(`--package serves one package; unexpected "${rest.join(" ")}"`);
      startTracing("baton-worker");
      code = await runPackageWorker(parsed.name, parsed.version).catch((error: unknown) => {
        process.stderr.write(`baton worker: ${error instanceof Error ? error.message : String(error)}\n`);
        return 1;
      });
    } else {
      startTracing("baton-worker");
      code = await runWorker(args);
    }
    await stopTracing();
    // The worker has stopped; nothing it left behind should keep the process up.
    process.exit(code);
  },
};
