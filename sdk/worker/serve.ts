// `serve`, the entry point of a worker. This module stays light (no NATS client, no ajv) because
// every isolate imports the SDK again with the function modules: the first isolate starts here,
// and the rest of the worker (start-worker.ts) is loaded while it boots.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { NatsConnection } from "nats";
import { natsAccessFromEnv, noNatsAccess } from "../nats-access.ts";
import type { FunctionDefinition } from "./define-function.ts";
import { defaultIsolateHeapMb, IsolatePool } from "./isolate-pool.ts";
import { createJsonLogger, type Logger } from "./logger.ts";

/** The options of `serve`. */
export interface ServeOptions {
  /**
   * NATS server URL(s). Default: `NATS_URL`, else `nats://127.0.0.1:4222`. Ignored when
   * `connection` is given. Credentials and TLS come from `NATS_CREDS`, `NATS_USER`/`NATS_PASSWORD`,
   * `NATS_TOKEN`, `NATS_NKEY`, `NATS_CA`, `NATS_CERT`/`NATS_KEY` (docs/operations.md).
   */
  readonly servers?: string | readonly string[];
  /** An open NATS connection to use instead of connecting (the worker leaves it open when it stops). */
  readonly connection?: NatsConnection;
  /** The functions to serve (from `defineFunction`). */
  readonly functions: readonly FunctionDefinition[];
  /** Attempts of pure steps running at once. Default 16. */
  readonly concurrency?: number;
  /** Attempts of effect steps running at once (their own lane). Default: `concurrency`. */
  readonly effectConcurrency?: number;
  /** A name for the worker; its id is `<name>-<pid>-<random>`. Default: the host name. */
  readonly name?: string;
  /** Aborting it drains the worker (as `drain()`). */
  readonly signal?: AbortSignal;
  /** Old-generation heap limit of each isolate, in MB; a function that needs more fails with `WorkerCrashed`. Default 512. */
  readonly isolateHeapMb?: number;
  /** Isolates kept started and idle for the next attempt. Default 2. */
  readonly warmIsolates?: number;
  /** How long a cancelled or timed-out handler may take to return before its isolate is terminated. Default 1000 ms. */
  readonly graceMs?: number;
  /** How long `drain()` waits for running attempts before giving their tasks back. Default 30 000 ms. */
  readonly drainTimeoutMs?: number;
  /** Where the worker logs. Default: JSON lines on stderr at `BATON_LOG_LEVEL` (default `info`). */
  readonly logger?: Logger;
  /** The function package the functions come from, named in the heartbeats (docs/functions.md). */
  readonly package?: { readonly name: string; readonly version: number; readonly digest: string };
}

/** A serving worker. */
export interface WorkerHandle {
  /** The worker's id, as in its heartbeats and in the `worker` of its reports. */
  readonly id: string;
  /** Attempts in progress now. */
  readonly running: number;
  /** Resolves once the worker has stopped (after `drain()`, `close()`, or a lost connection). */
  readonly closed: Promise<void>;
  /** Why the worker stopped on its own (a connection closed for good), if it did. */
  readonly failure: Error | undefined;
  /**
   * Stops taking tasks, lets running attempts finish (up to `drainTimeoutMs`, then gives their
   * tasks back), sends a `leaving` heartbeat and disconnects.
   */
  drain(): Promise<void>;
  /** Stops at once: running attempts end without a report and their tasks go back to JetStream. */
  close(): Promise<void>;
}

/** The options of `serve` with their defaults applied. */
export interface Settings {
  readonly concurrency: number;
  readonly effectConcurrency: number;
  readonly isolateHeapMb: number;
  readonly warmIsolates: number;
  readonly graceMs: number;
  readonly drainTimeoutMs: number;
}

/**
 * Serves functions: pulls their tasks from NATS JetStream, runs each attempt in an isolate
 * (a worker thread: a throw, `process.exit()`, an endless loop or running out of memory fails
 * only that attempt), reports the outcome, and heartbeats. Creates the streams and consumers it
 * needs when they are missing.
 *
 * @param options - `functions` (required), `servers` or `connection`, `concurrency` (default 16),
 *   `effectConcurrency` (default: `concurrency`), `name`, `signal`, and tuning (see `ServeOptions`)
 * @returns a handle once the worker is pulling tasks; rejects when it cannot start (NATS
 *   unreachable, a function its module does not define, an invalid input schema)
 *
 * @example
 * ```ts
 * import { serve } from "baton";
 * import { thumbnail } from "./thumbnail.ts";
 *
 * const worker = await serve({ servers: process.env.NATS_URL, functions: [thumbnail], concurrency: 8 });
 * process.once("SIGTERM", () => void worker.drain());
 * ```
 */
export async function serve(options: ServeOptions): Promise<WorkerHandle> {
  // A module that serves itself when run is imported again inside each isolate: serving there
  // would start a worker per isolate. Inside an isolate, serve() does nothing.
  if (isInsideIsolate()) return inertHandle();
  const settings = checkOptions(options);
  const definitions = checkFunctions(options.functions);
  // Credentials and TLS from the environment, checked before any isolate starts.
  const natsAccess = options.connection === undefined ? natsAccessFromEnv() : noNatsAccess;
  const id = workerId(options.name);
  const logger = options.logger ?? createJsonLogger({ base: { worker: id } });
  const pool = new IsolatePool({
    modules: [...new Set(definitions.map((definition) => definition.module))],
    heapMb: settings.isolateHeapMb,
    minIdle: settings.warmIsolates,
    idleTimeoutMs: 60_000,
    logger,
  });
  // The first isolate is the slowest part of a cold start: it boots on its own thread while this
  // one loads the NATS client and connects.
  const poolReady = pool.start();
  poolReady.catch(() => {}); // Awaited by startWorker.
  try {
    const { startWorker } = await import("./start-worker.ts");
    return await startWorker({ options, settings, definitions, id, logger, pool, poolReady, natsAccess });
  } catch (error) {
    await pool.close();
    throw error;
  }
}

/** An isolate's old-generation heap limit unless `isolateHeapMb` says otherwise, in MB. */
export { defaultIsolateHeapMb };

/** A definition whose module is known. */
export type ServableDefinition = FunctionDefinition & { readonly module: string };

function checkFunctions(functions: readonly FunctionDefinition[]): ServableDefinition[] {
  if (functions.length === 0) throw new TypeError("serve: functions is empty; pass the definitions to serve");
  const seen = new Set<string>();
  return functions.map((definition) => {
    if (seen.has(definition.name)) throw new TypeError(`serve: function "${definition.name}" is given twice`);
    seen.add(definition.name);
    if (definition.module === undefined) {
      throw new TypeError(
        `serve: cannot tell which module defines "${definition.name}"; pass module: import.meta.url to defineFunction`,
      );
    }
    return definition as ServableDefinition;
  });
}

function isInsideIsolate(): boolean {
  return (globalThis as { [insideIsolateKey]?: boolean })[insideIsolateKey] === true;
}
const insideIsolateKey = Symbol.for("baton.insideIsolate");

function inertHandle(): WorkerHandle {
  const done = Promise.resolve();
  return {
    id: "isolate",
    running: 0,
    closed: done,
    failure: undefined,
    drain: () => done,
    close: () => done,
  };
}

function checkOptions(options: ServeOptions): Settings {
  const positive = (name: string, value: number | undefined, fallback: number): number => {
    const result = value ?? fallback;
    if (!Number.isSafeInteger(result) || result <= 0) {
      throw new TypeError(`serve: ${name} must be a positive whole number, not ${String(value)}`);
    }
    return result;
  };
  const concurrency = positive("concurrency", options.concurrency, 16);
  return {
    concurrency,
    effectConcurrency: positive("effectConcurrency", options.effectConcurrency, concurrency),
    isolateHeapMb: positive("isolateHeapMb", options.isolateHeapMb, defaultIsolateHeapMb),
    warmIsolates: options.warmIsolates === 0 ? 0 : positive("warmIsolates", options.warmIsolates, 2),
    graceMs: positive("graceMs", options.graceMs, 1_000),
    drainTimeoutMs: positive("drainTimeoutMs", options.drainTimeoutMs, 30_000),
  };
}

/** `<name>-<pid>-<random>`, made of subject-safe characters (it is a token of the heartbeat subject). */
function workerId(name: string | undefined): string {
  const base = (name ?? hostname()).replace(/[^A-Za-z0-9_-]+/g, "_").slice(0, 64) || "worker";
  return `${base}-${process.pid}-${randomBytes(3).toString("hex")}`;
}
