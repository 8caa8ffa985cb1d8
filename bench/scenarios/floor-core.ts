/**
 * floor.core: a 10-hop chain of plain NATS request/reply calls to a no-op responder in another
 * process. What ten round trips through this nats-server cost, with no persistence at all.
 */
import { noopSubject } from "../helpers/floor-protocol.ts";
import { startHelper, stopProcess } from "../lib/processes.ts";
import { sampleSequentially } from "../lib/sampling.ts";
import { sized, type Row, type Scenario } from "../lib/scenario.ts";
import { withServer } from "../lib/stack.ts";
import { summarize } from "../lib/stats.ts";
import { payloadData } from "../lib/workflows.ts";

const hops = 10;

export const floorCore: Scenario = {
  name: "floor.core",
  summary: "10 sequential core-NATS request/reply calls to a no-op responder process",
  async run({ options, log }) {
    return withServer("floor.core", async (server, nc) => {
      const responder = await startHelper("noop-responder.ts", server.url);
      try {
        const data = payloadData();
        const counts = { warmup: sized(options, 200, 20), samples: sized(options, 2_000, 200) };
        log(`floor.core: ${counts.samples} chains of ${hops} requests`);
        const durations = await sampleSequentially(counts, async () => {
          for (let hop = 0; hop < hops; hop++) await nc.request(noopSubject, data, { timeout: 5_000 });
        });
        const row: Row = {
          scenario: "floor.core",
          latency: summarize(durations),
          target: "(floor)",
          met: "n/a",
          notes: [
            `${hops} sequential request/reply calls of ${data.length} bytes to a no-op responder in a separate process`,
          ],
        };
        return [row];
      } finally {
        await stopProcess(responder);
      }
    });
  },
};
