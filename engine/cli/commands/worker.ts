/** `baton worker MODULE...` or `baton worker --package NAME[@VERSION]`: serve functions. */
import { discardPrewarmed, prebootIsolate, prewarmIsolate } from "../../../sdk/worker/isolate-pool.ts";
import { moduleUrl } from "../../../sdk/worker/load-modules.ts";
import { isolateHeapMb } from "../../../sdk/worker/worker-env.ts";
import { tracingConfigured } from "../../telemetry/tracing-config.ts";
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

Environment: NATS_URL (credentials and TLS: NATS_CREDS, NATS_USER/NATS_PASSWORD, NATS_TOKEN,
NATS_NKEY, NATS_CA, NATS_CERT/NATS_KEY), BATON_WORKER_NAME, BATON_WORKER_CONCURRENCY (default 16),
BATON_WORKER_EFFECT_CONCURRENCY, BATON_WORKER_HEAP_MB (default 512),
BATON_WORKER_DRAIN_TIMEOUT_MS (default 30000), BATON_LOG_LEVEL, BATON_PACKAGE_CACHE;
OpenTelemetry tracing with the standard OTEL_* variables (each run is a span under the
engine's attempt span).
`,
  async run(args) {
    if (args.length === 0)
      throw new UsageError("name at least one module, e.g. baton worker functions/examples.ts");
    const first = args[0] ?? "";
    const isPackage = first === "--package" || first.startsWith("--package=");
    // The first isolate's thread boots now, before the NATS client is even loaded: Node's start in
    // that thread is most of a cold start, and it runs on another core meanwhile. A plain worker
    // names its modules at once; a package worker names the bundle once it has fetched it.
    const heapMb = heapMbOrUndefined();
    if (heapMb !== undefined && isPackage) prebootIsolate(heapMb);
    else if (heapMb !== undefined && !args.some((arg) => arg.startsWith("-")))
      prewarmIsolate(
        args.map((module) => moduleUrl(module)),
        heapMb,
      );
    let code: number;
    let tracing: StartedTracing | undefined;
    try {
      code = await serveWorker(args, isPackage, first, (loaded) => (tracing = loaded));
    } catch (error) {
      // A worker that cannot start (a bad setting, a credential refused) leaves no thread behind:
      // the isolate booted above would keep the process up.
      await discardPrewarmed();
      throw error;
    }
    await tracing?.stopTracing();
    // The worker has stopped; nothing it left behind should keep the process up.
    process.exit(code);
  },
};

/** Tracing once started: stopped (its spans flushed) when the worker has stopped. */
interface StartedTracing {
  stopTracing(): Promise<void>;
}

/** Loads the worker (and tracing, when configured) and serves until drained; the exit code. */
async function serveWorker(
  args: readonly string[],
  isPackage: boolean,
  first: string,
  onTracing: (tracing: StartedTracing) => void,
): Promise<number> {
  const { runWorker } = await import("../../../sdk/worker/run-worker.ts");
  // The OpenTelemetry SDK is loaded only when tracing is asked for: it alone costs more than
  // the rest of the worker's start.
  if (tracingConfigured()) {
    const tracing = await import("../../telemetry/tracing.ts");
    onTracing(tracing);
    tracing.startTracing("baton-worker");
  }
  if (!isPackage) return runWorker(args);
  const ref = first === "--package" ? args[1] : first.slice("--package=".length);
  const rest = args.slice(first === "--package" ? 2 : 1);
  const { parsePackageRef, runPackageWorker } = await import("../../functions/package-worker.ts");
  const parsed = ref === undefined ? undefined : parsePackageRef(ref);
  if (parsed === undefined)
    throw new UsageError(
      `--package takes NAME or NAME@VERSION (e.g. --package resize@3), not "${ref ?? ""}"`,
    );
  if (rest.length > 0) throw new UsageError(`--package serves one package; unexpected "${rest.join(" ")}"`);
  return runPackageWorker(parsed.name, parsed.version).catch((error: unknown) => {
    process.stderr.write(`baton worker: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  });
}

/** BATON_WORKER_HEAP_MB as the worker reads it; `undefined` when invalid (the worker then refuses it, naming it). */
function heapMbOrUndefined(): number | undefined {
  try {
    return isolateHeapMb(process.env);
  } catch {
    return undefined;
  }
}
