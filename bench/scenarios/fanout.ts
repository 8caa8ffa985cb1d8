/**
 * fanout-1000: a `map` over 1,000 items (each a `noop` call with a ~256-byte input) joined by the
 * next step, start → end, one execution at a time; then a map over 10,000 items once. Every
 * item is an execution of its own in Baton, so this is 1,000 (10,000) starts, tasks and joins.
 */
import type { Executions } from "../../engine/orchestrator/executions.ts";
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { cpuData, formatCpu, startCpuMeter } from "../lib/cpu.ts";
import type { HistoryWatch } from "../lib/history-watch.ts";
import { sized, verdict, type Row, type Scenario } from "../lib/scenario.ts";
import { withStack } from "../lib/stack.ts";
import { now, summarize } from "../lib/stats.ts";
import { withTimeout } from "../lib/timing.ts";
import { payload } from "../lib/workflows.ts";

/** Items in flight at once: all of a 1,000-item map, so the engine is the limit, not the workflow. */
const mapConcurrency = 1_000;

function fanoutWorkflow(name: string): string {
  return `baton: v1
name: ${name}
steps:
  - name: each
    map:
      items: \${ [1..$input.n] }
      concurrency: ${mapConcurrency}
      steps:
        - name: one
          call: noop
          with:
            item: \${ $item }
            pad: \${ $input.pad }
  - name: join
    return: \${ $count($steps.each.output) }
`;
}

const workflow = "bench-fanout";

/** Runs one map over `n` items; resolves with its duration in ms once the join's output checks out. */
async function runMap(
  executions: Executions,
  history: HistoryWatch,
  n: number,
  timeoutMs: number,
): Promise<number> {
  const id = newExecutionId();
  const end = history.expectEnd(id);
  const started = now();
  await executions.start(workflow, { n, ...payload() }, { id });
  const ended = await withTimeout(end, timeoutMs, `a map over ${n} items`).finally(() => history.forget(id));
  const record = await executions.get(id);
  if (ended.status !== "succeeded" || record?.output !== n)
    throw new Error(
      `the map over ${n} items ended ${ended.status} with ${JSON.stringify(record?.output ?? record?.error)}`,
    );
  return ended.at - started;
}

export const fanout: Scenario = {
  name: "fanout-1000",
  summary: "a map over 1,000 items → join, one at a time; and a map over 10,000 items once",
  async run({ options, log }) {
    return withStack({ scenario: "fanout-1000" }, options, async (stack) => {
      const { executions, history } = stack;
      await executions.apply(fanoutWorkflow(workflow));
      const warmup = sized(options, 2, 1);
      const samples = sized(options, 15, 3);
      log(`fanout-1000: ${warmup} warm-up and ${samples} maps over 1,000 items`);
      for (let i = 0; i < warmup; i++) await runMap(executions, history, 1_000, 120_000);
      const cpu = startCpuMeter(stack.pids());
      const durations: number[] = [];
      for (let i = 0; i < samples; i++) durations.push(await runMap(executions, history, 1_000, 120_000));
      const shares = cpu();
      const latency = summarize(durations);
      const rows: Row[] = [
        {
          scenario: "fanout-1000",
          latency,
          throughput: `${Math.round((1_000 * 1_000) / latency.p50).toLocaleString("en-US")} items/s at p50`,
          target: "p50 ≤ 150 ms",
          met: verdict(latency.p50 <= 150),
          notes: [
            `map concurrency ${mapConcurrency} (the default is 100); start → end in history; ${formatCpu(shares)}`,
          ],
          data: cpuData(shares),
        },
      ];
      if (options.quick) {
        rows.push({
          scenario: "fanout-10000",
          target: "≤ 1.5 s",
          met: "not measured",
          notes: ["skipped in --quick"],
        });
        return rows;
      }
      log("fanout-10000: one map over 10,000 items");
      const bigCpu = startCpuMeter(stack.pids());
      const ms = await runMap(executions, history, 10_000, 300_000);
      const bigShares = bigCpu();
      rows.push({
        scenario: "fanout-10000",
        result: `${(ms / 1_000).toFixed(2)} s (${Math.round((10_000 * 1_000) / ms).toLocaleString("en-US")} items/s)`,
        target: "≤ 1.5 s",
        met: verdict(ms <= 1_500),
        notes: [`run once, map concurrency ${mapConcurrency}; ${formatCpu(bigShares)}`],
        data: { ms, ...cpuData(bigShares) },
      });
      return rows;
    });
  },
};
