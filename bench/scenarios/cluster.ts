/**
 * cluster: chain-10 and steps on one nats-server (streams and buckets R1) and on a 3-node
 * nats-server cluster on this machine with every stream, bucket and consumer at 3 replicas
 * (`BATON_NATS_REPLICAS=3`), in the same run: what replication costs. Each is the scenario of
 * that name, on a fresh stack; the rows are named after the NATS they ran on.
 */
import type { Row, Scenario } from "../lib/scenario.ts";
import { measureChain10 } from "./chain-10.ts";
import { measureSteps } from "./steps.ts";

const label = (rows: Row[], on: string, note: string): Row[] =>
  rows.map((row) => ({ ...row, scenario: `${row.scenario} [${on}]`, notes: [note, ...row.notes] }));

export const cluster: Scenario = {
  name: "cluster",
  summary: "chain-10 and steps on one nats-server (R1) beside a 3-node cluster (R3), same run",
  async run(context) {
    const single = "one nats-server, every stream and bucket R1";
    const replicated =
      "3 nats-server nodes clustered on this machine (loopback), BATON_NATS_REPLICAS=3: every stream, bucket and consumer R3; engine and worker given every node's URL";
    const rows: Row[] = [
      ...label(await measureChain10(context), "1 node", single),
      ...label(await measureChain10(context, { cluster: true }), "3 nodes R3", replicated),
      ...label(await measureSteps(context), "1 node", single),
      ...label(await measureSteps(context, { cluster: true }), "3 nodes R3", replicated),
    ];
    const p50 = (name: string) => rows.find((row) => row.scenario === name)?.latency?.p50;
    const rate = (name: string) => Number(rows.find((row) => row.scenario === name)?.data?.stepsPerSecond);
    const chainCost = (p50("chain-10 [3 nodes R3]") ?? NaN) / (p50("chain-10 [1 node]") ?? NaN);
    const stepsCost = rate("steps [3 nodes R3]") / rate("steps [1 node]");
    rows.push({
      scenario: "cluster (R3 ÷ R1)",
      result: `chain-10 p50 ×${chainCost.toFixed(2)}, steps/s ×${stepsCost.toFixed(2)}`,
      target: "(diagnostic: replication costs)",
      met: "n/a",
      notes: [
        "the 3-node rows divided by the 1-node rows of this run; all nodes share this machine's cores with the engine and worker, so this is the cost of replication's extra work and round trips, not of a network",
      ],
      data: { chain10P50Ratio: chainCost, stepsRatio: stepsCost },
    });
    return rows;
  },
};
