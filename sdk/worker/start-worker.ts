// The worker once `serve` has checked its options and started the first isolate: connect, create
// the streams and consumers, check the isolate found every function, then start the pullers,
// the cancel subscription, progress and heartbeats; and stop them in the reverse order.
import { pullExpiresMs } from "../nats-retry.ts";
import { answerHoldQueries, holderAlive } from "./attempt-holder.ts";
import { openBucket } from "../replication.ts";
import { attemptProgress } from "./progress-reporter.ts";
import { hostname } from "node:os";
import { StorageType, type KV, type NatsConnection, type Subscription } from "nats";
import type { NatsAccess } from "../nats-access.ts";
import { connectNats, explainPermissionError } from "../nats-connect.ts";
import {
  buckets,
  protocolVersion,
  streams,
  subjects,
  taskProgressIntervalMs,
  type CancelEnvelope,
  type HeartbeatEnvelope,
  type Lane,
} from "../protocol.ts";
import { openWorkersBucket, startHeartbeats, type Heartbeats } from "./heartbeat.ts";
import type { IsolatePool } from "./isolate-pool.ts";
import type { IsolateReady } from "./isolate.ts";
import { ensureTaskConsumer, ensureWorkerStreams } from "./jetstream-setup.ts";
import { LaneSlots } from "./lane-slots.ts";
import { errorFields, type Logger } from "./logger.ts";
import { ResultPublisher } from "./result-publisher.ts";
import type { ServableDefinition, ServeOptions, Settings, WorkerHandle } from "./serve.ts";
import { TaskPuller } from "./task-puller.ts";
import { EffectLedger } from "../effect-ledger.ts";
import { TaskRunner, type ServedFunction } from "./task-runner.ts";

const retryReportDelayMs = 2_000;

interface Served extends ServedFunction {
  readonly lanes: readonly Lane[];
}

export async function startWorker(setup: {
  options: ServeOptions;
  settings: Settings;
  definitions: readonly ServableDefinition[];
  id: string;
  logger: Logger;
  pool: IsolatePool;
  poolReady: Promise<IsolateReady>;
  /** Credentials and TLS (NATS_CREDS, NATS_USER...), used when the worker connects itself. */
  natsAccess: NatsAccess;
}): Promise<WorkerHandle> {
  const { options, settings, id, logger, pool } = setup;
  const served = await prepareFunctions(setup.definitions);
  let nc: NatsConnection | undefined;
  const ownsConnection = options.connection === undefined;
  try {
    nc =
      options.connection ??
      (await connectNats(
        {
          servers: normaliseServers(options.servers),
          name: id,
          maxReconnectAttempts: -1,
          // Async stack traces cost two Error objects per request: a tenth of the worker's CPU.
          noAsyncTraces: true,
        },
        setup.natsAccess,
      ));
    const connection = nc;
    const jsm = await connection.jetstreamManager();
    // Everything the worker needs from JetStream at once, while the first isolate boots: the
    // streams and consumers, the workers bucket (heartbeats) and the effect ledger.
    const [consumers, workers, effects] = await Promise.all([
      ensureWorkerStreams(jsm).then(() =>
        Promise.all(
          served.flatMap((fn) =>
            fn.lanes.map(async (lane) => ({ fn, lane, name: await ensureTaskConsumer(jsm, lane, fn.name) })),
          ),
        ),
      ),
      openWorkersBucket(connection, logger),
      openBucket(connection.jetstream(), buckets.effects, { history: 1, storage: StorageType.File }),
    ]);
    checkFunctionsFound(served, await setup.poolReady);
    return startServing({
      nc: connection,
      ownsConnection,
      id,
      logger,
      pool,
      served,
      consumers,
      workers,
      effects,
      settings,
      options,
    });
  } catch (error) {
    if (ownsConnection) await nc?.close();
    throw explainPermissionError(error, setup.natsAccess, "worker") ?? error;
  }
}

function startServing(setup: {
  nc: NatsConnection;
  ownsConnection: boolean;
  id: string;
  logger: Logger;
  pool: IsolatePool;
  served: readonly Served[];
  consumers: readonly { fn: Served; lane: Lane; name: string }[];
  /** The workers bucket; `undefined` when KV is unavailable (heartbeats on the subject only). */
  workers: KV | undefined;
  effects: KV;
  settings: Settings;
  options: ServeOptions;
}): WorkerHandle {
  const { nc, id, logger, pool, served, consumers, workers, settings } = setup;
  const js = nc.jetstream();
  const startedAt = Date.now();
  const slots: Record<Lane, LaneSlots> = {
    pure: new LaneSlots(settings.concurrency),
    effect: new LaneSlots(settings.effectConcurrency),
  };
  const runner = new TaskRunner({
    workerId: id,
    pool,
    publisher: new ResultPublisher(nc, js, () => nc.info?.max_payload ?? 1_048_576),
    logger,
    graceMs: settings.graceMs,
    retryReportDelayMs,
    ledger: new EffectLedger(setup.effects),
    // Asked first, then judged by its heartbeat entry (attempt-holder.ts).
    workerAlive: holderAlive(nc, workers, logger),
    progress: (identity) => attemptProgress(nc, identity),
  });
  const pullers = consumers.map(
    ({ fn, lane, name }) =>
      new TaskPuller({
        fn: fn.name,
        lane,
        slots: slots[lane],
        expiresMs: pullExpiresMs,
        // The consumer was made sure of at start; a pull loop that failed makes sure again (it
        // may have been deleted, or the streams with it).
        getConsumer: async (again) => {
          if (again) {
            const jsm = await nc.jetstreamManager();
            await ensureWorkerStreams(jsm);
            await ensureTaskConsumer(jsm, lane, fn.name);
          }
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
      if (cancel === undefined)
        return logger.warn("ignoring an unreadable cancel message", { subject: msg.subject });
      runner.cancel(cancel);
    },
  });
  // Other workers ask before they take over an effect attempt this one claimed.
  const holdQueries = answerHoldQueries(nc, id, (attempt) => runner.holds(attempt), logger);
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
    ...(setup.options.package === undefined ? {} : { package: { ...setup.options.package } }),
  });
  for (const puller of pullers) puller.start();
  // Announcing the worker never fails it (without KV, heartbeats go to the subject alone).
  const heartbeats: Heartbeats = startHeartbeats(nc, workers, describe, logger);

  let failure: Error | undefined;
  let stopping: Promise<void> | undefined;
  let resolveClosed: () => void = () => {};
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));

  const stop = (mode: "drain" | "close"): Promise<void> => {
    stopping ??= (async () => {
      // Cancel the waiting pull requests, and make sure the server has seen it (flush), before
      // saying so: from then on no new task comes to this worker.
      await Promise.all(pullers.map((puller) => puller.stop()));
      if (!nc.isClosed()) await nc.flush().catch(() => {});
      logger.info(mode === "drain" ? "draining" : "closing", { running: runner.running });
      if (mode === "drain") await runner.whenIdle(settings.drainTimeoutMs);
      if (runner.running > 0) {
        logger.warn("giving back the tasks still running", { running: runner.running });
        runner.handBackAll(`worker ${id} is ${mode === "drain" ? "draining" : "closing"}`);
        await runner.whenIdle(5_000);
      }
      clearInterval(progress);
      if (!nc.isClosed()) {
        cancels.unsubscribe();
        holdQueries.unsubscribe();
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

async function prepareFunctions(definitions: readonly ServableDefinition[]): Promise<Served[]> {
  // ajv takes a while to load; a worker whose functions declare no input schema never needs it.
  const validation = definitions.some((definition) => definition.input !== undefined)
    ? await import("./input-validation.ts")
    : undefined;
  return definitions.map((definition) => ({
    name: definition.name,
    module: definition.module,
    lanes: definition.lanes,
    timeoutMs: definition.timeoutMs,
    validateInput:
      definition.input === undefined
        ? undefined
        : validation?.compileInputSchema(definition.name, definition.input),
  }));
}

function checkFunctionsFound(served: readonly Served[], ready: IsolateReady): void {
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
      // Kept: without it a cancel of a timed-out attempt would stop its retry too.
      attempt: typeof cancel.attempt === "number" ? cancel.attempt : undefined,
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
