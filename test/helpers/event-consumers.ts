/** What the engines' event consumers (one per partition) still hold, summed over the partitions. */
import type { JetStreamManager } from "nats";
import { defaultPartitions } from "../../engine/nats/partitions.ts";
import { partitionConsumer } from "../../engine/nats/topology.ts";
import { streams } from "../../sdk/protocol.ts";

export async function eventsHeld(
  jsm: JetStreamManager,
  partitions = defaultPartitions,
): Promise<{ pending: number; unacknowledged: number }> {
  const infos = await Promise.all(
    Array.from({ length: partitions }, (_, partition) =>
      jsm.consumers.info(streams.events, partitionConsumer(partition)),
    ),
  );
  return {
    pending: infos.reduce((sum, info) => sum + info.num_pending, 0),
    unacknowledged: infos.reduce((sum, info) => sum + info.num_ack_pending, 0),
  };
}
