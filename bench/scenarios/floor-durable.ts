/**
 * floor.durable: a 10-hop chain where each hop is what a durable step cannot avoid: a JetStream
 * publish that waits for its ack, a durable pull consumer receiving and acking it, and a KV put.
 * The consumer runs in its own process (bench/helpers/durable-hop.ts), as the engine does, and
 * publishes the next hop itself; the bench times from the first publish to the 10th KV put.
 */
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, nanos, type NatsConnection } from "nats";
import {
  hopBucket,
  hopConsumer,
  hopStream,
  hopSubject,
  hopsPerChain,
  type Hop,
} from "../helpers/floor-protocol.ts";
import { startHelper, stopProcess } from "../lib/processes.ts";
import { sampleSequentially } from "../lib/sampling.ts";
import { sized, type Row, type Scenario } from "../lib/scenario.ts";
import { withServer } from "../lib/stack.ts";
import { summarize } from "../lib/stats.ts";
import { withTimeout } from "../lib/timing.ts";
import { payload } from "../lib/workflows.ts";

/** The stream, bucket and consumer, with the settings Baton uses for events and records. */
async function createHopTopology(nc: NatsConnection): Promise<void> {
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({
    name: hopStream,
    subjects: [hopSubject],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
  });
  await jsm.consumers.add(hopStream, {
    durable_name: hopConsumer,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(10_000),
  });
  await nc.jetstream().views.kv(hopBucket, { history: 1, storage: StorageType.File });
}

export const floorDurable: Scenario = {
  name: "floor.durable",
  summary: "10 sequential hops of JetStream publish+ack → pull consumer (other process) ack → KV put",
  async run({ options, log }) {
    return withServer("floor.durable", async (server, nc) => {
      await createHopTopology(nc);
      const helper = await startHelper("durable-hop.ts", server.url);
      const js = nc.jetstream();
      // The 10th hop's KV put, seen on the bucket's subject by a plain subscription.
      const waiting = new Map<string, () => void>();
      const decoder = new TextDecoder();
      const puts = nc.subscribe(`$KV.${hopBucket}.>`, {
        callback: (_error, message) => {
          const hop = JSON.parse(decoder.decode(message.data)) as Hop;
          if (hop.hop === hopsPerChain) waiting.get(hop.chain)?.();
        },
      });
      await nc.flush();
      try {
        const { pad } = payload();
        let chains = 0;
        const counts = { warmup: sized(options, 50, 10), samples: sized(options, 500, 50) };
        log(`floor.durable: ${counts.samples} chains of ${hopsPerChain} hops`);
        const durations = await sampleSequentially(counts, async () => {
          const chain = `c${++chains}`;
          const done = new Promise<void>((resolve) => waiting.set(chain, resolve));
          const first: Hop = { chain, hop: 1, pad };
          await js.publish(hopSubject, JSON.stringify(first));
          await withTimeout(done, 10_000, `floor.durable chain ${chain}`);
          waiting.delete(chain);
        });
        const row: Row = {
          scenario: "floor.durable",
          latency: summarize(durations),
          target: "(floor)",
          met: "n/a",
          notes: [
            `${hopsPerChain} sequential hops; each: JetStream publish awaiting its ack (workqueue stream, file storage) → ` +
              "durable pull consumer in a separate process → KV put (file, history 1) → ack → next hop published by that process",
          ],
        };
        return [row];
      } finally {
        puts.unsubscribe();
        await stopProcess(helper);
      }
    });
  },
};
