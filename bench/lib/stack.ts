/**
 * A fresh set-up for one scenario: its own nats-server (random port, temporary JetStream
 * directory), the engine and the worker(s) as separate processes, and the bench's own
 * connection with the client API and a history watch. Torn down whatever happens, so the next
 * scenario starts from nothing.
 */
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { startNatsCluster } from "../../test/helpers/nats-cluster.ts";
import { startNatsServer, type NatsServer } from "../../test/helpers/nats-server.ts";
import { HistoryWatch } from "./history-watch.ts";
import type { BenchOptions } from "./options.ts";
import { startEngine, startWorker, stopProcess, type TestProcess, type WorkerOptions } from "./processes.ts";

export interface StackOptions {
  /** Names the scenario's profile directory. */
  readonly scenario: string;
  /** Start an engine process. Default true. */
  readonly engine?: boolean;
  /** Workers to start (none for waiting and cold-start). Default: `--workers` of them serving functions/noop.ts. */
  readonly workers?: readonly Omit<WorkerOptions, "name">[];
  /** Extra environment of the engine processes (OTEL_* for the tracing scenario). */
  readonly engineEnv?: Readonly<Record<string, string>>;
  /**
   * Run on a 3-node nats-server cluster (test/helpers/nats-cluster.ts) with every stream and
   * bucket at 3 replicas (`BATON_NATS_REPLICAS=3`), instead of one nats-server. Default false.
   */
  readonly cluster?: boolean;
}

/** The NATS a stack runs on: one server, or (for `cluster`) the cluster's first node. */
export type StackServer = Pick<NatsServer, "url" | "pid">;

export interface Stack {
  readonly server: StackServer;
  /** What NATS_URL the stack's processes get: the server's URL, or every node's. */
  readonly natsUrl: string;
  /** The bench's own connection: the client side of every measurement. */
  readonly nc: NatsConnection;
  /**
   * The client API over NATS (`engine/orchestrator/executions.ts`): start, waitForEnd, get. The
   * HTTP API and the SDK client do not exist yet, so this stands in for "the SDK".
   */
  readonly executions: Executions;
  readonly history: HistoryWatch;
  /** The engine process now (the latest, after a restart). */
  readonly engine: TestProcess | undefined;
  readonly workers: readonly TestProcess[];
  /** Starts an engine process (profiled when asked) and makes it the stack's engine. */
  startEngine(name?: string): Promise<TestProcess>;
  startWorker(options?: Omit<WorkerOptions, "name">): Promise<TestProcess>;
  /** The pids of the engine, the workers and nats-server, by name: what a CPU meter watches. */
  pids(): Record<string, number>;
}

/** A fresh nats-server and a connection to it, for scenarios that need nothing of Baton (the floors). */
export async function withServer<T>(
  scenario: string,
  run: (server: NatsServer, nc: NatsConnection) => Promise<T>,
): Promise<T> {
  const server = await startNatsServer();
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({ servers: server.url, name: `bench-${scenario}`, maxReconnectAttempts: -1 });
    return await run(server, nc);
  } finally {
    await nc?.close().catch(() => undefined);
    await server.stop();
  }
}

/**
 * A fresh 3-node cluster and a connection to every node; `BATON_NATS_REPLICAS=3` in this process
 * meanwhile, so what the bench's own connection creates is R3 from the start.
 */
async function withCluster<T>(
  scenario: string,
  run: (server: StackServer, nc: NatsConnection, natsUrl: string, pids: Record<string, number>) => Promise<T>,
): Promise<T> {
  const cluster = await startNatsCluster();
  const before = process.env.BATON_NATS_REPLICAS;
  process.env.BATON_NATS_REPLICAS = "3";
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({
      servers: cluster.urls.split(","),
      name: `bench-${scenario}`,
      maxReconnectAttempts: -1,
    });
    const pids = Object.fromEntries(cluster.nodes.map((node) => [`nats-${node.name}`, node.pid]));
    return await run(cluster.nodes[0]!, nc, cluster.urls, pids);
  } finally {
    await nc?.close().catch(() => undefined);
    if (before === undefined) delete process.env.BATON_NATS_REPLICAS;
    else process.env.BATON_NATS_REPLICAS = before;
    await cluster.stop();
  }
}

export async function withStack<T>(
  options: StackOptions,
  bench: BenchOptions,
  run: (stack: Stack) => Promise<T>,
): Promise<T> {
  const onNats = options.cluster
    ? (body: Parameters<typeof withCluster<T>>[1]) => withCluster(options.scenario, body)
    : (body: Parameters<typeof withCluster<T>>[1]) =>
        withServer(options.scenario, (server, nc) =>
          body(server, nc, server.url, { "nats-server": server.pid }),
        );
  const replicas: Record<string, string> = options.cluster ? { BATON_NATS_REPLICAS: "3" } : {};
  return onNats(async (server, nc, natsUrl, natsPids) => {
    const processes: TestProcess[] = [];
    const profileDir = (child: string): string | undefined =>
      bench.profileDir === undefined ? undefined : join(bench.profileDir, options.scenario, child);
    const executions = await Executions.connect(nc);
    const history = await HistoryWatch.start(nc);
    try {
      let engine: TestProcess | undefined;
      const workers: TestProcess[] = [];
      let engines = 0;
      const stack: Stack = {
        server,
        natsUrl,
        nc,
        executions,
        history,
        get engine() {
          return engine;
        },
        workers,
        startEngine: async (name = `engine-${++engines}`) => {
          engine = await startEngine(natsUrl, {
            name,
            profileDir: profileDir(name),
            env: { ...replicas, ...options.engineEnv },
          });
          processes.push(engine);
          return engine;
        },
        pids: () => ({
          ...(engine === undefined ? {} : { engine: engine.pid }),
          ...Object.fromEntries(workers.map((worker) => [worker.name, worker.pid])),
          ...natsPids,
        }),
        startWorker: async (workerOptions = {}) => {
          const name = `worker-${workers.length + 1}`;
          const worker = await startWorker(natsUrl, {
            name,
            profileDir: bench.profileWorkers ? profileDir(name) : undefined,
            ...workerOptions,
            env: { ...replicas, ...workerOptions.env },
          });
          processes.push(worker);
          workers.push(worker);
          return worker;
        },
      };
      if (options.engine ?? true) await stack.startEngine();
      for (const worker of options.workers ?? Array.from({ length: bench.workers }, () => ({})))
        await stack.startWorker(worker);
      return await run(stack);
    } finally {
      history.stop();
      // While NATS is still up: the engine finishes its batches, and profiled processes write their profiles.
      await Promise.allSettled(processes.map(stopProcess));
    }
  });
}
