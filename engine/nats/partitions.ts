/**
 * How many partitions a deployment's executions are shared in (sdk/protocol.ts, `partitionOf`).
 * Fixed when the deployment first starts: the first process to connect (engine or API) stores
 * the count in `baton_engine` (`partitions`), with `BATON_PARTITIONS` or the default; every
 * other process reads it. A process told a different count refuses to start: events already
 * published are on the subjects of the stored count.
 */
import type { KV } from "nats";

export const defaultPartitions = 16;
export const partitionsKey = "partitions";

/** What stops a process at start with a message for a person (no stack): the deployment disagrees. */
export class StartRefused extends Error {
  override name = "StartRefused";
}

export class PartitionsMismatch extends StartRefused {
  override name = "PartitionsMismatch";
}

export async function agreePartitions(state: KV, wanted: number | undefined): Promise<number> {
  for (;;) {
    const entry = await state.get(partitionsKey);
    if (entry && entry.operation === "PUT") {
      const stored = entry.json<{ partitions: number }>().partitions;
      if (wanted !== undefined && wanted !== stored)
        throw new PartitionsMismatch(
          `BATON_PARTITIONS=${wanted}, but this deployment was started with ${stored} partitions, which ` +
            `its events are published on; unset BATON_PARTITIONS or set it to ${stored}`,
        );
      return stored;
    }
    const partitions = wanted ?? defaultPartitions;
    try {
      await state.create(partitionsKey, JSON.stringify({ partitions }));
      return partitions;
    } catch (error) {
      if (!/wrong last sequence|key exists/i.test(String(error))) throw error;
    }
  }
}
