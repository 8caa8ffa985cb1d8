/**
 * The pool (docs/functions.md): keeps worker processes running for each deployed function, as
 * many as its backlog needs within its scale settings, on this machine.
 *
 * Every `tickMs`, for each deployed function, the pool that holds the function's lease (KV
 * `baton_pool_leases`, one key per function, created or renewed with a compare-and-set, gone
 * when its holder stops renewing it for `leaseTtlMs`) reads the backlog, its task consumers'
 * `num_pending + num_ack_pending` (both lanes), and the live workers, the heartbeats in
 * `baton_workers` that name the function plus the workers it has started that are not serving
 * yet. It wants `ceil(backlog / concurrency)` workers, at least `minScale` and at least one
 * while a task waits, at most `maxScale`; it starts the difference as `baton worker --package
 * NAME@VERSION` processes. Once the function has had no backlog for `idle`, it stops its own
 * workers beyond `minScale` (they drain). A pool without the lease starts nothing for the
 * function and stops its own workers of it once idle.
 *
 * A deployed version newer than a worker's makes the pool drain that worker (running attempts
 * finish on the old version); its replacements load the new one. A worker that exits without
 * being asked to is replaced; when `crashLimit` workers of the same version have crashed within
 * `crashWindowMs`, the pool marks the version unhealthy (KV `baton_functions`,
 * `health.<name>`), starts no more of it, and the engine fails its attempts that time out with
 * `FunctionUnavailable`. Deploying a new version clears the mark.
 *
 * The workers run user code, so on a server where each role has its own user
 * (deploy/nats/baton.conf) they must not get the pool's credential: the pool gives them the one
 * named by `BATON_POOL_WORKER_*` (`BATON_POOL_WORKER_USER`/`BATON_POOL_WORKER_PASSWORD`, ...:
 * {@link poolWorkerEnv}) and none of its own.
 */
import {
  NatsAccessError,
  natsAccessFromEnv,
  natsAccessVariables,
  type NatsAccess,
} from "../../sdk/nats-access.ts";
import { connectNats } from "../../sdk/nats-connect.ts";
import { retryNats } from "../../sdk/nats-retry.ts";
import { openBucket } from "../../sdk/replication.ts";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { StorageType, type JetStreamManager, type KV, type NatsConnection } from "nats";
import {
  streams,
  taskConsumerConfig,
  workersBucketConfig,
  type HeartbeatEnvelope,
} from "../../sdk/protocol.ts";
import { packagePath } from "../package-root.ts";
import { ensureTaskConsumer, ensureWorkerStreams, isNotFound } from "../../sdk/worker/jetstream-setup.ts";
import { createJsonLogger, errorFields, type Logger } from "../../sdk/worker/logger.ts";
import { startChild, type DevChild } from "../dev/child-process.ts";
import { listKeys } from "../nats/kv-keys.ts";
import { PackageStore, type FunctionPackage } from "./package-store.ts";

const batonBin = packagePath("bin/baton.mjs");

export const leasesBucket = "baton_pool_leases";

export interface PoolOptions {
  natsUrl: string;
  /** How often the pool looks at backlogs and workers. Default 500 ms. */
  tickMs?: number;
  /** How long a lease outlives its last renewal. Default 10 s. */
  leaseTtlMs?: number;
  /** Crashes of one version within `crashWindowMs` that make it unhealthy. Default 3. */
  crashLimit?: number;
  crashWindowMs?: number;
  /** NATS credentials and TLS. Default: from this process's environment (NATS_CREDS, NATS_USER, ...). */
  natsAccess?: NatsAccess;
  /**
   * The environment of the workers it starts (NATS_URL is set). Default: this process's. Its
   * `BATON_POOL_WORKER_*` variables, when set, replace its NATS credential ({@link poolWorkerEnv}).
   */
  workerEnv?: NodeJS.ProcessEnv;
  /** Called with every line the workers print (dev shows them). Default: dropped, beyond the last lines kept for crash reports. */
  onWorkerLine?: (worker: string, line: string) => void;
  logger?: Logger;
}

interface PoolWorker {
  readonly child: DevChild;
  readonly fn: string;
  readonly version: number;
  /** The `BATON_WORKER_NAME` it was given: its heartbeats' worker ids start with it. */
  readonly name: string;
  readonly startedAt: number;
  isStopping: boolean;
}

export interface RunningPool {
  readonly id: string;
  /** The workers this pool runs now, by function. */
  workers(): Map<string, number>;
  /** Stops every worker (they drain) and the pool. */
  stop(): Promise<void>;
}

export async function startPool(options: PoolOptions): Promise<RunningPool> {
  const id = `pool-${hostname().replace(/[^A-Za-z0-9_-]/g, "-")}-${randomBytes(3).toString("hex")}`;
  const logger = options.logger ?? createJsonLogger({ base: { pool: id } });
  const tickMs = options.tickMs ?? 500;
  const leaseTtlMs = options.leaseTtlMs ?? 10_000;
  const crashLimit = options.crashLimit ?? 3;
  const crashWindowMs = options.crashWindowMs ?? 5 * 60_000;
  // Credentials and TLS from the environment (NATS_CREDS, NATS_USER, ...), as every process. The
  // workers get the worker credential of BATON_POOL_WORKER_* instead, checked before anything runs.
  const access = options.natsAccess ?? natsAccessFromEnv();
  const { env: workerEnv, credential: workerCredential } = poolWorkerEnv(options.workerEnv ?? process.env);
  const nc: NatsConnection = await connectNats(
    { servers: options.natsUrl, name: id, maxReconnectAttempts: -1 },
    access,
  );
  if (workerCredential === undefined && access.credential.kind !== "none")
    logger.warn(
      `the workers get this pool's own NATS credential (${access.credentialVariables.join(", ")}); ` +
        `they run user code: set BATON_POOL_WORKER_USER/BATON_POOL_WORKER_PASSWORD (or BATON_POOL_WORKER_CREDS, ...) ` +
        `to the worker's user (docs/operations.md, "Credentials and permissions")`,
    );
  const js = nc.jetstream();
  // A pool that cannot set up (permissions, NATS away for good) closes its connection, or the
  // process would stay up with nothing to do.
  const setUp = async () => {
    const jsm = await nc.jetstreamManager();
    const store = await PackageStore.open(js);
    const leases = await openBucket(js, leasesBucket, {
      history: 1,
      ttl: leaseTtlMs,
      storage: StorageType.File,
    });
    await agreeLeaseTtl(jsm, leaseTtlMs, logger);
    const heartbeats = await openBucket(js, workersBucketConfig.bucket, {
      ttl: workersBucketConfig.ttlMs,
      history: workersBucketConfig.history,
      storage: StorageType.File,
    });
    return { jsm, store, leases, heartbeats };
  };
  const { jsm, store, leases, heartbeats } = await setUp().catch(async (error: unknown) => {
    await nc.close().catch(() => undefined);
    throw error;
  });

  const workers = new Set<PoolWorker>();
  /** Function → when it last had a backlog (or the pool first saw it). */
  const lastBusy = new Map<string, number>();
  /** `<fn>@<version>` → when its workers crashed. */
  const crashes = new Map<string, number[]>();
  /** Function → the lease entry's revision while this pool holds it. */
  const held = new Map<string, number>();
  /** Functions whose task consumers this pool has made sure exist. */
  const consumersMade = new Set<string>();
  let sequence = 0;
  let isStopping = false;

  const start = (fn: FunctionPackage): void => {
    sequence += 1;
    const name = `${id}_w${sequence}`;
    const child = startChild(
      `worker ${fn.name}@${fn.version}`,
      process.execPath,
      [batonBin, "worker", "--package", `${fn.name}@${fn.version}`],
      {
        env: {
          ...workerEnv,
          NATS_URL: options.natsUrl,
          BATON_WORKER_NAME: name,
          // A pool killed with SIGKILL cannot stop its workers: they drain once it is gone.
          BATON_WORKER_PARENT_PID: String(process.pid),
          BATON_WORKER_CONCURRENCY: String(fn.scale.concurrency),
          BATON_WORKER_EFFECT_CONCURRENCY: String(fn.scale.concurrency),
        },
        onLine: (line) => options.onWorkerLine?.(name, line),
      },
    );
    const worker: PoolWorker = {
      child,
      fn: fn.name,
      version: fn.version,
      name,
      startedAt: Date.now(),
      isStopping: false,
    };
    workers.add(worker);
    logger.info("worker started", { function: fn.name, version: fn.version, worker: name, pid: child.pid });
    void child.exited.then((exit) => {
      workers.delete(worker);
      if (worker.isStopping || isStopping) return;
      const key = `${fn.name}@${fn.version}`;
      const now = Date.now();
      const recent = [...(crashes.get(key) ?? []), now].filter((at) => now - at < crashWindowMs);
      crashes.set(key, recent);
      const tail = child.tail().split("\n").slice(-3).join(" | ");
      logger.warn("worker crashed", {
        function: fn.name,
        version: fn.version,
        worker: name,
        code: exit.code,
        signal: exit.signal,
        crashes: recent.length,
        tail,
      });
      if (recent.length >= crashLimit) {
        const reason = `${recent.length} workers of version ${fn.version} crashed within ${Math.round(crashWindowMs / 1000)} s; the last: ${exit.signal ?? `exit code ${exit.code}`}: ${tail}`;
        void store
          .markUnhealthy(fn.name, fn.version, reason.slice(0, 2000))
          .then((marked) => {
            if (marked) logger.error("function marked unhealthy", { function: fn.name, version: fn.version });
          })
          .catch((error: unknown) =>
            logger.warn("could not mark the function unhealthy", errorFields(error)),
          );
      }
    });
  };

  const stopWorker = (worker: PoolWorker, why: string): void => {
    if (worker.isStopping) return;
    worker.isStopping = true;
    logger.info("worker stopping", {
      function: worker.fn,
      version: worker.version,
      worker: worker.name,
      why,
    });
    void worker.child.stop(60_000);
  };

  const tick = async (): Promise<void> => {
    const functions = await store.list();
    const unhealthy = new Set((await store.unhealthy()).map((health) => `${health.name}@${health.version}`));
    const beats = await liveHeartbeats(heartbeats);
    const deployed = new Set(functions.map((fn) => fn.name));
    // Deleted functions: their workers go.
    for (const worker of workers)
      if (!deployed.has(worker.fn)) stopWorker(worker, "the function was deleted");
    for (const fn of functions) {
      const now = Date.now();
      const backlog = await backlogOf(jsm, fn.name, consumersMade);
      if (backlog > 0 || !lastBusy.has(fn.name)) lastBusy.set(fn.name, now);
      const isIdle = now - (lastBusy.get(fn.name) ?? now) >= fn.scale.idleMs;
      const mine = [...workers].filter((worker) => worker.fn === fn.name && !worker.isStopping);
      // An older version: drain it (its running attempts finish), its replacements load the new one.
      for (const worker of mine)
        if (worker.version !== fn.version) stopWorker(worker, `version ${fn.version} was deployed`);
      const current = mine.filter((worker) => worker.version === fn.version);
      const isUnhealthy = unhealthy.has(`${fn.name}@${fn.version}`);
      if (isUnhealthy) {
        for (const worker of current) stopWorker(worker, "the version is unhealthy");
        continue;
      }
      const hasLease = await holdLease(fn.name);
      if (!hasLease) {
        if (isIdle) for (const worker of current) stopWorker(worker, "idle (another pool holds the lease)");
        continue;
      }
      // Other workers serving it now: other pools', hand-started ones (not old versions, which drain).
      const others = beats.filter(
        (beat) =>
          beat.functions.some((served) => served.name === fn.name) &&
          !(beat.package?.name === fn.name && beat.package.version !== fn.version) &&
          !beat.worker.startsWith(`${id}_w`),
      ).length;
      const live = current.length + others;
      let wanted = Math.ceil(backlog / fn.scale.concurrency);
      if (backlog > 0) wanted = Math.max(wanted, 1);
      if (!isIdle) wanted = Math.max(wanted, live);
      wanted = Math.min(Math.max(wanted, fn.scale.minScale), fn.scale.maxScale);
      if (wanted > live) {
        for (let i = live; i < wanted; i++) start(fn);
      } else if (wanted < live && isIdle) {
        const surplus = Math.min(live - wanted, current.length);
        const newestFirst = current.sort((a, b) => b.startedAt - a.startedAt);
        for (const worker of newestFirst.slice(0, surplus)) stopWorker(worker, "idle");
      }
    }
  };

  const holdLease = async (fn: string): Promise<boolean> => {
    const value = JSON.stringify({ pool: id, renewedAt: Date.now() });
    const revision = held.get(fn);
    try {
      if (revision !== undefined) {
        held.set(fn, await leases.update(fn, value, revision));
        return true;
      }
      const entry = await leases.get(fn);
      if (entry && entry.operation === "PUT") {
        const holder = entry.json<{ pool: string }>().pool;
        if (holder !== id) return false;
        held.set(fn, await leases.update(fn, value, entry.revision));
        return true;
      }
      held.set(fn, await leases.create(fn, value));
      return true;
    } catch (error) {
      held.delete(fn);
      if (/wrong last sequence|key exists/i.test(String(error))) return false;
      throw error;
    }
  };

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const loop = (): void => {
    running = tick()
      .catch((error: unknown) => logger.warn("pool tick failed", errorFields(error)))
      .finally(() => {
        if (!isStopping) timer = setTimeout(loop, tickMs);
      });
  };
  loop();
  logger.info("pool started", {
    nats: options.natsUrl,
    // Where its workers' NATS credential comes from.
    workerCredential: workerCredential ?? (access.credential.kind === "none" ? "none" : "the pool's own"),
  });

  return {
    id,
    workers: () => {
      const counts = new Map<string, number>();
      for (const worker of workers)
        if (!worker.isStopping) counts.set(worker.fn, (counts.get(worker.fn) ?? 0) + 1);
      return counts;
    },
    stop: async () => {
      isStopping = true;
      clearTimeout(timer);
      await running;
      await Promise.all([...workers].map((worker) => worker.child.stop(30_000)));
      // Leases go with the pool, so another pool takes its functions at once.
      for (const fn of held.keys()) await leases.delete(fn).catch(() => undefined);
      await nc.drain().catch(() => undefined);
      logger.info("pool stopped");
    },
  };
}

/**
 * A lease lasts as long as the leases bucket keeps an entry (its max age), which the first pool
 * set when it created the bucket. Pools started with different `BATON_POOL_LEASE_TTL_MS` agree on
 * the longest: a pool that asks for longer raises the bucket's (a pool whose ticks are further apart
 * than the bucket's age would lose its leases between renewals, and pools would take the functions
 * from each other in turn); one that asks for shorter keeps the longer and says so. Lowering it is
 * an operator's choice (`nats stream edit KV_baton_pool_leases --max-age`, or removing the bucket
 * while no pool runs: docs/functions.md). Resolves with the lease TTL in force.
 */
export async function agreeLeaseTtl(
  jsm: JetStreamManager,
  wantedMs: number,
  logger: Pick<Logger, "info">,
): Promise<number> {
  const stream = `KV_${leasesBucket}`;
  // Read, raise, read again: two pools raising it at once may each write theirs; the longer must stay.
  for (let raised: number | undefined; ;) {
    const info = await retryNats(() => jsm.streams.info(stream));
    const currentMs = Math.round(info.config.max_age / 1e6);
    if (currentMs >= wantedMs) {
      if (raised !== undefined)
        logger.info(`leases now last ${currentMs} ms (BATON_POOL_LEASE_TTL_MS), up from ${raised} ms`);
      else if (currentMs > wantedMs)
        logger.info(
          `leases last ${currentMs} ms, as an earlier pool asked; this pool's BATON_POOL_LEASE_TTL_MS (${wantedMs}) is shorter and does not lower it`,
        );
      return currentMs;
    }
    raised ??= currentMs;
    await retryNats(() => jsm.streams.update(stream, { ...info.config, max_age: wantedMs * 1e6 }));
  }
}

/** What a pool's workers get in place of the NATS variable `NATS_<X>`: `BATON_POOL_WORKER_<X>`. */
export const poolWorkerPrefix = "BATON_POOL_WORKER_";
/** The pool's credential: never passed on once a worker credential is given. */
const credentialVariables = ["NATS_CREDS", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "NATS_NKEY"];
/** Its client certificate: passed on unless the workers get one of their own. */
const certificateVariables = ["NATS_CERT", "NATS_KEY"];
const workerVariable = (name: string) => `${poolWorkerPrefix}${name.slice("NATS_".length)}`;

/**
 * The environment of the workers a pool starts, from the pool's `env`. When any
 * `BATON_POOL_WORKER_<X>` is set (X: CREDS, USER, PASSWORD, TOKEN, NKEY, CERT, KEY), the workers
 * get those as `NATS_<X>` and none of the pool's own credential variables (NATS_CREDS,
 * NATS_USER, NATS_PASSWORD, NATS_TOKEN, NATS_NKEY); the pool's NATS_CA, and its NATS_CERT/NATS_KEY
 * unless BATON_POOL_WORKER_CERT/_KEY are set, still reach them. The worker credential is checked
 * as a process's own is (a missing file, a user without a password...): a mistake throws a
 * NatsAccessError naming the BATON_POOL_WORKER_ variable. `credential` names the variables in play
 * (undefined: none set, the workers get the pool's environment as it is).
 */
export function poolWorkerEnv(env: NodeJS.ProcessEnv): { env: NodeJS.ProcessEnv; credential?: string } {
  const given = natsAccessVariables
    .filter((name) => name !== "NATS_CA")
    .filter((name) => env[workerVariable(name)] !== undefined && env[workerVariable(name)] !== "");
  const workerEnv: NodeJS.ProcessEnv = { ...env };
  for (const name of natsAccessVariables) delete workerEnv[workerVariable(name)];
  if (given.length === 0) return { env: workerEnv };
  for (const name of credentialVariables) delete workerEnv[name];
  if (given.some((name) => certificateVariables.includes(name)))
    for (const name of certificateVariables) delete workerEnv[name];
  for (const name of given) workerEnv[name] = env[workerVariable(name)];
  try {
    natsAccessFromEnv(workerEnv);
  } catch (error) {
    if (!(error instanceof NatsAccessError)) throw error;
    throw new NatsAccessError(
      `the pool's worker credential: ${error.message.replace(/\bNATS_(CREDS|USER|PASSWORD|TOKEN|NKEY|CERT|KEY)\b/g, `${poolWorkerPrefix}$1`)}`,
    );
  }
  return { env: workerEnv, credential: given.map(workerVariable).join(", ") };
}

/**
 * Tasks of `fn` waiting or running, over both lanes. The task consumers are created first when
 * missing (as a worker creates them): before any worker ran, nothing else would count the tasks.
 */
async function backlogOf(jsm: JetStreamManager, fn: string, made: Set<string>): Promise<number> {
  if (!made.has(fn)) {
    await ensureWorkerStreams(jsm);
    await Promise.all([ensureTaskConsumer(jsm, "pure", fn), ensureTaskConsumer(jsm, "effect", fn)]);
    made.add(fn);
  }
  let total = 0;
  for (const lane of ["pure", "effect"] as const) {
    try {
      const info = await jsm.consumers.info(streams.tasks, taskConsumerConfig(lane, fn).durable_name);
      total += info.num_pending + info.num_ack_pending;
    } catch (error) {
      if (!isNotFound(error)) throw error;
      made.delete(fn); // removed by someone: made again next time
    }
  }
  return total;
}

async function liveHeartbeats(kv: KV): Promise<HeartbeatEnvelope[]> {
  const beats: HeartbeatEnvelope[] = [];
  // Not kv.keys(): heartbeats expire, and an entry expiring while it lists stalls it (kv-keys.ts).
  for (const key of await listKeys(kv)) {
    const entry = await kv.get(key);
    if (!entry || entry.operation !== "PUT") continue;
    try {
      const beat = entry.json<HeartbeatEnvelope>();
      if (beat.leaving !== true && Array.isArray(beat.functions)) beats.push(beat);
    } catch {
      // Not a heartbeat of ours: ignored.
    }
  }
  return beats;
}
