/**
 * cold-start: a task is waiting for a function no worker serves; a worker process is spawned;
 * timed from the spawn to the execution's end in history (process start, module load, NATS
 * connect, first isolate, the call, the result applied by the engine). The worker is stopped
 * after each sample, so every sample starts cold (the OS file cache stays warm; the first sample
 * is discarded for that reason).
 */
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { streams } from "../../sdk/protocol.ts";
import { spawnWorker, stopProcess, waitForServing } from "../lib/processes.ts";
import { sized, verdict, type Row, type Scenario } from "../lib/scenario.ts";
import { withStack } from "../lib/stack.ts";
import { now, summarize } from "../lib/stats.ts";
import { until, withTimeout } from "../lib/timing.ts";
import { chainWorkflow, payload } from "../lib/workflows.ts";

const workflow = "bench-cold-start";

export const coldStart: Scenario = {
  name: "cold-start",
  summary: "spawn a worker process → first result, with the task already waiting",
  async run({ options, log }) {
    return withStack({ scenario: "cold-start", workers: [] }, options, async (stack) => {
      const { executions, history, nc } = stack;
      const jsm = await nc.jetstreamManager();
      await executions.apply(chainWorkflow(workflow, 1));
      const warmup = 1;
      const samples = sized(options, 8, 2);
      log(`cold-start: ${warmup + samples} worker spawns`);
      const results: number[] = [];
      const serving: number[] = [];
      for (let i = 0; i < warmup + samples; i++) {
        const id = newExecutionId();
        const end = history.expectEnd(id);
        await executions.start(workflow, payload(), { id });
        await until(
          "the task to wait in BATON_TASKS",
          async () => (await jsm.streams.info(streams.tasks)).state.messages > 0,
          10_000,
        );
        const spawned = now();
        const worker = spawnWorker(stack.server.url, { name: `cold-${i + 1}` });
        try {
          const servingAt = waitForServing(worker).then(() => now());
          const ended = await withTimeout(end, 30_000, `the first result of worker cold-${i + 1}`);
          if (ended.status !== "succeeded") throw new Error(`execution ${id} ended ${ended.status}`);
          if (i < warmup) continue;
          results.push(ended.at - spawned);
          serving.push((await servingAt) - spawned);
        } finally {
          await stopProcess(worker);
        }
      }
      const latency = summarize(results);
      const ready = summarize(serving);
      const row: Row = {
        scenario: "cold-start",
        latency,
        target: "p50 ≤ 200 ms",
        met: verdict(latency.p50 <= 200),
        notes: [
          `spawn of \`node --import tsx sdk/worker/run-worker.ts functions/noop.ts\` → its first result in history; ` +
            `the worker logged "serving" at p50 ${ready.p50.toFixed(0)} ms after spawn`,
        ],
        data: { servingP50Ms: ready.p50, servingP99Ms: ready.p99 },
      };
      return [row];
    });
  },
};
