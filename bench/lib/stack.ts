/**
 * A fresh set-up for one scenario: its own nats-server (random port, temporary JetStream
 * directory), the engine and the worker(s) as separate processes, and the bench's own
 * connection with the client API and a history watch. Torn down whatever happens, so the next
 * scenario starts from nothing.
 */
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { Executions } from "../../engine/orchestrator/executions.ts";
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
}

export interface Stack {
  readonly server: NatsServer;
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

export async function withStack<T>(
  options: StackOptions,
  bench: BenchOptions,
  run: (stack: Stack) => Promise<T>,
): Promise<T> {
  return withServer(options.scenario, async (server, nc) => {
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
        nc,
        executions,
        history,
        get engine() {
          return engine;
        },
        workers,
        startEngine: async (name = `engine-${++engines}`) => {
          engine = await startEngine(server.url, {
            name,
            profileDir: profileDir(name),
            ...(options.engineEnv ? { env: options.engineEnv } : {}),
          });
          processes.push(engine);
          return engine;
        },
        pids: () => ({
          ...(engine === undefined ? {} : { engine: engine.pid }),
          ...Object.fromEntries(workers.map((worker) => [worker.name, worker.pid])),
          "nats-server": server.pid,
        }),
        startWorker: async (workerOptions = {}) => {
          const name = `worker-${workers.length + 1}`;
          const worker = await startWorker(server.url, {
            name,
            profileDir: bench.profileWorkers ? profileDir(name) : undefined,
            ...workerOptions,
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
