/**
 * steps: sustained completed steps per second with many executions at once: 64 client loops,
 * each starting a 10-step noop chain and starting the next as soon as its last one ended, for a
 * fixed time after a warm-up. Steps are counted as AttemptSucceeded history records written in
 * the window, so chains cut by its edges count for the steps they did in it.
 */
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { cpuData, formatCpu, startCpuMeter } from "../lib/cpu.ts";
import { sized, verdict, type BenchContext, type Row, type Scenario } from "../lib/scenario.ts";
import { withStack, type StackOptions } from "../lib/stack.ts";
import { now, summarize } from "../lib/stats.ts";
import { sleep, withTimeout } from "../lib/timing.ts";
import { chainWorkflow, payload } from "../lib/workflows.ts";

const workflow = "bench-steps";
const concurrentChains = 64;
const chainLength = 10;

type Phase = "warmup" | "measure" | "drain";

export const steps: Scenario = {
  name: "steps",
  summary: `sustained completed steps/s: ${concurrentChains} concurrent ${chainLength}-step chains for a fixed time`,
  run: (context) => measureSteps(context),
};

/** steps on a fresh stack: one nats-server, or a 3-node R3 cluster (the `cluster` scenario). */
export async function measureSteps(
  { options, log }: BenchContext,
  nats: Pick<StackOptions, "cluster"> = {},
): Promise<Row[]> {
  return withStack({ scenario: "steps", ...nats }, options, async (stack) => {
    const { executions, history } = stack;
    await executions.apply(chainWorkflow(workflow, chainLength));
    const input = payload();
    // Long enough for the worker to start its isolates (16 threads, each loading tsx and the module).
    const warmupMs = sized(options, 10_000, 3_000);
    const measureMs = sized(options, 30_000, 5_000);
    let phase: Phase = "warmup";
    const latencies: number[] = [];
    let failed = 0;

    const loop = async (): Promise<void> => {
      while (phase !== "drain") {
        const id = newExecutionId();
        const end = history.expectEnd(id);
        const startedIn = phase;
        const started = now();
        await executions.start(workflow, input, { id });
        const ended = await withTimeout(end, 120_000, `the end of ${id}`);
        if (ended.status !== "succeeded") failed++;
        // Chains wholly inside the window: the latency under steady load, not the ramp-up's.
        if (startedIn === "measure" && phase === "measure") latencies.push(ended.at - started);
      }
    };

    log(
      `steps: ${concurrentChains} chains at once, ${warmupMs / 1_000} s warm-up, ${measureMs / 1_000} s measured`,
    );
    const loops = Array.from({ length: concurrentChains }, loop);
    const running = Promise.all(loops);
    await Promise.race([sleep(warmupMs), running]);
    phase = "measure";
    const stepsBefore = history.counts.attemptsSucceeded;
    const endsBefore = history.counts.executionsEnded;
    const cpu = startCpuMeter(stack.pids());
    const windowStarted = now();
    await Promise.race([sleep(measureMs), running]);
    const seconds = (now() - windowStarted) / 1_000;
    const completedSteps = history.counts.attemptsSucceeded - stepsBefore;
    const completedChains = history.counts.executionsEnded - endsBefore;
    const shares = cpu();
    phase = "drain";
    await running;

    const rate = completedSteps / seconds;
    const row: Row = {
      scenario: "steps",
      ...(latencies.length > 0 ? { latency: summarize(latencies) } : {}),
      throughput: `${Math.round(rate).toLocaleString("en-US")} steps/s`,
      result: `${(completedChains / seconds).toFixed(0)} chains/s`,
      target: "≥ 5,000 steps/s",
      met: verdict(rate >= 5_000, failed === 0),
      notes: [
        `${concurrentChains} concurrent ${chainLength}-step noop chains, ${seconds.toFixed(1)} s window after ` +
          `${warmupMs / 1_000} s warm-up; p50/p90/p99 are the latencies (start → end in history) of the chains that began and ended in the window`,
        formatCpu(shares),
        ...(failed > 0 ? [`${failed} executions did not succeed`] : []),
      ],
      data: { stepsPerSecond: rate, completedSteps, windowSeconds: seconds, failed, ...cpuData(shares) },
    };
    return [row];
  });
}
