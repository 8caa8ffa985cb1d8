/** `baton worker MODULE...`: serve the functions that ES modules export. */
import { runWorker } from "../../../sdk/worker/run-worker.ts";
import { tracingConfigured } from "../../telemetry/tracing-config.ts";
import { UsageError, type Command } from "../command.ts";

export const workerCommand: Command = {
  name: "worker",
  summary: "serve the functions of ES modules to the engine over NATS_URL",
  usage: `Usage: baton worker MODULE...

Serves the functions each module exports: its default export (a function definition or an
array of them) and its named exports that are function definitions (defineFunction). Every
function run is isolated in a worker thread. SIGTERM or SIGINT drains: no new tasks are taken,
running ones finish; a second signal stops at once and hands the running tasks back.

Environment: NATS_URL (credentials and TLS: NATS_CREDS, NATS_USER/NATS_PASSWORD, NATS_TOKEN,
NATS_NKEY, NATS_CA, NATS_CERT/NATS_KEY), BATON_WORKER_NAME, BATON_WORKER_CONCURRENCY (default 16),
BATON_WORKER_EFFECT_CONCURRENCY, BATON_WORKER_HEAP_MB (default 512),
BATON_WORKER_DRAIN_TIMEOUT_MS (default 30000), BATON_LOG_LEVEL; OpenTelemetry tracing with the
standard OTEL_* variables (each run is a span under the engine's attempt span).
`,
  async run(args) {
    if (args.length === 0)
      throw new UsageError("name at least one module, e.g. baton worker functions/examples.ts");
    // The OpenTelemetry SDK is loaded only when tracing is asked for: it alone costs more than
    // the rest of the worker's start.
    const tracing = tracingConfigured() ? await import("../../telemetry/tracing.ts") : undefined;
    tracing?.startTracing("baton-worker");
    const code = await runWorker(args);
    await tracing?.stopTracing();
    // The worker has stopped; nothing it left behind should keep the process up.
    process.exit(code);
  },
};
