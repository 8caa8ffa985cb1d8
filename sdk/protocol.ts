/**
 * The wire contract between the Baton engine and function workers, in one place. A worker in any
 * language that speaks NATS can serve functions from this module's description alone (see
 * docs/protocol.md). The SDK and the engine both import it; nothing else defines a subject,
 * header or envelope.
 *
 * Flow of one attempt:
 *
 *   engine ──JetStream publish──► baton.tasks.<lane>.<function>        (stream BATON_TASKS, work queue)
 *   worker ◄──pull (durable consumer "fn_<lane>_<function>", shared by every worker of the function)
 *   worker ──msg.working() every `taskProgressIntervalMs` while the function runs (progress heartbeat)
 *   worker ──publish──► the task's `reply` (baton.events.p.<partition>.<execution>.result)
 *                       { type: "task.succeeded" | "task.failed", startedAt }
 *   worker ──ack the task message (only after the result is stored by JetStream)
 *
 * A worker that dies mid-task stops sending progress; JetStream redelivers the task to another
 * worker after `taskAckWaitMs`. Cancellation arrives on the core subject `baton.cancel.<execution>`.
 */

/**
 * Version of this protocol: `v` of every envelope, and the `Baton-Protocol` header of tasks and
 * reports. 2: events carry their execution's partition in the subject, and a task names where
 * its report goes (`reply`).
 */
export const protocolVersion = 2;

/**
 * Executions are shared among engines by partition: an execution's events are on its partition's
 * subjects, and one engine at a time consumes a partition. The number of partitions is fixed when
 * a deployment first starts (docs/operations.md); workers never need it (a task names its `reply`).
 */
export function partitionOf(execution: string, partitions: number): number {
  // FNV-1a, 32 bits, over the id's UTF-16 code units (ids are ASCII).
  let hash = 0x811c9dc5;
  for (let i = 0; i < execution.length; i++) {
    hash ^= execution.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitions;
}

/** Pure steps and effect steps run in separate lanes: own subjects, consumers and concurrency. */
export const lanes = ["pure", "effect"] as const;
export type Lane = (typeof lanes)[number];

export const streams = {
  /** Work queue of tasks, one subject per lane and function. */
  tasks: "BATON_TASKS",
  /** Everything that advances an execution: starts, task results, signals, item/child completions, cancels. */
  events: "BATON_EVENTS",
  /** Durable timers (waits, retry backoff, timeouts), delivered when due. */
  timers: "BATON_TIMERS",
  /** Each execution's history, one subject per execution. */
  history: "BATON_HISTORY",
} as const;

export const buckets = {
  /** Execution snapshots and status, by execution id. */
  executions: "baton_executions",
  /** Workflow definitions, by name (latest) and name.revision (every revision). */
  workflows: "baton_workflows",
  /** The effect ledger: one entry per idempotency key, with every attempt. */
  effects: "baton_effects",
  /** Live workers, written by their heartbeats, expiring on silence. */
  workers: "baton_workers",
} as const;

/**
 * NATS subject tokens cannot hold `.`, `*`, `>` or whitespace; function names may contain dots,
 * so they are encoded: `.` → `~`. Execution ids are generated subject-safe.
 */
export function subjectToken(name: string): string {
  return name.replaceAll(".", "~");
}

export const subjects = {
  task: (lane: Lane, fn: string) => `baton.tasks.${lane}.${subjectToken(fn)}`,
  tasksOfLane: (lane: Lane) => `baton.tasks.${lane}.>`,
  allTasks: "baton.tasks.>",
  events: (execution: string, partitions: number) =>
    `baton.events.p.${partitionOf(execution, partitions)}.${execution}`,
  /** Every event of one partition: what the engine owning it reads. */
  partitionEvents: (partition: number) => `baton.events.p.${partition}.>`,
  allEvents: "baton.events.>",
  /**
   * Where a worker reports an attempt's result (in BATON_EVENTS, beside the engine's own events):
   * the task's `reply`. A subject of its own so that NATS permissions can let workers publish
   * results and nothing else: the engine takes only `task.*` reports here (docs/operations.md).
   */
  result: (execution: string, partitions: number) =>
    `baton.events.p.${partitionOf(execution, partitions)}.${execution}.result`,
  allResults: "baton.events.p.*.*.result",
  timers: (execution: string) => `baton.timers.${execution}`,
  allTimers: "baton.timers.>",
  history: (execution: string) => `baton.history.${execution}`,
  allHistory: "baton.history.>",
  /** Core NATS: tells workers to stop the running attempts of an execution's step. */
  cancel: (execution: string) => `baton.cancel.${execution}`,
  allCancels: "baton.cancel.>",
  /** Core NATS, not stored: a worker took an attempt (`AttemptStartedEnvelope`), for live views. */
  attempts: (execution: string) => `baton.attempts.${execution}`,
  allAttempts: "baton.attempts.>",
  /** Core NATS, not stored: an attempt's progress reports (`ProgressReport` in progress.ts). */
  progress: (execution: string) => `baton.progress.${execution}`,
  allProgress: "baton.progress.>",
  /** Core NATS: worker heartbeats. */
  heartbeat: (worker: string) => `baton.workers.heartbeat.${worker}`,
  allHeartbeats: "baton.workers.heartbeat.>",
  /**
   * Core NATS request/reply: "do you still hold this effect attempt?" (`HoldQuery` → `HoldAnswer`),
   * asked of the worker a ledger claim names before another worker takes the attempt over.
   */
  holds: (worker: string) => `baton.workers.holds.${worker}`,
  allHolds: "baton.workers.holds.*",
} as const;

/** Asked on `subjects.holds(worker)`: the attempt is `<idempotencyKey>#<attempt>`. */
export interface HoldQuery {
  readonly attempt: string;
}

/** The answer: whether that worker is claiming, running or recording the attempt now. */
export interface HoldAnswer {
  readonly holds: boolean;
}

/**
 * The durable consumer every worker of a function shares in a lane. Consumer names cannot hold
 * `.` either, so the function name is encoded as in subjects (`.` → `~`): `a.b` and `a_b` stay
 * two consumers.
 */
export function taskConsumer(lane: Lane, fn: string): string {
  return `fn_${lane}_${subjectToken(fn)}`;
}

export const headers = {
  protocol: "Baton-Protocol",
  execution: "Baton-Execution",
  step: "Baton-Step",
  /** The step run (`TaskEnvelope.run`); with the other identity headers, a worker can report on a task whose body it cannot read. */
  run: "Baton-Run",
  attempt: "Baton-Attempt",
  idempotencyKey: "Baton-Idempotency-Key",
  /** Where the attempt's report goes (`TaskEnvelope.reply`): for a worker that cannot read the body. */
  reply: "Baton-Reply",
  /** W3C trace context. */
  traceparent: "traceparent",
  tracestate: "tracestate",
  /** JetStream deduplication. */
  messageId: "Nats-Msg-Id",
} as const;

/** How long a task may go without a progress heartbeat before JetStream hands it to another worker. */
export const taskAckWaitMs = 6_000;
/** How often a worker says "still working" on a running task. */
export const taskProgressIntervalMs = 2_000;
/** How often a worker announces itself. */
export const heartbeatIntervalMs = 2_000;
/** Entries of `buckets.workers` expire after this long without a heartbeat. */
export const workerTtlMs = 3 * heartbeatIntervalMs;
/** How long JetStream remembers a `Nats-Msg-Id` to drop a duplicate (tasks and events streams). */
export const duplicateWindowMs = 5 * 60_000;

/** How long a task waits in BATON_TASKS for a worker at most. */
export const taskMaxAgeMs = 7 * 24 * 3_600_000;

/** JetStream durations are nanoseconds. */
const nanos = (ms: number): number => ms * 1_000_000;

/**
 * The streams workers touch, as the JetStream API takes them (`$JS.API.STREAM.CREATE.<name>`;
 * durations in nanoseconds). The engine and the workers both create them when missing, with
 * these exact definitions, and leave an existing stream as it is.
 */
export const streamConfigs = {
  tasks: {
    name: streams.tasks,
    subjects: [subjects.allTasks],
    /** A task is removed once a worker acks it. */
    retention: "workqueue",
    storage: "file",
    duplicate_window: nanos(duplicateWindowMs),
    /** A task nobody took for this long goes (its attempt has long timed out, as `FunctionUnavailable`). */
    max_age: nanos(taskMaxAgeMs),
  },
  events: {
    name: streams.events,
    subjects: [subjects.allEvents],
    /** The engine's durable consumer takes each event once; an applied event is removed. */
    retention: "workqueue",
    storage: "file",
    duplicate_window: nanos(duplicateWindowMs),
  },
} as const;

/**
 * The durable pull consumer of one function in one lane (`$JS.API.CONSUMER.DURABLE.CREATE.BATON_TASKS.<name>`),
 * shared by every worker that serves it. A task whose worker stops calling `working()` for
 * `taskAckWaitMs` is delivered again, to any worker, without limit.
 */
export function taskConsumerConfig(lane: Lane, fn: string) {
  return {
    durable_name: taskConsumer(lane, fn),
    filter_subject: subjects.task(lane, fn),
    deliver_policy: "all",
    ack_policy: "explicit",
    ack_wait: nanos(taskAckWaitMs),
    max_deliver: -1,
    /** Tasks of the function in flight at once, across all its workers. */
    max_ack_pending: 10_000,
  } as const;
}

/** The KV bucket of live workers: key = worker id, value = its last `HeartbeatEnvelope`. */
export const workersBucketConfig = {
  bucket: buckets.workers,
  ttlMs: workerTtlMs,
  history: 1,
  storage: "file",
} as const;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A step error on the wire. `retryable: false` is never retried. */
export interface WireError {
  code: string;
  message: string;
  retryable: boolean;
  details?: JsonValue;
}

/**
 * The codes a worker gives on its own (a function may throw codes of its own too), with the
 * `retryable` it sends.
 */
export const workerErrors = {
  /** The function threw something that is not a Baton error. */
  FunctionError: { retryable: true },
  /** The input failed the function's declared JSON Schema; the function did not run. */
  InputInvalid: { retryable: false },
  /** The function crashed its isolate: `process.exit()`, an uncaught error, out of memory. */
  WorkerCrashed: { retryable: true },
  /** The attempt ran past its deadline (or the function's own timeout) and was stopped. */
  Timeout: { retryable: true },
  /** The execution (or the step) was cancelled while the attempt ran. */
  Cancelled: { retryable: false },
  /** The task message could not be read: not JSON, a field missing, an unknown protocol version. */
  TaskInvalid: { retryable: false },
  /** The function returned something that is not JSON, or too large for a NATS message. */
  OutputInvalid: { retryable: false },
} as const satisfies Record<string, { retryable: boolean }>;
export type WorkerErrorCode = keyof typeof workerErrors;

/** The body of a task message (JSON). */
export interface TaskEnvelope {
  v: typeof protocolVersion;
  execution: string;
  workflow: string;
  step: string;
  /** Execution-wide number of this step run; with `attempt` it identifies the attempt. */
  run: number;
  /** From 1. */
  attempt: number;
  function: string;
  input: JsonValue;
  effect: boolean;
  /** Effect steps: stable across attempts and engine restarts; use it to make the effect happen once. */
  idempotencyKey?: string;
  /** Epoch ms after which the engine stops waiting for this attempt (it fails with `Timeout`). */
  deadline: number;
  /** The subject the attempt's report is published on (`subjects.result`). */
  reply: string;
}

/**
 * A worker took an attempt: published on core NATS (`subjects.attempts(execution)`), never
 * stored. Optional for workers; nothing depends on it but live views and tests. (Protocol 1
 * workers published it on the events stream; the engine acknowledges and ignores it there.)
 */
export interface AttemptStartedEnvelope {
  v: typeof protocolVersion;
  type: "task.started";
  execution: string;
  step: string;
  run: number;
  attempt: number;
  worker: string;
  startedAt: number;
}

/** What a worker reports on the task's `reply`. */
export type ResultEnvelope =
  | {
      v: typeof protocolVersion;
      type: "task.succeeded";
      execution: string;
      step: string;
      run: number;
      attempt: number;
      worker: string;
      /** Epoch ms the worker took the task: the history's `AttemptStarted`, written with the result. */
      startedAt?: number;
      output: JsonValue;
    }
  | {
      v: typeof protocolVersion;
      type: "task.failed";
      execution: string;
      step: string;
      run: number;
      attempt: number;
      worker: string;
      startedAt?: number;
      error: WireError;
    };

/** The body of a cancel message (core NATS). `step`/`run` absent: every attempt of the execution. */
export interface CancelEnvelope {
  v: typeof protocolVersion;
  execution: string;
  step?: string;
  run?: number;
  /** Only this attempt (a later attempt of the same step run is not cancelled). */
  attempt?: number;
  reason: string;
}

/** A worker's heartbeat (core NATS), every `heartbeatIntervalMs`. */
export interface HeartbeatEnvelope {
  v: typeof protocolVersion;
  worker: string;
  node: string;
  functions: { name: string; lane: Lane }[];
  /** Pure-lane slots. */
  concurrency: number;
  /** Effect-lane slots. */
  effectConcurrency: number;
  running: number;
  startedAt: number;
  /** The last heartbeat of a draining worker. */
  leaving?: boolean;
  /** The function package the worker loaded, if it serves one (`baton worker --package`, pool workers). */
  package?: { name: string; version: number; digest: string };
}

/** Deduplication id of a result: one per attempt and outcome kind. */
export function resultMessageId(
  execution: string,
  step: string,
  run: number,
  attempt: number,
  type: string,
): string {
  return `${type}:${execution}:${step}:${run}:${attempt}`;
}

/** Deduplication id of a task: one per attempt. */
export function taskMessageId(execution: string, step: string, run: number, attempt: number): string {
  return `task:${execution}:${step}:${run}:${attempt}`;
}

/**
 * The effect ledger (KV bucket `buckets.effects`), shared by the engine and workers: one entry per
 * effect step run, keyed by its idempotency key. A worker that receives an effect task whose entry
 * says `completed` reports the recorded output without running the function again; a worker
 * whose effect completed records that before it reports, so a redelivered task (a worker or
 * server crash between report and ack) does not run the effect twice.
 */
export interface EffectLedgerEntry {
  idempotencyKey: string;
  execution: string;
  step: string;
  completed: boolean;
  output?: JsonValue;
  attempts: EffectLedgerAttempt[];
}

export interface EffectLedgerAttempt {
  attempt: number;
  dispatchedAt: string;
  worker?: string;
  /**
   * The tasks-stream sequence of the task message that claimed the attempt: only that message
   * (delivered again after its worker died) may run it; another copy of the attempt may not.
   */
  taskSeq?: number;
  outcome?: "succeeded" | "failed";
  error?: WireError;
  endedAt?: string;
}

/** KV keys cannot hold `/`: the idempotency key `<execution>/<step>/<run>` is stored as `<execution>.<step>.<run>`. */
export function effectLedgerKey(idempotencyKey: string): string {
  return idempotencyKey.replaceAll("/", ".");
}
