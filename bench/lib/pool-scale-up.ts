/**
 * The pool's scale-up from zero under a backlog (cold-start's `pool-scale-up.*` rows): `sleep-50`
 * (bench/functions/sleep-50.mjs) is deployed with minScale 0, maxScale 4 and concurrency 4;
 * 200 executions that call it wait in BATON_TASKS with no worker running; then `baton pool`
 * starts. Timed from the pool's spawn: the first live worker of the package (its heartbeat in the
 * workers bucket), all 4 live, and the last of the 200 executions ended. One sample per fresh
 * stack, so that no heartbeat of a previous sample is counted.
 */
import { join } from "node:path";
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { listKeys } from "../../engine/nats/kv-keys.ts";
import { buckets, streams } from "../../sdk/protocol.ts";
import { spawnProcess, repoRoot, stopProcess } from "./processes.ts";
import type { Row } from "./scenario.ts";
import type { Stack } from "./stack.ts";
import { now, summarize, type Summary } from "./stats.ts";
import { until, withTimeout } from "./timing.ts";
import { payload } from "./workflows.ts";

export const scaleUp = { backlog: 200, maxScale: 4, concurrency: 4, taskMs: 50 } as const;

export interface ScaleUpSample {
  readonly firstWorkerMs: number;
  readonly allWorkersMs: number;
  readonly drainedMs: number;
}

/** One sample on a fresh stack (its engine running, no worker). */
export async function measureScaleUp(stack: Stack): Promise<ScaleUpSample> {
  const { bundleFunction } = await import("../../engine/functions/bundle.ts");
  const { PackageStore } = await import("../../engine/functions/package-store.ts");
  const store = await PackageStore.open(stack.nc.jetstream());
  await store.put(
    "sleep-50",
    await bundleFunction(join(repoRoot, "bench/functions/sleep-50.mjs")),
    "node20",
    {
      minScale: 0,
      maxScale: scaleUp.maxScale,
      concurrency: scaleUp.concurrency,
      idleMs: 60_000,
    },
  );
  const workflow = "bench-pool-scale-up";
  await stack.executions.apply(`baton: v1\nname: ${workflow}\nsteps:\n  - name: sleep\n    call: sleep-50\n`);
  const ids = Array.from({ length: scaleUp.backlog }, () => newExecutionId());
  const ends = ids.map((id) => stack.history.expectEnd(id));
  for (const id of ids) await stack.executions.start(workflow, payload(), { id });
  const jsm = await stack.nc.jetstreamManager();
  await until(
    `the ${scaleUp.backlog} tasks to wait in BATON_TASKS`,
    async () => (await jsm.streams.info(streams.tasks)).state.messages >= scaleUp.backlog,
    30_000,
  );
  const workers = await stack.nc.jetstream().views.kv(buckets.workers);
  const startedAt = now();
  const pool = spawnProcess(process.execPath, [join(repoRoot, "bin/baton.mjs"), "pool"], {
    name: "pool-scale-up",
    env: { NATS_URL: stack.natsUrl, BATON_LOG_LEVEL: "info", BATON_FROM_SOURCE: undefined },
  });
  try {
    let firstWorkerMs: number | undefined;
    let allWorkersMs: number | undefined;
    const drained = Promise.all(ends).then((ended) => Math.max(...ended.map((end) => end.at)) - startedAt);
    drained.catch(() => undefined);
    await withTimeout(
      (async () => {
        while (allWorkersMs === undefined) {
          const live = (await listKeys(workers)).length;
          const at = now() - startedAt;
          if (live >= 1) firstWorkerMs ??= at;
          if (live >= scaleUp.maxScale) allWorkersMs = at;
          else await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })(),
      60_000,
      `${scaleUp.maxScale} live workers of sleep-50`,
    );
    const drainedMs = await withTimeout(drained, 60_000, `the ${scaleUp.backlog} executions to end`);
    const statuses = await Promise.all(ends);
    const failed = statuses.filter((ended) => ended.status !== "succeeded").length;
    if (failed > 0) throw new Error(`${failed} of the ${scaleUp.backlog} executions did not succeed`);
    return { firstWorkerMs: firstWorkerMs!, allWorkersMs: allWorkersMs!, drainedMs };
  } finally {
    await stopProcess(pool);
  }
}

/** The rows of the samples. */
export function scaleUpRows(samples: readonly ScaleUpSample[]): Row[] {
  const row = (scenario: string, latency: Summary, note: string): Row => ({
    scenario,
    latency,
    result: "",
    target: "",
    met: "n/a",
    notes: [note],
  });
  const what =
    `\`baton pool\` started with ${scaleUp.backlog} tasks of \`sleep-50\` (${scaleUp.taskMs} ms each) waiting and no worker; ` +
    `maxScale ${scaleUp.maxScale}, concurrency ${scaleUp.concurrency}; one sample per fresh stack; timed from the pool's spawn`;
  return [
    row(
      "pool-scale-up.first",
      summarize(samples.map((s) => s.firstWorkerMs)),
      `${what}, to its first live worker (heartbeat)`,
    ),
    row(
      "pool-scale-up.max",
      summarize(samples.map((s) => s.allWorkersMs)),
      `${what}, to ${scaleUp.maxScale} live workers`,
    ),
    row(
      "pool-scale-up.drained",
      summarize(samples.map((s) => s.drainedMs)),
      `${what}, to the last of the ${scaleUp.backlog} executions ended (${scaleUp.backlog}×${scaleUp.taskMs} ms of work, ${(scaleUp.backlog * scaleUp.taskMs) / (scaleUp.maxScale * scaleUp.concurrency)} ms at full scale)`,
    ),
  ];
}
