// What a consumer's leader stepping down on a 3-node cluster costs an execution: sequential
// 10-step noop chains on a 3-node R3 stack (bench/lib/stack.ts), and every 20th chain the leader
// of the worker's task consumer (`tasks`, the default) or of the chain's partition consumer of
// events (`events`) is asked to step down. Prints the chains slower than 2 s, and the slowest.
//
//   NATS_SERVER_CLUSTER_BIN=... node --import tsx bench/tools/cluster-stepdown.ts [tasks|events]
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { parseOptions } from "../lib/options.ts";
import { withStack } from "../lib/stack.ts";
import { chainWorkflow, payload } from "../lib/workflows.ts";
import { defaultPartitions } from "../../engine/nats/partitions.ts";
import { partitionOf, streams, taskConsumer } from "../../sdk/protocol.ts";

const what = process.argv[2] ?? "tasks";
await withStack({ scenario: "cluster-stepdown", cluster: true }, parseOptions([]), async (stack) => {
  const { executions, nc } = stack;
  await executions.apply(chainWorkflow("sd-chain", 10));
  let worst = 0;
  for (let i = 0; i < 200; i++) {
    const id = newExecutionId();
    const t = performance.now();
    await executions.start("sd-chain", payload(), { id });
    if (i % 20 === 10) {
      const [stream, consumer] =
        what === "tasks"
          ? [streams.tasks, taskConsumer("pure", "noop")]
          : [streams.events, `engine_events_p${partitionOf(id, defaultPartitions)}`];
      const answer = await nc
        .request(`$JS.API.CONSUMER.LEADER.STEPDOWN.${stream}.${consumer}`, "", { timeout: 5000 })
        .then(
          (message) => message.string(),
          (error: unknown) => String(error),
        );
      console.log(`stepdown ${stream}.${consumer}: ${answer.slice(0, 120)}`);
    }
    const record = await executions.waitForEnd(id, 60_000);
    const took = performance.now() - t;
    worst = Math.max(worst, took);
    if (took > 2000 || record?.status !== "succeeded")
      console.log(`slow ${i}: ${took.toFixed(0)} ms ${record?.status}`);
  }
  console.log("worst", worst.toFixed(0), "ms");
});
process.exit(0);
