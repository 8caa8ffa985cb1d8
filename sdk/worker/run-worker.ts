// The worker process: `node dist/sdk/worker/run-worker.js MODULE...` (or, from the sources,
// `node --import tsx sdk/worker/run-worker.ts MODULE...`) serves the functions
// the modules export (see load-modules.ts) on NATS_URL, and drains on SIGTERM or SIGINT. The
// `baton worker` command runs this.
//
// Environment: NATS_URL (default nats://127.0.0.1:4222), the NATS credential and TLS variables
// (NATS_CREDS, NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_NKEY, NATS_CA, NATS_CERT/NATS_KEY:
// sdk/nats-access.ts), BATON_WORKER_NAME,
// BATON_WORKER_CONCURRENCY (default 16), BATON_WORKER_EFFECT_CONCURRENCY (default: the former),
// BATON_WORKER_HEAP_MB (default 512), BATON_WORKER_DRAIN_TIMEOUT_MS (default 30000),
// BATON_NATS_REPLICAS (1 to 5, default 1: replicas of the streams and buckets a worker creates),
// BATON_WORKER_PARENT_PID (drain when that process, which started it, is gone),
// BATON_LOG_LEVEL (debug, info, warn, error, silent; default info).
import { natsReplicas } from "../replication.ts";
import { pathToFileURL } from "node:url";
import type { NatsConnection } from "nats";
import type { FunctionDefinition } from "./define-function.ts";
import { natsAccessFromEnv } from "../nats-access.ts";
import { discardPrewarmed, prewarmIsolate } from "./isolate-pool.ts";
import { loadFunctionModules, moduleUrl } from "./load-modules.ts";
import { serve, type ServeOptions, type WorkerHandle } from "./serve.ts";
import { isolateHeapMb, numberFrom } from "./worker-env.ts";

const usage = "usage: run-worker MODULE... (each an ES module exporting function definitions)";

/**
 * Runs a worker until it is drained; resolves with the process exit code. `loaded` serves
 * functions already loaded (a function package: docs/functions.md) instead of modules.
 */
export async function runWorker(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  loaded?: {
    functions: readonly FunctionDefinition[];
    package: ServeOptions["package"];
    /** A connection to serve on (left open when the worker stops) instead of connecting. */
    connection?: NatsConnection;
  },
): Promise<number> {
  if (loaded === undefined && (args.length === 0 || args.includes("--help") || args.includes("-h"))) {
    process.stderr.write(`${usage}\n`);
    return args.length === 0 ? 2 : 0;
  }
  // Checked before anything starts: a bad value stops the worker with a message naming it.
  natsReplicas(env);
  if (loaded?.connection === undefined) natsAccessFromEnv(env);
  // The first isolate boots on its own thread while this one imports the modules too.
  if (loaded === undefined)
    prewarmIsolate(
      args.map((module) => moduleUrl(module)),
      isolateHeapMb(env),
    );
  const draining = new AbortController();
  let worker: WorkerHandle;
  try {
    const functions = loaded?.functions ?? (await loadFunctionModules(args));
    worker = await serve({
      servers: env.NATS_URL,
      functions,
      name: env.BATON_WORKER_NAME,
      concurrency: numberFrom(env, "BATON_WORKER_CONCURRENCY"),
      effectConcurrency: numberFrom(env, "BATON_WORKER_EFFECT_CONCURRENCY"),
      isolateHeapMb: numberFrom(env, "BATON_WORKER_HEAP_MB"),
      drainTimeoutMs: numberFrom(env, "BATON_WORKER_DRAIN_TIMEOUT_MS"),
      signal: draining.signal,
      ...(loaded?.package === undefined ? {} : { package: loaded.package }),
      ...(loaded?.connection === undefined ? {} : { connection: loaded.connection }),
    });
  } catch (error) {
    // A worker that could not start leaves no thread behind (it would keep the process up).
    await discardPrewarmed();
    throw error;
  }
  let signals = 0;
  const onSignal = (): void => {
    signals += 1;
    // A second signal means "now": running attempts end and their tasks go back to JetStream.
    if (signals === 1) draining.abort();
    else void worker.close();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  const orphanWatch = watchParent(env, () => {
    process.stderr.write(
      `baton worker: the process that started it (pid ${env.BATON_WORKER_PARENT_PID}) is gone; draining\n`,
    );
    draining.abort();
  });
  await worker.closed;
  clearInterval(orphanWatch);
  process.off("SIGTERM", onSignal);
  process.off("SIGINT", onSignal);
  return worker.failure === undefined ? 0 : 1;
}

/**
 * `BATON_WORKER_PARENT_PID`: the pid of the process that started this worker and is to stop it
 * (a pool, `baton dev`). When that process is gone (killed with SIGKILL, it could not stop its
 * workers), this one is re-parented, and drains as on SIGTERM instead of serving on unmanaged.
 */
function watchParent(env: NodeJS.ProcessEnv, onGone: () => void): NodeJS.Timeout | undefined {
  const parent = numberFrom(env, "BATON_WORKER_PARENT_PID");
  if (parent === undefined) return undefined;
  const check = (): void => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onGone();
  };
  const timer = setInterval(check, 1_000);
  timer.unref();
  check();
  return timer;
}

// Not a top-level await: the function modules import the SDK, and an SDK module that imported
// this one would wait on an evaluation that waits on them.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runWorker(process.argv.slice(2)).then(
    // Exit explicitly: the worker has stopped, and nothing left behind must keep the process up.
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`baton worker: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
