// A worker: serves functions from NATS until drained or closed. The pieces (pullers per
// function and lane, the task runner, the isolate pool, heartbeats, cancellations) live in
// their own files; this one starts them in order and stops them in the reverse order.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { connect, type NatsConnection, type Subscription } from "nats";
import {
  protocolVersion,
  streams,
  subjects,
  taskProgressIntervalMs,
  type CancelEnvelope,
  type HeartbeatEnvelope,
  type Lane,
} from "../protocol.ts";
import type { FunctionDefinition } from "./define-function.ts";
import { startHeartbeats, type Heartbeats } from "./heartbeat.ts";
import { compileInputSchema } from "./input-validation.ts";
import { IsolatePool } from "./isolate-pool.ts";
import { ensureTaskConsumer, ensureWorkerStreams } from "./jetstream-setup.ts";
import { LaneSlots } from "./lane-slots.ts";
import { createJsonLogger, errorFields, type Logger } from "./logger.ts";
import { ResultPublisher } from "./result-publisher.ts";
import { TaskPuller } from "./task-puller.ts";
import { TaskRunner, type ServedFunction } from "./task-runner.ts";

/** The options of `serve`. */
export interface ServeOptions {
  /** NATS server URL(s). Default: `NATS_URL`, else `nats://127.0.0.1:4222`. Ignored when `connection` is given. */
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

/** Pull requests wait this long on the server before the worker renews them. */
const pullExpiresMs = 5_000;
const retryReportDelayMs = 2_000;

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
  const id = workerId(options.name);
  const logger = options.logger ?? createJsonLogger({ base: { worker: id } });
  const served = prepareFunctions(options.functions);

  const pool = new IsolatePool({
    modules: [...new Set(served.map((fn) => fn.module))],
    heapMb: settings.isolateHeapMb,
    minIdle: settings.warmIsolates,
    idleTimeoutMs: 60_000,
    logger,
  });
  // The first isolate starts while the worker connects: it is the slowest part of a cold start.
  const poolReady = pool.start();
  poolReady.catch(() => {}); // Awaited below.

  let nc: NatsConnection | undefined;
  const ownsConnection = options.connection === undefined;
  try {
    nc =
      options.connection ??
      (await connect({
        servers: normaliseServers(options.servers),
        name: id,
        maxReconnectAttempts: -1,
      }));
    const connection = nc;
    const jsm = await connection.jetstreamManager();
    await ensureWorkerStreams(jsm);
    const consumers = await Promise.all(
      served.flatMap((fn) =>
        fn.lanes.map(async (lane) => ({ fn, lane, name: await ensureTaskConsumer(jsm, lane, fn.name) })),
      ),
    );
    const ready = await poolReady;
    checkFunctionsFound(served, ready);
    return await startServing({ nc: connection, ownsConnection, id, logger, pool, served, consumers, settings, options });
  } catch (error) {
    await pool.close();
    if (ownsConnection) await nc?.close();
    throw error;
  }
}

interface Settings {
  readonly concurrency: number;
  readonly effectConcurrency: number;
  readonly isolateHeapMb: number;
  readonly warmIsolates: number;
  readonly graceMs: number;
  readonly drainTimeoutMs: number;
}

interface Served extends ServedFunction {
  readonly lanes: readonly Lane[];
}

async function startServing(setup: {
  nc: NatsConnection;
  ownsConnection: boolean;
  id: string;
  logger: Logger;
  pool: IsolatePool;
  served: readonly Served[];
  consumers: readonly { fn: Served; lane: Lane; name: string }[];
  settings: Settings;
  options: ServeOptions;
}): Promise<WorkerHandle> {
  const { nc, id, logger, pool, served, consumers, settings } = setup;
  const js = nc.jetstream();
  const startedAt = Date.now();
  const slots: Record<Lane, LaneSlots> = {
    pure: new LaneSlots(settings.concurrency),
    effect: new LaneSlots(settings.effectConcurrency),
  };
  const runner = new TaskRunner({
    workerId: id,
    pool,
    publisher: new ResultPublisher(js, () => nc.info?.max_payload ?? 1_048_576),
    logger,
    graceMs: settings.graceMs,
    retryReportDelayMs,
  });
  const pullers = consumers.map(
    ({ fn, lane, name }) =>
      new TaskPuller({
        fn: fn.name,
        lane,
        slots: slots[lane],
        expiresMs: pullExpiresMs,
        getConsumer: async () => {
          const jsm = await nc.jetstreamManager();
          await ensureWorkerStreams(jsm);
          await ensureTaskConsumer(jsm, lane, fn.name);
          return js.consumers.get(streams.tasks, name);
        },
        onTask: (msg) => runner.handle(msg, fn, lane),
        logger,
      }),
  );
  const cancels: Subscription = nc.subscribe(subjects.allCancels, {
    callback: (error, msg) => {
      if (error !== null) return logger.warn("cancel subscription error", errorFields(error));
      const cancel = parseCancel(msg.data);
      if (cancel === undefined) return logger.warn("ignoring an unreadable cancel message", { subject: msg.subject });
      runner.cancel(cancel);
    },
  });
  const progress = setInterval(() => runner.sendProgress(), taskProgressIntervalMs);
  const describe = (): HeartbeatEnvelope => ({
    v: protocolVersion,
    worker: id,
    node: hostname(),
    functions: served.flatMap((fn) => fn.lanes.map((lane) => ({ name: fn.name, lane }))),
    concurrency: settings.concurrency,
    effectConcurrency: settings.effectConcurrency,
    running: runner.running,
    startedAt,
  });
  let heartbeats: Heartbeats;
  try {
    heartbeats = await startHeartbeats(nc, describe, logger);
  } catch (error) {
    clearInterval(progress);
    cancels.unsubscribe();
    throw error;
  }
  for (const puller of pullers) puller.start();

  let failure: Error | undefined;
  let stopping: Promise<void> | undefined;
  let resolveClosed: () => void = () => {};
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));

  const stop = (mode: "drain" | "close"): Promise<void> => {
    stopping ??= (async () => {
      logger.info(mode === "drain" ? "draining" : "closing", { running: runner.running });
      const pulling = Promise.all(pullers.map((puller) => puller.stop()));
      if (mode === "drain") await runner.whenIdle(settings.drainTimeoutMs);
      if (runner.running > 0) {
        logger.warn("giving back the tasks still running", { running: runner.running });
        runner.handBackAll(`worker ${id} is ${mode === "drain" ? "draining" : "closing"}`);
        await runner.whenIdle(5_000);
      }
      await pulling;
      clearInterval(progress);
      if (!nc.isClosed()) {
        cancels.unsubscribe();
        await heartbeats.stop();
      }
      await pool.close();
      if (setup.ownsConnection && !nc.isClosed()) await nc.drain().catch(() => nc.close());
      logger.info("stopped");
      resolveClosed();
    })();
    return stopping;
  };

  void nc.closed().then((error) => {
    if (stopping !== undefined) return;
    failure = error ?? new Error("the NATS connection was closed");
    logger.error("the NATS connection closed; the worker stops", errorFields(failure));
    void stop("close");
  });
  if (setup.options.signal !== undefined) {
    if (setup.options.signal.aborted) void stop("drain");
    else setup.options.signal.addEventListener("abort", () => void stop("drain"), { once: true });
  }

  logger.info("serving", {
    functions: served.map((fn) => `${fn.name} (${fn.lanes.join(", ")})`),
    concurrency: settings.concurrency,
    effectConcurrency: settings.effectConcurrency,
    server: nc.getServer(),
  });

  return {
    id,
    get running() {
      return runner.running;
    },
    closed,
    get failure() {
      return failure;
    },
    drain: () => stop("drain"),
    close: () => stop("close"),
  };
}

function isInsideIsolate(): boolean {
  return (globalThis as { [insideIsolateKey]?: boolean })[insideIsolateKey] === true;
}
const insideIsolateKey = Symbol.for("baton.insideIsolate");

function inertHandle(): WorkerHandle {
  const done = Promise.resolve();
  return { id: "isolate", running: 0, closed: done, failure: undefined, drain: () => done, close: () => done };
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
    isolateHeapMb: positive("isolateHeapMb", options.isolateHeapMb, 512),
    warmIsolates: options.warmIsolates === 0 ? 0 : positive("warmIsolates", options.warmIsolates, 2),
    graceMs: positive("graceMs", options.graceMs, 1_000),
    drainTimeoutMs: positive("drainTimeoutMs", options.drainTimeoutMs, 30_000),
  };
}

function prepareFunctions(functions: readonly FunctionDefinition[]): Served[] {
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
    return {
      name: definition.name,
      module: definition.module,
      lanes: definition.lanes,
      timeoutMs: definition.timeoutMs,
      validateInput:
        definition.input === undefined ? undefined : compileInputSchema(definition.name, definition.input),
    };
  });
}

function checkFunctionsFound(
  served: readonly Served[],
  ready: { functions: readonly string[]; failures: readonly { module: string; message: string }[] },
): void {
  const missing = served.filter((fn) => !ready.functions.includes(fn.name));
  if (missing.length === 0) return;
  const lines = missing.map((fn) => {
    const failure = ready.failures.find((f) => f.module === fn.module);
    return failure !== undefined
      ? `"${fn.name}": importing ${fn.module} in the isolate failed: ${failure.message}`
      : `"${fn.name}": ${fn.module} does not define it when imported; call defineFunction at the top level of the module that exports it (or pass module: import.meta.url)`;
  });
  throw new Error(`serve: the isolate cannot find ${missing.length} function(s):\n  ${lines.join("\n  ")}`);
}

function parseCancel(data: Uint8Array): CancelEnvelope | undefined {
  try {
    const cancel = JSON.parse(new TextDecoder().decode(data)) as Partial<CancelEnvelope>;
    if (typeof cancel.execution !== "string" || cancel.execution === "") return undefined;
    return {
      v: protocolVersion,
      execution: cancel.execution,
      step: typeof cancel.step === "string" ? cancel.step : undefined,
      run: typeof cancel.run === "number" ? cancel.run : undefined,
      reason: typeof cancel.reason === "string" ? cancel.reason : "cancelled",
    };
  } catch {
    return undefined;
  }
}

function normaliseServers(servers: string | readonly string[] | undefined): string | string[] {
  if (servers === undefined) return process.env.NATS_URL ?? "nats://127.0.0.1:4222";
  return typeof servers === "string" ? servers : [...servers];
}

/** `<name>-<pid>-<random>`, made of subject-safe characters (it is a token of the heartbeat subject). */
function workerId(name: string | undefined): string {
  const base = (name ?? hostname()).replace(/[^A-Za-z0-9_-]+/g, "_").slice(0, 64) || "worker";
  return `${base}-${process.pid}-${randomBytes(3).toString("hex")}`;
}
