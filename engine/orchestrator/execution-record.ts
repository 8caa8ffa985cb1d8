/**
 * The persisted form of an execution: one KV entry per execution, written only with an
 * optimistic concurrency check on its revision (architecture.md, rule 2).
 */
import type { StepError } from "../errors.ts";
import type { Json } from "../workflow/definition.ts";
import type { ExecutionStatus } from "../workflow/compile/machine-types.ts";
import type { ExecutionTrace } from "./execution-spans.ts";

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
  /** Armed timers: xstate's delayed-event id → the token of the timer message that may fire it. */
  timers: Record<string, string>;
  /** Ids of the last events applied, so a redelivered event is recognised and not applied twice. */
  applied: string[];
  /** The commands of the last transition; sent again if the process that wrote them may not have. */
  outbox: OutboxEntry[];
  /** When the outbox was written (epoch ms): past JetStream's deduplication window it is not sent again. */
  outboxAt?: number;
  /** History records written so far: the next one is numbered `historySeq + 1`. */
  historySeq: number;
  /** Timer tokens handed out so far. */
  timerSeq: number;
  /** The execution's trace, when it is traced: whichever process applies the next event continues it. */
  trace?: ExecutionTrace;
}

export const isEnded = (status: RecordStatus) => status !== "running" && status !== "waiting";

/** How many applied event ids a record remembers. */
export const appliedMemory = 64;
