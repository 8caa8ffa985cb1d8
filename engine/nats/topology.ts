/**
 * The JetStream streams, consumers and KV buckets of Baton, created idempotently at start. All
 * use file storage: they are the only source of truth (architecture.md, rule 1).
 *
 * | name                | kind    | holds                                                        |
 * |---------------------|---------|--------------------------------------------------------------|
 * | BATON_EVENTS        | stream  | everything that advances an execution                          |
 * |                     |         | (`baton.events.p.<partition>.<id>`), a consumer per partition   |
 * | BATON_TASKS         | stream  | work queue of tasks for workers (`baton.tasks.<lane>.<fn>`)    |
 * | BATON_TIMERS        | stream  | durable timers (`baton.timers.<id>`), redelivered when due     |
 * | BATON_RETENTION     | stream  | finished executions' removals (`baton.retention.<id>`), in due   |
 * |                     |         | order: read through a window of `retentionWindow` at a time     |
 * | BATON_TIMER_INDEX   | stream  | wake-ups due beyond the near window, by slot, unread until it  |
 * |                     |         | comes near (`baton.timer-index.<slot>.<id>`, timer-index.ts)   |
 * | BATON_HISTORY       | stream  | each execution's history (`baton.history.<id>`)                |
 * | BATON_POISON        | stream  | events set aside as poison (`baton.poison.<id>`), 30 days      |
 * | baton_executions    | KV      | execution records (snapshot, status, timers, outbox)          |
 * | baton_workflows     | KV      | workflow definitions, latest and every revision               |
 * | baton_effects       | KV      | the effect ledger, by idempotency key                         |
 * | baton_receives      | KV      | executions waiting on a NATS subject (`<id>.<step>` → subject)  |
 * | baton_execution_index | KV    | top-level executions, for listing them                        |
 * | baton_engine        | KV      | engine-wide state: how far the timer index is promoted         |
 * | baton_workers       | KV      | live workers (their heartbeats), created here too, so the API   |
 * |                     |         | can list none when only workers without the SDK run            |
 */
import { retryNats } from "../../sdk/nats-retry.ts";
import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  nanos,
  type JetStreamClient,
  type JetStreamManager,
  type KV,
  type NatsConnection,
  type StreamConfig,
} from "nats";
import {
  buckets,
  duplicateWindowMs,
  streamConfigs,
  streams,
  subjects,
  workersBucketConfig,
} from "../../sdk/protocol.ts";
import {
  explainCreateError,
  natsReplicas,
  openBucket,
  reconcileConsumer,
  reconcileStream,
} from "../../sdk/replication.ts";
import { emittedStream } from "./emit-stream.ts";
import { ExecutionIndex } from "./execution-index.ts";
import { agreePartitions, StartRefused } from "./partitions.ts";

/** Executions waiting on a subject: the engine's own, not part of the worker protocol. */
export const receivesBucket = "baton_receives";
/** Wake-ups due beyond the near window, by the slot they fall in (engine/orchestrator/timer-index.ts). */
export const timerIndexStream = "BATON_TIMER_INDEX";
export const timerIndexSubject = (slotStart: number | "*", execution: string) =>
  `baton.timer-index.${slotStart}.${execution}`;
/** Engine-wide state: how far the timer index is promoted (timer-index.ts). */
export const engineStateBucket = "baton_engine";

/** Deduplication window of the streams that take message ids: replays within it are dropped. */
export { duplicateWindowMs };

/** Events that could not be applied however often they were tried: kept for a person to look at. */
export const poisonStream = "BATON_POISON";
export const poisonSubject = (execution: string) => `baton.poison.${execution}`;
const poisonMaxAgeMs = 30 * 24 * 3_600_000;

export const engineConsumers = {
  /** Protocol 1's one consumer of every event: removed at start when empty (see ensureTopology). */
  events: "engine_events",
  timers: "engine_timers",
  retention: "engine_retention",
} as const;

/**
 * Retention's own path: one message per finished execution, due `BATON_RETENTION` after its end.
 * They all wait the same time, so they arrive in (nearly) due order, and the engine needs only
 * the first few in hand: its consumer holds at most `retentionWindow` unacknowledged (parked until
 * due), and the rest stay unread in the stream, costing bytes, not the timer consumer's room. A
 * burst of removals has its own loop: it never delays a user's timer.
 */
export const retentionStream = "BATON_RETENTION";
export const retentionSubject = (execution: string) => `baton.retention.${execution}`;
export const retentionWindow = 256;

/** How long an engine may sit on an event before JetStream gives it to another replica. */
export const eventAckWaitMs = 5_000;

/** The streams workers share are defined in the protocol; the engine's own ones here. */
const sharedStream = (
  definition: (typeof streamConfigs)[keyof typeof streamConfigs],
): Partial<StreamConfig> => ({
  ...definition,
  subjects: [...definition.subjects],
  retention: RetentionPolicy.Workqueue,
  storage: StorageType.File,
});

const engineStreams: Partial<StreamConfig>[] = [
  sharedStream(streamConfigs.events),
  sharedStream(streamConfigs.tasks),
  {
    name: streams.timers,
    subjects: [subjects.allTimers],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: nanos(duplicateWindowMs),
  },
  {
    name: retentionStream,
    subjects: [retentionSubject(">")],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: nanos(duplicateWindowMs),
  },
  {
    // Read a slot at a time by the engine promoting it, then purged (timer-index.ts): no consumer
    // holds anything here, so millions of wake-ups cost bytes only.
    name: timerIndexStream,
    subjects: [timerIndexSubject("*", "*")],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    duplicate_window: nanos(duplicateWindowMs),
  },
  {
    name: streams.history,
    subjects: [subjects.allHistory],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
  },
  {
    name: poisonStream,
    subjects: [poisonSubject(">")],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(poisonMaxAgeMs),
  },
];

export interface Topology {
  js: JetStreamClient;
  jsm: JetStreamManager;
  executions: KV;
  workflows: KV;
  effects: KV;
  receives: KV;
  workers: KV;
  /** Engine-wide state (`baton_engine`): the timer index's promotion cursor, the partition count. */
  engineState: KV;
  /** How many partitions executions are shared in (partitions.ts). */
  partitions: number;
  /** Top-level executions, for listing them (execution-index.ts). */
  executionIndex: ExecutionIndex;
}

/**
 * Creates what is missing and leaves what exists (another replica, or a worker, may have made it),
 * except for its replica count (`BATON_NATS_REPLICAS`, replication.ts), which it brings to the one
 * configured.
 */
export async function ensureTopology(
  nc: NatsConnection,
  replicas = natsReplicas(),
  partitions?: number,
  /**
   * Engines only: the partitions' event consumers (and the removal of protocol 1's). The API and
   * other clients publish events and never read them; nor may their NATS users delete consumers.
   */
  { eventConsumers = false } = {},
): Promise<Topology> {
  const jsm = await nc.jetstreamManager();
  for (const config of engineStreams) await ensureStream(jsm, config, replicas);
  // Created with the first workflow that emits (emit-stream.ts); when it exists, it is brought to
  // the configured replica count at start like the others.
  await reconcileStream(jsm, emittedStream, { num_replicas: replicas });
  const js = nc.jetstream();
  const kv = (bucket: string) => openBucket(js, bucket, { history: 1, storage: StorageType.File }, replicas);
  const engineState = await kv(engineStateBucket);
  const agreed = await agreePartitions(engineState, partitions);
  if (eventConsumers) {
    await retireProtocol1Consumer(jsm);
    for (let partition = 0; partition < agreed; partition++)
      await ensurePartitionConsumer(jsm, partition, replicas);
  }
  await ensureConsumer(jsm, streams.timers, replicas, {
    durable_name: engineConsumers.timers,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(eventAckWaitMs),
    // Timers not yet due wait as unacknowledged messages (nak with a delay): one per parked timer.
    max_ack_pending: 1_000_000,
    deliver_policy: DeliverPolicy.All,
    max_deliver: -1,
  });
  await ensureConsumer(jsm, retentionStream, replicas, {
    durable_name: engineConsumers.retention,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(eventAckWaitMs),
    max_ack_pending: retentionWindow,
    deliver_policy: DeliverPolicy.All,
    max_deliver: -1,
  });
  const executions = await kv(buckets.executions);
  return {
    js,
    jsm,
    executions,
    workflows: await kv(buckets.workflows),
    effects: await kv(buckets.effects),
    receives: await kv(receivesBucket),
    engineState,
    partitions: agreed,
    workers: await openWorkersBucket(js, replicas),
    executionIndex: await ExecutionIndex.open(js, executions),
  };
}

/**
 * The live workers' bucket, with the settings the protocol gives it (an entry expires after
 * `workerTtlMs` of silence). Workers of the SDK create it as well; whichever comes first makes it.
 */
export function openWorkersBucket(js: JetStreamClient, replicas = natsReplicas()): Promise<KV> {
  return openBucket(
    js,
    workersBucketConfig.bucket,
    { ttl: workersBucketConfig.ttlMs, history: workersBucketConfig.history, storage: StorageType.File },
    replicas,
  );
}

/** Creates the stream with `replicas` (1 when unset) when missing, else brings it to `replicas` if set. */
export async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig>,
  replicas = natsReplicas(),
): Promise<void> {
  if (await reconcileStream(jsm, config.name!, { num_replicas: replicas })) return;
  try {
    await retryNats(() => jsm.streams.add({ ...config, num_replicas: replicas ?? 1 }));
  } catch (raced) {
    // Another process created it between our look and our add: bring that one to `replicas`.
    if (!String(raced).includes("already in use"))
      throw explainCreateError(raced, `stream ${config.name}`, replicas);
    await reconcileStream(jsm, config.name!, { num_replicas: replicas });
  }
}

/** Creates the durable consumer with `replicas` (1 when unset) when missing, else brings it to `replicas` if set. */
export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  replicas: number | undefined,
  config: Parameters<JetStreamManager["consumers"]["add"]>[1],
): Promise<void> {
  try {
    await retryNats(() => jsm.consumers.info(stream, config.durable_name!));
  } catch (error) {
    if (!isNotFound(error)) throw error;
    try {
      await retryNats(() => jsm.consumers.add(stream, { ...config, num_replicas: replicas ?? 1 }));
      return;
    } catch (raced) {
      if (!/already in use|exists/i.test(String(raced))) throw raced;
    }
  }
  await reconcileConsumer(jsm, stream, config.durable_name!, replicas);
}

/** The consumer of one partition's events (`baton.events.p.<partition>.>`), read by the engine holding it. */
export const partitionConsumer = (partition: number) => `engine_events_p${partition}`;

/**
 * Creates a partition's consumer when missing. `fresh`: deletes it first, so that what it had
 * delivered and nobody acknowledged (its holder died) is delivered again at once, not after the
 * ack wait. The stream is a work queue: deleting the consumer loses no event.
 */
export async function ensurePartitionConsumer(
  jsm: JetStreamManager,
  partition: number,
  replicas: number | undefined,
  { fresh = false } = {},
): Promise<void> {
  if (fresh)
    await retryNats(() => jsm.consumers.delete(streams.events, partitionConsumer(partition))).catch(
      (error: unknown) => {
        if (!isNotFound(error)) throw error;
      },
    );
  await ensureConsumer(jsm, streams.events, replicas, {
    durable_name: partitionConsumer(partition),
    filter_subject: subjects.partitionEvents(partition),
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(eventAckWaitMs),
    max_ack_pending: 20_000,
    deliver_policy: DeliverPolicy.All,
    max_deliver: -1,
  });
}

/**
 * Protocol 1 had one consumer of every event, which overlaps the partitions' (a work queue's
 * consumers may not). It goes when nothing waits in it; events waiting there are on protocol 1's
 * subjects, which no partition reads, so the start stops and says what to do.
 */
async function retireProtocol1Consumer(jsm: JetStreamManager): Promise<void> {
  let info;
  try {
    info = await retryNats(() => jsm.consumers.info(streams.events, engineConsumers.events));
  } catch (error) {
    if (isNotFound(error)) return;
    throw error;
  }
  if (info.num_pending + info.num_ack_pending > 0)
    throw new StartRefused(
      `${streams.events} holds ${info.num_pending + info.num_ack_pending} events of Baton's protocol 1, which this ` +
        "version does not read: run the previous version until they are applied (the consumer " +
        `${engineConsumers.events} has none pending), then start this one`,
    );
  await retryNats(() => jsm.consumers.delete(streams.events, engineConsumers.events)).catch(
    (error: unknown) => {
      if (!isNotFound(error)) throw error;
    },
  );
}

export function isNotFound(error: unknown): boolean {
  return /not found/i.test(String((error as Error)?.message ?? error));
}
