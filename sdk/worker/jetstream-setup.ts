// The streams and consumers a worker needs, created when missing from the definitions in
// protocol.ts (the engine creates them from the same definitions), and left alone when they
// exist: whoever came first made them, and a worker must not fight the engine over a setting.
// The one exception is the replica count, `BATON_NATS_REPLICAS` (replication.ts), which engine
// and workers read alike: a worker brings what it uses to it.
import { retryNats } from "../nats-retry.ts";
import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from "nats";
import { streamConfigs, streams, taskConsumerConfig, type Lane } from "../protocol.ts";
import { explainCreateError, natsReplicas, reconcileConsumer, reconcileStream } from "../replication.ts";

type StreamDefinition = (typeof streamConfigs)[keyof typeof streamConfigs];

const retention = { workqueue: RetentionPolicy.Workqueue, limits: RetentionPolicy.Limits } as const;
const storage = { file: StorageType.File } as const;

/** Creates the tasks and events streams unless they exist. */
export async function ensureWorkerStreams(jsm: JetStreamManager): Promise<void> {
  await Promise.all([ensureStream(jsm, streamConfigs.tasks), ensureStream(jsm, streamConfigs.events)]);
}

/** Creates the shared durable consumer of `fn` in `lane` unless it exists; returns its name. */
export async function ensureTaskConsumer(jsm: JetStreamManager, lane: Lane, fn: string): Promise<string> {
  const definition = taskConsumerConfig(lane, fn);
  const replicas = natsReplicas();
  try {
    await retryNats(() => jsm.consumers.info(streams.tasks, definition.durable_name));
    await reconcileConsumer(jsm, streams.tasks, definition.durable_name, replicas);
    return definition.durable_name;
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  const config: Partial<ConsumerConfig> = {
    ...definition,
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.Explicit,
    num_replicas: replicas ?? 1,
  };
  // Two workers creating the same consumer at once both succeed: the definitions are identical.
  await retryNats(() => jsm.consumers.add(streams.tasks, config));
  return definition.durable_name;
}

async function ensureStream(jsm: JetStreamManager, definition: StreamDefinition): Promise<void> {
  const replicas = natsReplicas();
  if (await reconcileStream(jsm, definition.name, { num_replicas: replicas })) return;
  const config: Partial<StreamConfig> = {
    ...definition,
    subjects: [...definition.subjects],
    retention: retention[definition.retention],
    storage: storage[definition.storage],
    num_replicas: replicas ?? 1,
  };
  try {
    await retryNats(() => jsm.streams.add(config));
  } catch (error) {
    // Someone else created it in between (perhaps with settings of their own): fine if it exists now.
    await jsm.streams.info(definition.name).catch(() => {
      throw explainCreateError(error, `stream ${definition.name}`, replicas);
    });
  }
}

/** JetStream's "stream not found" (10059) and "consumer not found" (10014). */
export function isNotFound(error: unknown): boolean {
  const apiError = (error as { api_error?: { err_code?: number } } | undefined)?.api_error;
  if (apiError?.err_code === 10059 || apiError?.err_code === 10014) return true;
  const message = error instanceof Error ? error.message : "";
  return message === "stream not found" || message === "consumer not found";
}
