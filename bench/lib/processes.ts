/**
 * The processes of a benchmark: the engine (`baton engine`), function workers, and the small
 * helpers the floors need, each a separate OS process as in production. Spawning, output capture
 * and clean-up come from the test helpers, so a benchmark and a system test start processes the
 * same way (and none outlives the run).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { spawnProcess, spawnTsx, type TestProcess } from "../../test/helpers/processes.ts";

export type { TestProcess };
export { spawnProcess };

export const repoRoot = resolve(import.meta.dirname, "../..");

/**
 * Baton's processes run the compiled code (dist/), as in production: `npm run bench` builds it
 * first. Throws, saying what to do, when dist/ is missing or older than the sources (bin/baton.mjs
 * checks that; BATON_FROM_SOURCE would hide it, so it is not passed on).
 */
export function assertBuilt(): void {
  const env = { ...process.env };
  delete env.BATON_FROM_SOURCE;
  const result = spawnSync(process.execPath, [join(repoRoot, "bin/baton.mjs"), "help"], {
    env,
    encoding: "utf8",
  });
  if (result.status !== 0)
    throw new Error(`the compiled code cannot run (npm run build?): ${result.stderr.trim()}`);
}

/** How long a process may take to say it is ready. */
const readyTimeoutMs = 30_000;

export interface EngineOptions {
  readonly name: string;
  /** Write a CPU profile of this engine to this directory when it exits (node --cpu-prof). */
  readonly profileDir?: string | undefined;
  readonly env?: Readonly<Record<string, string>>;
}

/** `node bin/baton.mjs engine` on `natsUrl`; resolves once it logs "engine ready". */
export async function startEngine(natsUrl: string, options: EngineOptions): Promise<TestProcess> {
  const engine = spawnProcess(
    process.execPath,
    [...profileFlags(options.profileDir), join(repoRoot, "bin/baton.mjs"), "engine"],
    {
      name: options.name,
      env: { NATS_URL: natsUrl, BATON_ENGINE_ID: options.name, ...options.env },
    },
  );
  await engine.waitForLine(/engine ready/, { timeoutMs: readyTimeoutMs });
  return engine;
}

export interface ApiProcess {
  readonly process: TestProcess;
  /** Where it listens (`http://127.0.0.1:<port>`). */
  readonly url: string;
}

/**
 * The HTTP API alone (`dist/engine/api/run-api.js --no-engine`, no tokens, a free port on loopback):
 * the stack's engine process does the engine's work, as in a deployment with separate API processes.
 */
export async function startApi(natsUrl: string, options: EngineOptions): Promise<ApiProcess> {
  const api = spawnProcess(
    process.execPath,
    [...profileFlags(options.profileDir), join(repoRoot, "dist/engine/api/run-api.js"), "--no-engine"],
    { name: options.name, env: { NATS_URL: natsUrl, BATON_LISTEN: "127.0.0.1:0", ...options.env } },
  );
  const match = await api.waitForLine(/"message":"api listening".*"url":"(http:\/\/[^"]+)"/, {
    timeoutMs: readyTimeoutMs,
  });
  return { process: api, url: match[1]! };
}

/** Node 20 refuses --cpu-prof in NODE_OPTIONS: it goes on the command line. */
function profileFlags(dir: string | undefined): string[] {
  if (dir === undefined) return [];
  mkdirSync(dir, { recursive: true });
  return ["--cpu-prof", `--cpu-prof-dir=${resolve(dir)}`];
}

export interface WorkerOptions {
  readonly name: string;
  /** Write a CPU profile of this worker (and of its isolates) to this directory when it exits. */
  readonly profileDir?: string | undefined;
  /** Function modules, relative to the repository root. Default: `functions/noop.ts`. */
  readonly modules?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Run `baton worker` (which starts OpenTelemetry from OTEL_*) instead of the bare worker kit. */
  readonly cli?: boolean;
}

/** Spawns a worker process (`dist/sdk/worker/run-worker.js`); it is serving once `waitForServing` resolves. */
export function spawnWorker(natsUrl: string, options: WorkerOptions): TestProcess {
  const modules = (options.modules ?? ["functions/noop.ts"]).map((module) => join(repoRoot, module));
  const entry = options.cli
    ? [join(repoRoot, "bin/baton.mjs"), "worker"]
    : [join(repoRoot, "dist/sdk/worker/run-worker.js")];
  return spawnProcess(process.execPath, [...profileFlags(options.profileDir), ...entry, ...modules], {
    name: options.name,
    env: { NATS_URL: natsUrl, BATON_WORKER_NAME: options.name, BATON_LOG_LEVEL: "info", ...options.env },
  });
}

export async function waitForServing(worker: TestProcess): Promise<void> {
  await worker.waitForLine(/serving/, { timeoutMs: readyTimeoutMs });
}

export async function startWorker(natsUrl: string, options: WorkerOptions): Promise<TestProcess> {
  const worker = spawnWorker(natsUrl, options);
  await waitForServing(worker);
  return worker;
}

/** A helper of the floors (bench/helpers/*.ts); resolves once it prints `ready`. */
export async function startHelper(script: string, natsUrl: string): Promise<TestProcess> {
  const helper = spawnTsx(join(repoRoot, "bench/helpers", script), [], {
    name: script,
    env: { NATS_URL: natsUrl },
  });
  await helper.waitForLine(/\bready\b/, { timeoutMs: readyTimeoutMs });
  return helper;
}

/** SIGTERM (the engine finishes its batches and, when profiled, writes its profile), SIGKILL after 20 s. */
export async function stopProcess(child: TestProcess): Promise<void> {
  await child.kill("SIGTERM", 20_000);
}

export interface ProcessMemory {
  /** Resident set size now (VmRSS), in MB. */
  readonly rssMb: number;
  /** The highest resident set size so far (VmHWM), in MB. */
  readonly peakRssMb: number;
}

/** Reads /proc/<pid>/status. */
export function memoryOf(pid: number): ProcessMemory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    if (match?.[1] === undefined) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(match[1]);
  };
  return { rssMb: kb("VmRSS") / 1024, peakRssMb: kb("VmHWM") / 1024 };
}
