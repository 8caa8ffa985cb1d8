/**
 * chain-10: start → result of a 10-step chain of `noop` calls, one execution at a time, through
 * the client API (`Executions.start` then `Executions.waitForEnd`). The same runs are also timed
 * to the moment the end appears in the execution's history, which leaves out what the client
 * spends awaiting (waitForEnd opens a KV watch, a JetStream consumer, per call).
 */
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { sized, verdict, type BenchContext, type Row, type Scenario } from "../lib/scenario.ts";
import { withStack, type StackOptions } from "../lib/stack.ts";
import { now, summarize } from "../lib/stats.ts";
import { withTimeout } from "../lib/timing.ts";
import { chainWorkflow, payload } from "../lib/workflows.ts";

const workflow = "bench-chain-10";
const sampleTimeoutMs = 15_000;

export const chain10: Scenario = {
  name: "chain-10",
  summary: "client start → result of a 10-step noop chain, one execution at a time",
  requires: ["floor.durable"],
  run: (context) => measureChain10(context),
};

/** chain-10 on a fresh stack: one nats-server, or a 3-node R3 cluster (the `cluster` scenario). */
export async function measureChain10(
  { options, rows, log }: BenchContext,
  nats: Pick<StackOptions, "cluster"> = {},
): Promise<Row[]> {
  return withStack({ scenario: "chain-10", ...nats }, options, async ({ executions, history }) => {
    await executions.apply(chainWorkflow(workflow, 10));
    const input = payload();
    const warmup = sized(options, 30, 5);
    const samples = sized(options, 400, 40);
    const client: number[] = [];
    const seen: number[] = [];
    const accepted: number[] = [];
    log(`chain-10: ${samples} executions, one at a time`);
    for (let i = 0; i < warmup + samples; i++) {
      const id = newExecutionId();
      const end = history.expectEnd(id);
      const started = now();
      await executions.start(workflow, input, { id });
      const startReturned = now();
      const record = await executions.waitForEnd(id, sampleTimeoutMs);
      const resulted = now();
      const ended = await withTimeout(end, sampleTimeoutMs, `the end of ${id} in its history`);
      if (record?.status !== "succeeded")
        throw new Error(
          `execution ${id} ended ${record?.status ?? "not at all"}: ${JSON.stringify(record?.error)}`,
        );
      if (i < warmup) continue;
      client.push(resulted - started);
      seen.push(ended.at - started);
      accepted.push(startReturned - started);
    }
    const latency = summarize(client);
    const startLatency = summarize(accepted);
    const floor = rows.get("floor.durable")?.latency;
    const ratio = floor === undefined ? undefined : latency.p50 / floor.p50;
    const main: Row = {
      scenario: "chain-10",
      latency,
      result: ratio === undefined ? undefined : `${ratio.toFixed(1)}× floor.durable`,
      target: "p50 ≤ 10 ms, p99 ≤ 25 ms, p50 ≤ 2.5× floor.durable",
      met: verdict(latency.p50 <= 10, latency.p99 <= 25, ratio !== undefined && ratio <= 2.5),
      notes: [
        "client = Executions.start + Executions.waitForEnd over NATS (engine/orchestrator/executions.ts): " +
          "the HTTP API and the SDK client do not exist yet, so this is the SDK for now",
        `of which start() (workflow look-up + start event publish) p50 ${startLatency.p50.toFixed(2)} ms, ` +
          `p99 ${startLatency.p99.toFixed(2)} ms`,
      ],
      data: {
        startP50Ms: startLatency.p50,
        startP99Ms: startLatency.p99,
        ...(ratio ? { ratioToFloorDurable: ratio } : {}),
      },
    };
    const seenLatency = summarize(seen);
    const seenRatio = floor === undefined ? undefined : seenLatency.p50 / floor.p50;
    const diagnostic: Row = {
      scenario: "chain-10 (end in history)",
      latency: seenLatency,
      result: seenRatio === undefined ? undefined : `${seenRatio.toFixed(1)}× floor.durable`,
      target: "(diagnostic)",
      met: "n/a",
      notes: [
        "the same runs, timed from start() to the ExecutionSucceeded history message (plain subscription): " +
          "the engine's part, without the client's await",
      ],
    };
    return [main, diagnostic];
  });
}
