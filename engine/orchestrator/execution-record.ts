/**
 * The persisted form of an execution: one KV entry per execution, written only with an
 * optimistic concurrency check on its revision (architecture.md, rule 2).
 */
import type { StepError } from "../errors.ts";
import type { Json } from "../workflow/definition.ts";
import type { ExecutionStatus } from "../workflow/compile/machine-types.ts";
import type { ExecutionTrace } from "./execution-spans.ts";
import type { HistoryEntry } from "./history.ts";

export type RecordStatus = "running" | "waiting" | ExecutionStatus;

/** A command waiting to leave, as the transition named it (xstate's timer actions included). */
export interface OutboxEntry {
  type: string;
  params: Json;
  /** Commands that start work elsewhere (a task, a map item, a child): the trace context it continues. */
  traceparent?: string;
}

export interface ExecutionRecord {
  v: 1;
  id: string;
  workflow: string;
  revision: number;
  /** `map` item executions run their map's body machine. */
  item?: { step: string; index: number };
  parent?: { execution: string; step: string; run: number; kind: "item" | "child" };
  status: RecordStatus;
  startedAt: number;
  endedAt?: number;
  output?: Json;
  error?: StepError | null;
  /** The xstate snapshot, as `machine.resolveState` takes it back. */
  snapshot: { value: Json; context: Json };
  /** Armed timers: xstate's delayed-event id → the token that may fire it. */
  timers: Record<string, string>;
  /**
   * Timers kept in the record itself, by token: they have no message of their own. One wake-up
   * message per execution (`wakes`) fires every timer due by then; a step's attempt timeout costs
   * no durable message when an earlier wake-up already covers it.
   */
  deferred?: Record<string, DeferredTimer>;
  /** Wake-up messages armed and not yet fired: token → due (epoch ms). */
  wakes?: Record<string, number>;
  /** Idempotency keys of the last `signalKeyMemory` keyed signals applied: a repeat is not applied again. */
  signalKeys?: string[];
  /** Ids of the last events applied, so a redelivered event is recognised and not applied twice. */
  applied: string[];
  /** The commands of the last transition; sent again if the process that wrote them may not have. */
  outbox: OutboxEntry[];
  /**
   * The history of the last transition, written in the same compare-and-set as the record and
   * published with the outbox: a crash between the write and the publish cannot lose it, and a
   * resend is deduplicated by its sequence numbers.
   */
  outboxHistory?: HistoryEntry[];
  /** History records written so far: the next one is numbered `historySeq + 1`. */
  historySeq: number;
  /** Timer tokens handed out so far. */
  timerSeq: number;
  /** The execution's trace, when it is traced: whichever process applies the next event continues it. */
  trace?: ExecutionTrace;
}

/** A timer with no message of its own, fired by the execution's next wake-up at or after `due`. */
export interface DeferredTimer {
  timer: string;
  due: number;
  event: { type: string };
}

/** The name of the execution's wake-up timer on the wire (`timer.fired` with `timer: wakeTimer`). */
export const wakeTimer = "baton.wake";

export const isEnded = (status: RecordStatus) => status !== "running" && status !== "waiting";

/** How many signal idempotency keys a record remembers. */
export const signalKeyMemory = 1_000;
/** Signals and messages an execution keeps unclaimed (no `receive` took them yet), at most. */
export const inboxLimit = 1_000;

/** Whether an execution takes an event: once ended, only a retry, and only after a failure. */
export const takesEvent = (record: Pick<ExecutionRecord, "status">, event: { type: string }) =>
  !isEnded(record.status) || (event.type === "retry" && record.status === "failed");

/** How many applied event ids a record remembers. */
export const appliedMemory = 64;
