/**
 * The peers of the `peers` scenario, set up like Baton's stack: each on a fresh server (random
 * ports, a temporary data directory), its functions in a separate process, all torn down after.
 *
 * - Restate: `restate-server` (the binary of the `@restatedev/restate-server` npm package), with
 *   or without its log's fsync (see RestateOptions), and a service process
 *   (bench/peers/restate-service.mjs, the TypeScript SDK) registered through the admin API; the
 *   bench calls the ingress over HTTP/1.1 with keep-alive.
 * - BullMQ: Debian's `redis-server` and a worker process (bench/peers/bullmq-worker.mjs); the
 *   bench adds flows with a FlowProducer and awaits them with QueueEvents.
 *
 * The peers are installed in bench/peers/node_modules by bench/peers/setup.sh, never as Baton's
 * dependencies, so nothing here imports them statically: BullMQ's client is loaded at run time
 * and typed by the few members used below.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { arch, platform, tmpdir } from "node:os";
import { join } from "node:path";
import { onProcessExit, spawnProcess, type TestProcess } from "../../test/helpers/processes.ts";
import { repoRoot, stopProcess } from "./processes.ts";
import { sleep } from "./timing.ts";

export const peersDir = join(repoRoot, "bench/peers");

const readyTimeoutMs = 60_000;
const peerRequire = createRequire(join(peersDir, "package.json"));

/** Why the npm peers cannot run (not installed), or undefined when they can. */
export function peersMissing(): string | undefined {
  if (existsSync(join(peersDir, "node_modules/bullmq/package.json"))) return undefined;
  return "the peers are not installed: run `bash bench/peers/setup.sh` (`npm run bench:peers` does it first)";
}

function packageVersion(name: string): string {
  try {
    const path = join(peersDir, "node_modules", name, "package.json");
    return (JSON.parse(readFileSync(path, "utf8")) as { version: string }).version;
  } catch {
    return "not installed";
  }
}

/** A temporary directory, removed by the caller, or when the bench exits (Ctrl-C) at the latest. */
function temporaryDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A port nothing listens on right now (the server started on it may still lose a race: callers retry). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address !== null
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Restate

export interface RestateStack {
  /** `http://127.0.0.1:<port>`: the ingress, where `Chain/run` is called. */
  readonly ingress: string;
  /** Calls `Chain/run` with `{ steps, payload }` and resolves with the response body. */
  runChain(steps: number, payload: unknown): Promise<string>;
  pids(): Record<string, number>;
}

export interface RestateVersions {
  readonly server: string;
  readonly sdk: string;
}

export function restateVersions(): RestateVersions {
  return {
    server: packageVersion("@restatedev/restate-server"),
    sdk: packageVersion("@restatedev/restate-sdk"),
  };
}

export interface RestateOptions {
  /**
   * Restate's default (true): the log server fsyncs its RocksDB WAL before it acknowledges an
   * append, so every step pays an fsync (batched across concurrent appends). false: the WAL is
   * written but not fsync'd (`rocksdb-disable-wal-fsync`), an acknowledged step is in the page
   * cache, like a JetStream ack on nats-server 2.9.10: a process crash loses nothing, a power loss
   * can lose the last writes.
   */
  readonly fsync: boolean;
}

function restateEnv(options: RestateOptions): Record<string, string> {
  return {
    RESTATE_DISABLE_TELEMETRY: "true",
    ...(options.fsync
      ? {}
      : {
          RESTATE_LOG_SERVER__ROCKSDB_DISABLE_WAL_FSYNC: "true",
          // The single-node log provider, in case it is the one in use.
          RESTATE_BIFROST__LOCAL__ROCKSDB_DISABLE_WAL_FSYNC: "true",
        }),
  };
}

/** restate-server's own settings for the run; everything else, durability aside, is the default. */
function restateArgs(dir: string): string[] {
  return [
    "--no-logo",
    "--base-dir",
    dir,
    "--node-name",
    "bench",
    "--bind-ip",
    "127.0.0.1",
    "--use-random-ports",
    "true",
    "--listen-mode",
    "tcp",
    // JSON lines, so the random ports can be read from the "listening" lines.
    "--log-format",
    "json",
    "--shutdown-timeout",
    "5s",
  ];
}

function restateBinary(): string {
  // What the package's `restate-server` script runs, without the Node wrapper in between.
  return peerRequire.resolve(`@restatedev/restate-server-${platform()}-${arch()}/bin/restate-server`);
}

/** Waits for restate-server's line saying `server` listens, and returns the port. */
async function listeningPort(server: TestProcess, name: string): Promise<number> {
  const match = await server.waitForLine(new RegExp(`"server_name":"${name}"`), {
    timeoutMs: readyTimeoutMs,
  });
  const line = JSON.parse(match.input ?? "{}") as { span?: Record<string, unknown> };
  const port = Number(line.span?.["server.port"]);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`restate-server: no port in ${match.input}`);
  return port;
}

export async function withRestate<T>(
  options: RestateOptions,
  run: (stack: RestateStack) => Promise<T>,
): Promise<T> {
  const dir = temporaryDir("baton-restate-");
  const processes: TestProcess[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  try {
    const server = spawnProcess(restateBinary(), restateArgs(dir), {
      name: "restate-server",
      cwd: dir,
      env: restateEnv(options),
    });
    processes.push(server);
    const ingressPort = await listeningPort(server, "http-ingress-server");
    const adminPort = await listeningPort(server, "admin-api-server");

    const service = spawnProcess(process.execPath, ["--import", "./polyfill.mjs", "restate-service.mjs"], {
      name: "restate-service",
      cwd: peersDir,
    });
    processes.push(service);
    const [, servicePort] = await service.waitForLine(/^listening (\d+)$/, { timeoutMs: readyTimeoutMs });

    const ingress = `http://127.0.0.1:${ingressPort}`;
    const admin = `http://127.0.0.1:${adminPort}`;
    // Register the deployment: restate-server discovers Step and Chain from the service.
    await retry("registering the Restate deployment", async () => {
      const response = await post(agent, `${admin}/deployments`, { uri: `http://127.0.0.1:${servicePort}` });
      if (response.status !== 201 && response.status !== 200)
        throw new Error(`admin API answered ${response.status}: ${response.body}`);
    });
    const stack: RestateStack = {
      ingress,
      runChain: async (steps, payload) => {
        const response = await post(agent, `${ingress}/Chain/run`, { steps, payload });
        if (response.status !== 200)
          throw new Error(`Chain/run answered ${response.status}: ${response.body}`);
        return response.body;
      },
      pids: () => ({ "restate-server": server.pid, "restate-service": service.pid }),
    };
    // The ingress learns of the new services shortly after the registration.
    await retry("the first Chain/run call", () => stack.runChain(1, {}));
    return await run(stack);
  } finally {
    agent.destroy();
    for (const child of processes.reverse()) await stopProcess(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

interface HttpResponse {
  readonly status: number;
  readonly body: string;
}

function post(agent: Agent, url: string, body: unknown): Promise<HttpResponse> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(data) },
        timeout: 30_000,
      },
      (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => (text += chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: text }));
        response.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`POST ${url}: no answer within 30 s`)));
    req.on("error", reject);
    req.end(data);
  });
}

async function retry<T>(what: string, attempt: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline)
        throw new Error(`${what} kept failing for ${timeoutMs / 1_000} s`, { cause: error });
      await sleep(100);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// BullMQ

/** The few members of BullMQ's client the bench uses (the package is loaded at run time). */
interface FlowJob {
  readonly name: string;
  readonly queueName: string;
  readonly data?: unknown;
  readonly children?: FlowJob[];
}
interface BullmqJob {
  waitUntilFinished(queueEvents: unknown, ttlMs?: number): Promise<unknown>;
}
interface RedisConnectionOptions {
  readonly host: string;
  readonly port: number;
}
interface BullmqModule {
  FlowProducer: new (options: { connection: RedisConnectionOptions }) => {
    add(flow: FlowJob): Promise<{ job: BullmqJob }>;
    setMaxListeners(count: number): void;
    close(): Promise<void>;
  };
  QueueEvents: new (
    queue: string,
    options: { connection: RedisConnectionOptions },
  ) => { waitUntilReady(): Promise<unknown>; close(): Promise<void> };
}

export interface BullmqStack {
  /** Adds a chain of `steps` nested jobs (each carrying `payload`) and awaits the root's completion. */
  runChain(steps: number, payload: unknown): Promise<void>;
  pids(): Record<string, number>;
}

export interface BullmqVersions {
  readonly bullmq: string;
  readonly ioredis: string;
  readonly redis: string;
}

function redisBinary(): string {
  const configured = process.env.REDIS_SERVER_BIN;
  if (configured !== undefined && configured !== "") return configured;
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/bin", "/usr/local/bin"]))
    if (dir !== "" && existsSync(join(dir, "redis-server"))) return join(dir, "redis-server");
  throw new Error("redis-server not found: run `bash bench/peers/setup.sh`, or set REDIS_SERVER_BIN");
}

export function bullmqVersions(): BullmqVersions {
  let redis = "not installed";
  try {
    const text = execFileSync(redisBinary(), ["--version"], { encoding: "utf8" });
    redis = /v=(\S+)/.exec(text)?.[1] ?? text.trim();
  } catch {
    // Reported as not installed.
  }
  return { bullmq: packageVersion("bullmq"), ioredis: packageVersion("ioredis"), redis };
}

/**
 * redis-server's settings: no config file, so nothing of the system's redis.conf applies. Every
 * write goes to an append-only file (written before the reply, fsync'd once a second: a process
 * crash loses nothing acknowledged, a power loss up to a second), no RDB snapshots. The closest
 * Redis has to nats-server 2.9.10's "acknowledged once in the page cache".
 */
export const redisPersistence = "appendonly yes, appendfsync everysec, no RDB snapshots (save '')";

function redisArgs(port: number, dir: string): string[] {
  return [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--appendonly",
    "yes",
    "--appendfsync",
    "everysec",
    "--save",
    "",
    "--maxmemory-policy",
    "noeviction",
    "--daemonize",
    "no",
    "--logfile",
    "",
  ];
}

async function startRedis(dir: string): Promise<{ process: TestProcess; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const redis = spawnProcess(redisBinary(), redisArgs(port, dir), { name: "redis-server" });
    try {
      await redis.waitForLine(/Ready to accept connections/, { timeoutMs: readyTimeoutMs });
      return { process: redis, port };
    } catch (error) {
      await redis.kill("SIGKILL");
      // Lost the port to another process between freePort() and the bind: try another.
      if (attempt >= 3 || !/Address already in use/.test(redis.output())) throw error;
    }
  }
}

/** A chain of `steps` jobs as a flow: step N is the root, step 1 the innermost child (run first). */
function chainFlow(queueName: string, steps: number, payload: unknown): FlowJob {
  let flow: FlowJob = { name: "step-1", queueName, data: payload };
  for (let step = 2; step <= steps; step++)
    flow = { name: `step-${step}`, queueName, data: payload, children: [flow] };
  return flow;
}

/** `inFlight`: the most chains the bench will run at once, and the worker's concurrency. */
export async function withBullmq<T>(inFlight: number, run: (stack: BullmqStack) => Promise<T>): Promise<T> {
  const bullmq = peerRequire("bullmq") as BullmqModule;
  const dir = temporaryDir("baton-redis-");
  const processes: TestProcess[] = [];
  const closers: (() => Promise<void>)[] = [];
  const queue = "bench-chain";
  try {
    const redis = await startRedis(dir);
    processes.push(redis.process);
    const worker = spawnProcess(process.execPath, ["bullmq-worker.mjs"], {
      name: "bullmq-worker",
      cwd: peersDir,
      env: { REDIS_PORT: String(redis.port), QUEUE: queue, CONCURRENCY: String(inFlight) },
    });
    processes.push(worker);
    await worker.waitForLine(/^ready$/, { timeoutMs: readyTimeoutMs });

    const connection = { host: "127.0.0.1", port: redis.port };
    const flows = new bullmq.FlowProducer({ connection });
    closers.push(() => flows.close());
    // Every job awaiting its end listens on the producer for it closing: one per chain in flight.
    flows.setMaxListeners(inFlight + 10);
    const events = new bullmq.QueueEvents(queue, { connection });
    closers.push(() => events.close());
    await events.waitUntilReady();
    return await run({
      runChain: async (steps, payload) => {
        const { job } = await flows.add(chainFlow(queue, steps, payload));
        await job.waitUntilFinished(events, 30_000);
      },
      pids: () => ({ "redis-server": redis.process.pid, "bullmq-worker": worker.pid }),
    });
  } finally {
    await Promise.allSettled(closers.map((close) => close()));
    for (const child of processes.reverse()) await stopProcess(child);
    rmSync(dir, { recursive: true, force: true });
  }
}
