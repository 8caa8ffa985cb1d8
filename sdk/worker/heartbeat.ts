// A worker says it is alive every `heartbeatIntervalMs`: on a core subject (for whoever listens
// now) and in the workers KV bucket, whose entries expire on silence (for whoever asks later).
import { openBucket, ReplicationError } from "../replication.ts";
import type { KV, NatsConnection } from "nats";
import { StorageType } from "nats";
import { heartbeatIntervalMs, subjects, workersBucketConfig, type HeartbeatEnvelope } from "../protocol.ts";
import { errorFields, type Logger } from "./logger.ts";

export interface Heartbeats {
  /** Sends a last heartbeat with `leaving: true`, removes the KV entry and stops. */
  stop(): Promise<void>;
}

/**
 * Starts heartbeats of `describe()`; the first one goes out at once. `kv` is the workers bucket
 * (openWorkersBucket); without it, heartbeats go to the subject only.
 */
export function startHeartbeats(
  nc: NatsConnection,
  kv: KV | undefined,
  describe: () => HeartbeatEnvelope,
  logger: Logger,
): Heartbeats {
  const worker = describe().worker;
  const beat = (leaving: boolean): Promise<void> => {
    const envelope = leaving ? { ...describe(), leaving: true } : describe();
    const body = JSON.stringify(envelope);
    try {
      nc.publish(subjects.heartbeat(envelope.worker), body);
    } catch (error) {
      logger.warn("could not publish a heartbeat", errorFields(error));
    }
    if (kv === undefined) return Promise.resolve();
    const write = leaving ? kv.delete(worker) : kv.put(worker, body).then(() => undefined);
    return write.catch((error: unknown) =>
      logger.warn("could not record the heartbeat in KV", errorFields(error)),
    );
  };
  void beat(false);
  const timer = setInterval(() => void beat(false), heartbeatIntervalMs);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await beat(true);
    },
  };
}

/** The workers bucket, created when missing; `undefined` (heartbeats on the subject only) when KV is unavailable. */
export async function openWorkersBucket(nc: NatsConnection, logger: Logger): Promise<KV | undefined> {
  try {
    return await openBucket(nc.jetstream(), workersBucketConfig.bucket, {
      ttl: workersBucketConfig.ttlMs,
      history: workersBucketConfig.history,
      storage: StorageType.File,
    });
  } catch (error) {
    // A replica count the bucket cannot have is a setting to fix, not NATS being away.
    if (error instanceof ReplicationError) throw error;
    logger.warn(
      "the workers KV bucket is unavailable; heartbeats go to the subject only",
      errorFields(error),
    );
    return undefined;
  }
}
