/**
 * cold-start: how fast Baton's processes start, from the compiled code (dist/).
 *
 * - `cold-start`: a task waits for `noop`, no worker runs; `baton worker bench/functions/noop.mjs`
 *   is spawned; timed from the spawn to the execution's end in history (lib/cold-start.ts).
 *   `cold-start.ts-module`: the same with the TypeScript module `functions/noop.ts`, which the
 *   worker loads through tsx (Baton's own code stays compiled).
 * - `cli-start.*`: `baton --help`, `baton validate workflows/hello.yaml` and `baton run
 *   bench-cold-start` (against the stack's HTTP API, without --wait: it prints the id and exits),
 *   each timed from the spawn to the process's exit; `cli-start.node` is `node -e 0`, the floor.
 *
 * - `cold-start.floor`: bench/tools/floor-worker.mjs, a plain Node process that only loads the nats
 *   client, connects, pulls the task and reports it done: the floor under the worker rows.
 * - `cold-start.package-worker`: the same with `baton worker --package noop`, the deployed package
 *   of bench/functions/noop.mjs (what the pool spawns); `cold-start.pool`: `baton pool` started
 *   once the task waits, from zero to the result (its first tick, the spawn, the package worker).
 * - `pool-scale-up.*`: `baton pool` from zero under a backlog of 200 tasks (lib/pool-scale-up.ts):
 *   to its first live worker, to maxScale live workers, to the backlog drained.
 */
import { join } from "node:path";
import { coldStartedProcess, measureColdStart, type ColdStartVariant } from "../lib/cold-start.ts";
import {
  repoRoot,
  spawnProcess,
  spawnWorker,
  startApi,
  stopProcess,
  type ApiProcess,
} from "../lib/processes.ts";
import { sized, verdict, type Row, type Scenario } from "../lib/scenario.ts";
import { withStack, type Stack } from "../lib/stack.ts";
import { now, summarize } from "../lib/stats.ts";
import { chainWorkflow } from "../lib/workflows.ts";
import { endedChildrenCpuMs } from "../lib/child-cpu.ts";
import { measureScaleUp, scaleUpRows, type ScaleUpSample } from "../lib/pool-scale-up.ts";

const baton = join(repoRoot, "bin/baton.mjs");

/** `baton worker MODULE` (bin/baton.mjs, compiled), spawned once the task waits. */
export function workerVariant(scenario: string, module: string): ColdStartVariant {
  return {
    scenario,
    description: `spawn of \`baton worker ${module}\``,
    start: (stack, sample) =>
      coldStartedProcess(
        spawnWorker(stack.server.url, { name: `${scenario}-${sample + 1}`, cli: true, modules: [module] }),
        stopProcess,
      ),
  };
}

/**
 * Deploys bench/functions/noop.mjs as the package `noop` on the stack's NATS, as `baton function
 * deploy` does (bundled by esbuild, stored in the object store). Called from the first sample,
 * which is a warm-up and not counted.
 */
const deployed = new WeakSet<Stack>();
async function deployNoop(stack: Stack): Promise<void> {
  if (deployed.has(stack)) return;
  const { bundleFunction } = await import("../../engine/functions/bundle.ts");
  const { PackageStore, defaultScale } = await import("../../engine/functions/package-store.ts");
  const store = await PackageStore.open(stack.nc.jetstream());
  await store.put(
    "noop",
    await bundleFunction(join(repoRoot, "bench/functions/noop.mjs")),
    "node20",
    defaultScale,
  );
  deployed.add(stack);
}

/** A compiled `baton` process (bin/baton.mjs, dist/) on the stack's NATS. */
function spawnBaton(stack: Stack, name: string, args: string[]) {
  return spawnProcess(process.execPath, [baton, ...args], {
    name,
    env: {
      NATS_URL: stack.server.url,
      BATON_WORKER_NAME: name,
      BATON_LOG_LEVEL: "info",
      BATON_FROM_SOURCE: undefined,
    },
  });
}

/**
 * The floor under every worker row: bench/tools/floor-worker.mjs, the least a Node process does to
 * serve the task (Node's start, the NATS client, connect, pull, report), measured the same way.
 */
export const floorVariant: ColdStartVariant = {
  scenario: "cold-start.floor",
  description:
    "spawn of `node bench/tools/floor-worker.mjs` (Node, the nats client, one pull and a report: the floor)",
  start: (stack, sample) =>
    coldStartedProcess(
      spawnProcess(process.execPath, [join(repoRoot, "bench/tools/floor-worker.mjs")], {
        name: `floor-worker-${sample + 1}`,
        env: { NATS_URL: stack.server.url },
      }),
      stopProcess,
    ),
};

export const workerVariants: readonly ColdStartVariant[] = [
  workerVariant("cold-start", "bench/functions/noop.mjs"),
  workerVariant("cold-start.ts-module", "functions/noop.ts"),
  {
    // What the pool spawns for a deployed function: the package read from the object store
    // (digest checked, cached on disk after the first sample), then served.
    scenario: "cold-start.package-worker",
    description: "spawn of `baton worker --package noop` (the deployed package of bench/functions/noop.mjs)",
    start: async (stack, sample) => {
      await deployNoop(stack);
      return coldStartedProcess(
        spawnBaton(stack, `package-worker-${sample + 1}`, ["worker", "--package", "noop"]),
        stopProcess,
      );
    },
  },
  {
    // From zero as a user sees it: `baton pool` starts, sees the waiting task on its first tick
    // (BATON_POOL_TICK_MS, default 500 ms), and spawns a package worker.
    scenario: "cold-start.pool",
    description:
      "start of `baton pool`, which spawns `baton worker --package noop` for the waiting task (the pool's own start and first tick included: no target, the issue's is for the pool worker's spawn, the package-worker row)",
    start: async (stack, sample) => {
      await deployNoop(stack);
      const pool = spawnBaton(stack, `pool-${sample + 1}`, ["pool"]);
      return { stop: () => stopProcess(pool) };
    },
  },
];

interface CliCase {
  readonly scenario: string;
  readonly args: (api: ApiProcess) => string[];
  readonly exitCode: number;
  readonly targetMs?: number;
  readonly program?: string[];
}

const cliCases: readonly CliCase[] = [
  { scenario: "cli-start.node", args: () => [], program: ["-e", "0"], exitCode: 0 },
  { scenario: "cli-start.help", args: () => ["--help"], exitCode: 0, targetMs: 150 },
  {
    scenario: "cli-start.validate",
    args: () => ["validate", join(repoRoot, "workflows/hello.yaml")],
    exitCode: 0,
    targetMs: 150,
  },
  { scenario: "cli-start.run", args: () => ["run", "bench-cold-start"], exitCode: 0, targetMs: 150 },
];

/** Spawns the command `warmup + samples` times, one at a time; spawn → exit of each. */
async function measureCli(cliCase: CliCase, api: ApiProcess, samples: number, warmup: number): Promise<Row> {
  const times: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < warmup + samples; i++) {
    const cpuBefore = endedChildrenCpuMs();
    const started = now();
    const child = spawnProcess(process.execPath, cliCase.program ?? [baton, ...cliCase.args(api)], {
      name: cliCase.scenario,
      env: { BATON_URL: api.url, BATON_TOKEN: undefined, BATON_FROM_SOURCE: undefined },
    });
    const exit = await child.waitForExit(30_000);
    const elapsed = now() - started;
    if (exit.code !== cliCase.exitCode)
      throw new Error(`${cliCase.scenario} exited ${String(exit.code)}: ${child.stderr()}`);
    if (i >= warmup) {
      times.push(elapsed);
      cpu.push(endedChildrenCpuMs() - cpuBefore);
    }
  }
  const latency = summarize(times);
  const cpuUsed = summarize(cpu);
  const command = cliCase.program
    ? `node ${cliCase.program.join(" ")}`
    : `baton ${cliCase.args(api).join(" ")}`;
  return {
    scenario: cliCase.scenario,
    latency,
    result: `CPU p50 ${cpuUsed.p50.toFixed(0)} ms`,
    data: { cpuP50Ms: cpuUsed.p50, cpuP90Ms: cpuUsed.p90 },
    target: cliCase.targetMs === undefined ? "" : `p50 ≤ ${cliCase.targetMs} ms`,
    met: cliCase.targetMs === undefined ? "n/a" : verdict(latency.p50 <= cliCase.targetMs),
    notes: [
      `\`${command.replace(repoRoot + "/", "")}\`: spawn → exit` +
        (cliCase.program ? " (Node's own start, the floor under every row)" : ""),
    ],
  };
}

export const coldStart: Scenario = {
  name: "cold-start",
  summary: "spawn a worker process → first result (task already waiting); the CLI's start time",
  async run({ options, log }) {
    const rows: Row[] = [];
    for (const variant of [floorVariant, ...workerVariants]) {
      rows.push(
        await withStack({ scenario: variant.scenario, workers: [] }, options, (stack) =>
          measureColdStart(stack, variant, {
            samples: sized(options, 12, 2),
            warmup: 1,
            log,
            ...(variant === floorVariant || variant.scenario === "cold-start.pool" ? { targetMs: null } : {}),
          }),
        ),
      );
    }
    const scaleUpSamples: ScaleUpSample[] = [];
    const scaleUpRuns = sized(options, 3, 1);
    log(
      `pool-scale-up: ${scaleUpRuns} runs of \`baton pool\` from zero under a backlog, each on a fresh stack`,
    );
    for (let i = 0; i < scaleUpRuns; i++)
      scaleUpSamples.push(
        await withStack({ scenario: "pool-scale-up", workers: [] }, options, (stack) =>
          measureScaleUp(stack),
        ),
      );
    rows.push(...scaleUpRows(scaleUpSamples));
    rows.push(
      ...(await withStack({ scenario: "cli-start", workers: [] }, options, async (stack) => {
        await stack.executions.apply(chainWorkflow("bench-cold-start", 1));
        const api = await startApi(stack.server.url, { name: "api" });
        try {
          const cliRows: Row[] = [];
          const samples = sized(options, 20, 3);
          log(`cli-start: ${samples} runs of each command, after 2 thrown away`);
          for (const cliCase of cliCases) cliRows.push(await measureCli(cliCase, api, samples, 2));
          return cliRows;
        } finally {
          await stopProcess(api.process);
        }
      })),
    );
    return rows;
  },
};
