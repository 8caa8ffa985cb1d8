/**
 * Cold start, measured the same way whatever starts the worker: a task waits for `noop` and
 * nobody serves it; `start` brings up what will serve it (a `baton worker` process, or a pool
 * that spawns one); timed from just before `start` to the execution's end in history (process
 * start, module load, NATS connect, the first isolate, the call, the result applied by the
 * engine). `stop` ends it after each sample, so every sample starts cold (the OS file cache stays
 * warm; the warm-up samples are discarded for that reason).
 *
 * A variant is one `ColdStartVariant`: the scenario runs each on a fresh stack. The pool's
 * variant gives a `start` that starts (or wakes) the pool instead of spawning a worker itself.
 */
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { streams } from "../../sdk/protocol.ts";
import type { TestProcess } from "./processes.ts";
import type { Row } from "./scenario.ts";
import { verdict } from "./scenario.ts";
import type { Stack } from "./stack.ts";
import { now, summarize } from "./stats.ts";
import { until, withTimeout } from "./timing.ts";
import { chainWorkflow, payload } from "./workflows.ts";
import { endedChildrenCpuMs } from "./child-cpu.ts";

export interface ColdStarted {
  /** Resolves when what was started says it serves (a worker's "serving" line), if it can tell. */
  readonly serving?: Promise<void>;
  /** Stops it (and whatever it spawned) before the next sample. */
  stop(): Promise<void>;
}

export interface ColdStartVariant {
  /** The row's name, e.g. `cold-start` or `cold-start.pool`. */
  readonly scenario: string;
  /** What is started, for the row's notes (e.g. "`baton worker bench/functions/noop.mjs`"). */
  readonly description: string;
  /** Brings up what will serve the waiting task; called once the task waits, timed from the call. */
  start(stack: Stack, sample: number): ColdStarted | Promise<ColdStarted>;
}

export interface ColdStartOptions {
  readonly samples: number;
  readonly warmup: number;
  readonly log: (message: string) => void;
  /** The row's target; default the issue's: p50 ≤ 200 ms. `null`: a floor, with no target. */
  readonly targetMs?: number | null;
}

/** A `ColdStarted` for a worker process that logs "serving" when ready. */
export function coldStartedProcess(
  child: TestProcess,
  stop: (child: TestProcess) => Promise<void>,
): ColdStarted {
  return {
    serving: child.waitForLine(/serving/, { timeoutMs: 30_000 }).then(() => undefined),
    stop: () => stop(child),
  };
}

/** Runs `variant` `warmup + samples` times on `stack` and returns its row. */
export async function measureColdStart(
  stack: Stack,
  variant: ColdStartVariant,
  options: ColdStartOptions,
): Promise<Row> {
  const { executions, history, nc } = stack;
  const jsm = await nc.jetstreamManager();
  const workflow = "bench-cold-start";
  await executions.apply(chainWorkflow(workflow, 1));
  options.log(
    `${variant.scenario}: ${options.warmup + options.samples} cold starts of ${variant.description}`,
  );
  const results: number[] = [];
  const serving: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < options.warmup + options.samples; i++) {
    const id = newExecutionId();
    const end = history.expectEnd(id);
    await executions.start(workflow, payload(), { id });
    await until(
      "the task to wait in BATON_TASKS",
      async () => (await jsm.streams.info(streams.tasks)).state.messages > 0,
      10_000,
    );
    const startedAt = now();
    const cpuBefore = endedChildrenCpuMs();
    const started = await variant.start(stack, i);
    let measured = false;
    try {
      const servingAt = started.serving?.then(() => now());
      servingAt?.catch(() => undefined);
      const ended = await withTimeout(end, 30_000, `the first result of ${variant.scenario} sample ${i + 1}`);
      if (ended.status !== "succeeded") throw new Error(`execution ${id} ended ${ended.status}`);
      if (i < options.warmup) continue;
      results.push(ended.at - startedAt);
      if (servingAt !== undefined) serving.push((await servingAt) - startedAt);
      measured = true;
    } finally {
      await started.stop();
    }
    if (measured) cpu.push(endedChildrenCpuMs() - cpuBefore);
  }
  const latency = summarize(results);
  const targetMs = options.targetMs === null ? undefined : (options.targetMs ?? 200);
  const ready = serving.length > 0 ? summarize(serving) : undefined;
  const cpuUsed = summarize(cpu);
  return {
    scenario: variant.scenario,
    latency,
    result: `CPU p50 ${cpuUsed.p50.toFixed(0)} ms`,
    target: targetMs === undefined ? "" : `p50 ≤ ${targetMs} ms`,
    met: targetMs === undefined ? "n/a" : verdict(latency.p50 <= targetMs),
    notes: [
      `${variant.description}, started with the task already waiting → its first result in history` +
        (ready === undefined
          ? ""
          : `; it logged "serving" at p50 ${ready.p50.toFixed(0)} ms after the start`) +
        "; CPU: what the started processes used in their whole life (start, the call, the drain), from /proc/self/stat's cutime + cstime",
    ],
    data: {
      ...(ready === undefined ? {} : { servingP50Ms: ready.p50, servingP99Ms: ready.p99 }),
      cpuP50Ms: cpuUsed.p50,
      cpuP90Ms: cpuUsed.p90,
    },
  };
}
