/**
 * The contract between a compiled workflow machine and whatever drives it (the orchestrator,
 * or the simulator in tests): the context it keeps, the events it accepts and the commands it
 * names. Everything here is plain JSON, so a snapshot can be persisted and restored as is.
 */
import type { StepError } from "../../errors.ts";
import type { Json } from "../definition.ts";
import type { StepRecord } from "../expressions.ts";

export interface ExecutionInfo {
  id: string;
  workflow: string;
  revision: number;
  /** Epoch ms. */
  startedAt: number;
}

/** What a machine is started with (`initialTransition(machine, input)`). */
export interface MachineInput {
  input: Json;
  execution: ExecutionInfo;
  event?: Json;
  trigger?: Json;
  /** Map item machines only: the item, its position, and the outer scope they inherit. */
  item?: Json;
  index?: number;
  steps?: Record<string, StepRecord>;
  vars?: Record<string, Json>;
}

/** The state of one step's current run. */
export interface PendingStep {
  /** Execution-wide sequence number of this step run: part of idempotency keys and correlation. */
  run: number;
  attempt: number;
  input?: Json;
  result?: Json;
  error?: StepError;
  /** `map` only: failures it tolerated; the step still succeeds, and they show at `$steps.<map>.error`. */
  toleratedError?: StepError;
  /** `switch` only: the index of the branch taken. */
  branch?: number;
  /** `if` evaluated to false. */
  skip?: boolean;
  /** A task, child or item batch is out and not answered yet (so leaving the step must cancel it). */
  inFlight?: boolean;
  /** `receive`: the subject, once its expressions are resolved. */
  subject?: string;
}

export interface MapProgress {
  run: number;
  items: Json[];
  concurrency: number;
  tolerate: number;
  next: number;
  inFlight: number;
  /** Indices of the items out now (at most `concurrency`): what a cancel must reach. */
  outstanding: number[];
  done: number;
  /**
   * Every item's result, set only at the join: the engine reads them from the items' records
   * then (`ItemDone.results`), so the parent's record does not grow with each answer. Records
   * written by an earlier version keep each answer's result here as it comes.
   */
  results?: Json[];
  failures: { index: number; error: StepError }[];
}

export interface BranchProgress {
  outputs: Record<string, Json>;
  error: StepError | null;
}

export interface InboxEntry {
  kind: "signal" | "message";
  /** Signal name or message subject. */
  name: string;
  payload: Json;
  at: number;
}

export interface MachineContext {
  input: Json;
  execution: ExecutionInfo;
  event: Json;
  trigger: Json;
  item: Json;
  index: number | null;
  steps: Record<string, StepRecord>;
  /** `$vars` per scope (`""` is the workflow's or the item's own; branches have their own copies). */
  vars: Record<string, Record<string, Json>>;
  /** Output of the step that finished last, per scope: the default input of the next step. */
  last: Record<string, Json>;
  runs: number;
  jumps: number;
  pending: Record<string, PendingStep>;
  inbox: InboxEntry[];
  branches: Record<string, BranchProgress>;
  maps: Record<string, MapProgress>;
  /** Set by a `return` at the top of the machine. */
  returned: { value: Json } | null;
  output: Json;
  error: StepError | null;
  /** The top-level step whose failure failed the execution: where a retry starts again. */
  failedStep: string | null;
}

// --- events ------------------------------------------------------------------------------------
// Every event the driver applies carries `at` (epoch ms): the machine's only notion of "now".

export interface TaskSucceeded {
  type: "task.succeeded";
  step: string;
  run: number;
  attempt: number;
  output: Json;
  worker?: string;
  at: number;
}
export interface TaskFailed {
  type: "task.failed";
  step: string;
  run: number;
  attempt: number;
  error: StepError;
  worker?: string;
  at: number;
}
export interface ItemDone {
  type: "item.done";
  step: string;
  run: number;
  index: number;
  output?: Json;
  error?: StepError;
  /**
   * Set by the engine, never on the wire: on the answers that complete a map's join, every item's
   * result, read from the items' records (apply-event.ts, `joinsCompleted`).
   */
  results?: Json[];
  at: number;
}
export interface ChildDone {
  type: "child.done";
  step: string;
  run: number;
  output?: Json;
  error?: StepError;
  at: number;
}
export interface SignalEvent {
  type: "signal";
  name: string;
  payload: Json;
  at: number;
}
export interface MessageEvent {
  type: "message";
  subject: string;
  data: Json;
  at: number;
}
/** Re-runs a failed execution from the step that failed. */
export interface RetryEvent {
  type: "retry";
  at: number;
}
export interface CancelEvent {
  type: "cancel";
  reason?: string;
  at: number;
}
/** A timer armed through an xstate `after` delay, fired by the driver. */
export interface TimerFired {
  type: `xstate.after.${string}`;
  at?: number;
}

export type MachineEvent =
  | TaskSucceeded
  | TaskFailed
  | ItemDone
  | ChildDone
  | SignalEvent
  | MessageEvent
  | CancelEvent
  | RetryEvent
  | TimerFired;

// --- commands ----------------------------------------------------------------------------------
// Named actions with resolved params: the driver carries them out after persisting the snapshot.
// Timers come as xstate's own `xstate.raise` (with `delay` and `id`) and `xstate.cancel` actions.

export interface DispatchTask {
  step: string;
  run: number;
  attempt: number;
  function: string;
  input: Json;
  effect: boolean;
  /** Effect steps only: the same for every attempt of this step run, across restarts. */
  idempotencyKey?: string;
  timeoutMs: number;
}
export interface CancelTask {
  step: string;
  run: number;
  attempt: number;
}
export interface StartItem {
  step: string;
  run: number;
  index: number;
  item: Json;
  /** The item's `$vars` start as a copy of the map step's scope. */
  vars: Record<string, Json>;
}
export interface CancelItems {
  step: string;
  run: number;
  /** The items still out. */
  indices: number[];
}
export interface StartChild {
  step: string;
  run: number;
  workflow: string;
  input: Json;
}
export interface CancelChild {
  step: string;
  run: number;
}
export interface EmitEvent {
  step: string;
  run: number;
  subject: string;
  data: Json;
  /** Deduplication id: one publish per step run, whatever crashes happen. */
  id: string;
}
export interface Subscribe {
  step: string;
  subject: string;
}
export interface HistoryRecord {
  type: HistoryType;
  step?: string;
  attempt?: number;
  data?: Json;
}
export type ExecutionStatus = "succeeded" | "failed" | "cancelled" | "timed_out";
export interface Finish {
  status: ExecutionStatus;
  output: Json;
  error: StepError | null;
  /** Set by the engine: the tokens of the wake-ups still armed when the execution ended. */
  staleWakes?: string[];
  /** Set by the engine: when each of those was due (token → ms), to find those in the timer index. */
  wakesDue?: Record<string, number>;
}

export const historyTypes = [
  "ExecutionStarted",
  "StepScheduled",
  "StepSucceeded",
  "StepFailed",
  "StepSkipped",
  "RetryScheduled",
  "TimerArmed",
  "SignalReceived",
  "EventEmitted",
  "ChildStarted",
  "ExecutionSucceeded",
  "ExecutionFailed",
  "ExecutionCancelled",
  "ExecutionTimedOut",
  "ExecutionRetried",
] as const;
export type HistoryType = (typeof historyTypes)[number];

/** Every command a machine may name, with its params. */
export interface CommandParams {
  dispatchTask: DispatchTask;
  cancelTask: CancelTask;
  startItem: StartItem;
  cancelItems: CancelItems;
  startChild: StartChild;
  cancelChild: CancelChild;
  emitEvent: EmitEvent;
  subscribe: Subscribe;
  unsubscribe: Subscribe;
  record: HistoryRecord;
  finish: Finish;
}
export type CommandType = keyof CommandParams;
export const commandTypes = [
  "dispatchTask",
  "cancelTask",
  "startItem",
  "cancelItems",
  "startChild",
  "cancelChild",
  "emitEvent",
  "subscribe",
  "unsubscribe",
  "record",
  "finish",
] as const satisfies readonly CommandType[];

export type Command = { [K in CommandType]: { type: K; params: CommandParams[K] } }[CommandType];
