/**
 * The pool (docs/functions.md) with real processes: nats-server, the engine with its API, two
 * `baton pool` processes sharing the work through leases, and the workers they start. A deployed
 * function runs with no worker started by hand (the pool scales from zero), more workers come
 * under a backlog of 200 tasks (never more than maxScale, with two pools), they go after a short
 * idle, a new version deployed while tasks run loses none and runs the new tasks, and a package
 * whose workers crash at run is marked unhealthy and its step fails FunctionUnavailable; a pool
 * killed with SIGKILL leaves no worker behind and the other takes its function over.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatonClient } from "../../sdk/index.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess, waitUntil, type TestProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const baton = join(root, "bin/baton.mjs");
const sdk = join(root, "sdk/index.ts");
const server = useNatsServer();
const dir = mkdtempSync(join(tmpdir(), "baton-pool-"));
let apiUrl: string;
let client: BatonClient;
const pools: TestProcess[] = [];

const sleepyModule = (version: string) => `import { defineFunction } from ${JSON.stringify(sdk)};
import { existsSync } from "node:fs";
export const sleepy = defineFunction({
  name: "sleepy",
  // Holds the task until the test opens the gate (creates the file), if it names one.
  handler: async (input: { gate?: string }, ctx) => {
    while (input.gate !== undefined && !existsSync(input.gate)) await new Promise((resolve) => setTimeout(resolve, 50));
    return { version: ${JSON.stringify(version)}, worker: ctx.worker };
  },
});
`;

const crasherModule = `import { defineFunction } from ${JSON.stringify(sdk)};
export const crasher = defineFunction({
  name: "crasher",
  // Kills the whole worker process, not only its isolate: the worker crashes at run.
  handler: () => process.kill(process.pid, "SIGKILL"),
});
`;

interface FunctionBody {
  version: number;
  health: { status: string; reason?: string };
  workers: { worker: string; version?: number; running: number }[];
}

async function getFunction(name: string): Promise<FunctionBody> {
  const response = await fetch(`${apiUrl}/v1/functions/${name}`);
  expect(response.status).toBe(200);
  return (await response.json()) as FunctionBody;
}

async function deploy(file: string, ...options: string[]): Promise<string> {
  const child = spawnProcess(process.execPath, [baton, "function", "deploy", file, ...options], {
    name: "baton function deploy",
    env: { BATON_URL: apiUrl, BATON_TOKEN: undefined },
  });
  const exit = await child.waitForExit(60_000);
  expect(exit.code, child.output()).toBe(0);
  return child.stdout();
}

/** Starts `count` executions of `workflow` with `input`, a few requests at a time. */
async function startMany(workflow: string, count: number, input: Record<string, string>) {
  const handles = [];
  for (let i = 0; i < count; i += 20)
    handles.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(20, count - i) }, () => client.start(workflow, input)),
      )),
    );
  return handles;
}

beforeAll(async () => {
  writeFileSync(join(dir, "sleepy.ts"), sleepyModule("v1"));
  writeFileSync(join(dir, "crasher.ts"), crasherModule);
  const env = { NATS_URL: server().url, BATON_LOG_LEVEL: "warn", BATON_TOKEN: undefined };
  const api = spawnProcess(process.execPath, ["--import", "tsx", join(root, "engine/api/run-api.ts")], {
    name: "engine+api",
    cwd: root,
    env: { ...env, BATON_LISTEN: "127.0.0.1:0", BATON_API_TOKENS: undefined },
  });
  for (const name of ["pool-a", "pool-b"])
    pools.push(
      spawnProcess(process.execPath, [baton, "pool"], {
        name,
        env: {
          ...env,
          BATON_LOG_LEVEL: "info",
          BATON_POOL_TICK_MS: "200",
          BATON_PACKAGE_CACHE: join(dir, `cache-${name}`),
        },
      }),
    );
  apiUrl = (
    await api.waitForLine(/"message":"api listening".*"url":"(http:\/\/[^"]+)"/, { timeoutMs: 40_000 })
  )[1]!;
  await Promise.all(pools.map((pool) => pool.waitForLine(/"msg":"pool started"/, { timeoutMs: 40_000 })));
  client = new BatonClient({ url: apiUrl });
  await client.workflows.apply(`baton: v1
name: sleep-once
steps:
  - name: sleep
    call: sleepy
    with: \${ $input }
`);
  await client.workflows.apply(`baton: v1
name: crash-loop
steps:
  - name: crash
    call: crasher
    timeout: 2s
    retry:
      attempts: 1000
      delay: 100ms
      backoff: constant
`);
  await client.workflows.apply(`baton: v1
name: crash-once
steps:
  - name: crash
    call: crasher
    timeout: 2s
`);
});

afterAll(async () => {
  await killAllProcesses();
  rmSync(dir, { recursive: true, force: true });
});

describe("the pool", () => {
  it(
    "runs a deployed function from zero workers, scales up under a backlog of 200, and back to zero when idle",
    { timeout: 300_000 },
    async () => {
      expect(
        await deploy(join(dir, "sleepy.ts"), "--max-scale", "3", "--concurrency", "4", "--idle", "2s"),
      ).toMatch(/^sleepy version 1 \(created\)/m);
      expect((await getFunction("sleepy")).workers).toEqual([]);

      // Nobody serves sleepy: the pool starts a worker for the waiting task.
      const first = await client.start("sleep-once", {});
      expect(await first.result()).toMatchObject({ version: "v1" });

      // A backlog of 200 tasks, held until the test has seen the pool scale up to maxScale.
      const gate = join(dir, "gate-backlog");
      let mostWorkers = 0;
      const seen = new Set<string>();
      const handles = await startMany("sleep-once", 200, { gate });
      await waitUntil(
        "the pool to scale sleepy up to 3 workers under the backlog",
        async () => {
          const now = (await getFunction("sleepy")).workers;
          for (const worker of now) seen.add(JSON.stringify(worker));
          mostWorkers = Math.max(mostWorkers, now.length);
          return mostWorkers >= 3 ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 100 },
      );
      writeFileSync(gate, "");
      const sampling = setInterval(() => {
        void getFunction("sleepy").then(
          (fn) => {
            for (const worker of fn.workers) seen.add(JSON.stringify(worker));
            mostWorkers = Math.max(mostWorkers, fn.workers.length);
          },
          () => undefined,
        );
      }, 100);
      const outputs = (await Promise.all(handles.map((handle) => handle.result({ timeout: 120_000 })))) as {
        worker: string;
      }[];
      clearInterval(sampling);
      const workers = new Set(outputs.map((output) => output.worker));
      expect(workers.size, `workers that ran the 200 tasks: ${[...workers].join(", ")}`).toBe(3);
      // Two pools, one lease: never more live workers than maxScale.
      expect(mostWorkers, [...seen].join("\n")).toBe(3);

      // Idle for 2 s: the workers go.
      await waitUntil(
        "sleepy's workers to stop after idle",
        async () => ((await getFunction("sleepy")).workers.length === 0 ? true : undefined),
        { timeoutMs: 60_000, intervalMs: 200 },
      );
    },
  );

  it(
    "deploying a new version while tasks run loses none, and new tasks run the new version",
    { timeout: 300_000 },
    async () => {
      const gate = join(dir, "gate-deploy");
      const running = await startMany("sleep-once", 8, { gate });
      await waitUntil(
        "v1 workers to hold the tasks",
        async () => {
          const fn = await getFunction("sleepy");
          return fn.workers.some((worker) => worker.version === 1 && worker.running > 0) ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 100 },
      );
      writeFileSync(join(dir, "sleepy.ts"), sleepyModule("v2"));
      expect(
        await deploy(join(dir, "sleepy.ts"), "--max-scale", "3", "--concurrency", "4", "--idle", "2s"),
      ).toMatch(/^sleepy version 2 \(updated\)/m);
      await waitUntil(
        "a v2 worker",
        async () =>
          (await getFunction("sleepy")).workers.some((worker) => worker.version === 2) ? true : undefined,
        { timeoutMs: 120_000, intervalMs: 100 },
      );
      // New tasks run the new version, while the old version's workers still hold theirs.
      const after = await startMany("sleep-once", 10, {});
      const newOutputs = (await Promise.all(after.map((handle) => handle.result({ timeout: 120_000 })))) as {
        version: string;
      }[];
      expect(newOutputs.map((output) => output.version)).toEqual(Array(10).fill("v2"));
      // None of the tasks under way is lost (those past the old workers' drain run again on v2).
      writeFileSync(gate, "");
      const outputs = await Promise.all(running.map((handle) => handle.result({ timeout: 120_000 })));
      expect(outputs).toHaveLength(8);
    },
  );

  it(
    "marks a package whose workers crash at run unhealthy, and its step fails FunctionUnavailable",
    { timeout: 300_000 },
    async () => {
      await deploy(join(dir, "crasher.ts"), "--idle", "2s");
      // Its tasks keep coming back (1000 attempts): every worker the pool starts crashes.
      const loop = await client.start("crash-loop", {});
      const fn = await waitUntil(
        "crasher to be marked unhealthy",
        async () => {
          const found = await getFunction("crasher");
          return found.health.status === "unhealthy" ? found : undefined;
        },
        { timeoutMs: 240_000, intervalMs: 200 },
      );
      expect(fn.health.reason).toMatch(/3 workers of version 1 crashed within 300 s; the last: SIGKILL/);
      // A step calling it now fails FunctionUnavailable once its attempt times out.
      const once = await client.start("crash-once", {});
      const outcome = await once.outcome({ timeout: 120_000 });
      expect(outcome.status).toBe("failed");
      expect(outcome.error?.code).toBe("FunctionUnavailable");
      await loop.cancel();
      // The pools start no more of it (a killed worker's heartbeat entry lasts until it expires).
      await waitUntil(
        "crasher's workers to be gone",
        async () => ((await getFunction("crasher")).workers.length === 0 ? true : undefined),
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      const lines = pools.map((pool) => pool.output()).join("\n");
      expect(lines).toMatch(/"msg":"function marked unhealthy"/);
    },
  );

  // Last: it kills one of the two pools.
  it("a pool killed with SIGKILL leaves no worker behind, and the other pool takes its function", async () => {
    writeFileSync(join(dir, "warm.ts"), sleepyModule("warm").replaceAll('"sleepy"', '"warm"'));
    await deploy(join(dir, "warm.ts"), "--min-scale", "1");
    // The pool holding the function's lease starts its one warm worker.
    const started = await waitUntil(
      "a warm worker to start",
      () => {
        for (const pool of pools) {
          const match = /"msg":"worker started".*"function":"warm".*"pid":(\d+)/.exec(pool.output());
          if (match) return { pool, pid: Number(match[1]) };
        }
        return undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    await waitUntil("the warm worker to serve", async () =>
      (await getFunction("warm")).workers.length === 1 ? true : undefined,
    );
    // Only the pool: a SIGKILL leaves it no chance to stop its workers.
    process.kill(started.pool.child.pid!, "SIGKILL");
    await waitUntil(
      "the killed pool's worker to exit",
      () => {
        try {
          process.kill(started.pid, 0);
          return undefined;
        } catch {
          return true;
        }
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const other = pools.find((pool) => pool !== started.pool)!;
    const otherId = /"msg":"pool started","pool":"([^"]+)"/.exec(other.output())![1]!;
    // Its lease expires (10 s) and the other pool keeps the function warm.
    await waitUntil(
      "the other pool to run the warm worker",
      async () =>
        (await getFunction("warm")).workers.some((worker) => worker.worker.startsWith(otherId))
          ? true
          : undefined,
      { timeoutMs: 60_000, intervalMs: 200 },
    );
  }, 240_000); // more than its waits together: a stuck one says which it was
});
