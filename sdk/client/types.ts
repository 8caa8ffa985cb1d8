// The shapes the HTTP API answers with (design/api.md), as the client hands them to its callers.
// Times are ISO 8601 strings, as they cross the wire.
import type { JsonValue } from "../protocol.ts";

/** Every status an execution can have. */
export const executionStatuses = [
  "running",
  "waiting",
  "succeeded",
  "failed",
  "cancelled",
  "timed_out",
] as const;

/**
 * The status of an execution: `running`, `waiting` (on a timer, signal or event), or one of the
 * final ones, `succeeded`, `failed`, `cancelled`, `timed_out`.
 */
export type ExecutionStatus = (typeof executionStatuses)[number];

/** Whether an execution with this status has ended (it will not change any more, unless retried). */
export function isFinalStatus(status: string): boolean {
  return status !== "running" && status !== "waiting";
}

/** A step error: `{ code, message, retryable, details? }`, as a step or an execution failed with it. */
export interface StepError {
  readonly code: string;
  readonly message: string;
  readonly retryable?: boolean;
  readonly details?: JsonValue;
}

/** One step of an execution, as `GET /v1/executions/{id}` lists it. */
export interface ExecutionStep {
  readonly name: string;
  readonly status: string;
  readonly attempts: number;
  readonly startedAt?: string;
  readonly endedAt?: string;
  readonly effect?: boolean;
}

/** What `POST /v1/workflows/{name}/executions` answers when the execution has not ended yet. */
export interface StartedExecution {
  readonly id: string;
  readonly workflow: string;
  readonly revision: number;
  readonly status: ExecutionStatus;
}

/** An execution, as `GET /v1/executions/{id}` answers. */
export interface Execution extends StartedExecution {
  readonly input: JsonValue;
  /** The output, once it has succeeded. */
  readonly output?: JsonValue;
  /** The error it failed with, once it has failed, been cancelled or timed out. */
  readonly error?: StepError | null;
  readonly startedAt: string;
  readonly endedAt?: string;
  /** The execution that started this one (a child workflow or a `map` item), if any. */
  readonly parent?: JsonValue;
  readonly traceId?: string | null;
  readonly steps: readonly ExecutionStep[];
}

/** An execution in a list (`GET /v1/executions`): at least these fields. */
export interface ExecutionSummary extends StartedExecution {
  readonly startedAt: string;
  readonly endedAt?: string;
}

/** One page of `GET /v1/executions`, newest first; `next` is the cursor of the following page. */
export interface ExecutionPage {
  readonly items: readonly ExecutionSummary[];
  readonly next?: string;
}

/**
 * One event of an execution's history (`ExecutionStarted`, `StepScheduled`, `AttemptStarted`,
 * `AttemptFailed`, `ExecutionSucceeded`, ...), numbered from 1 by `seq`.
 */
export interface HistoryEvent {
  readonly seq: number;
  readonly at: string;
  readonly type: string;
  readonly step?: string;
  readonly attempt?: number;
  readonly worker?: string;
  readonly idempotencyKey?: string;
  readonly data?: JsonValue;
}

/** The history event types that end an execution: the server closes the event stream after one. */
export const finalEventTypes: ReadonlySet<string> = new Set([
  "ExecutionSucceeded",
  "ExecutionFailed",
  "ExecutionCancelled",
  "ExecutionTimedOut",
]);

/** A stored workflow, as `PUT /v1/workflows/{name}` answers. */
export interface AppliedWorkflow {
  readonly name: string;
  readonly revision: number;
  /** The workflow's triggers as the server registered them. */
  readonly triggers: JsonValue;
  /** `true` when this name was new (201 Created), `false` when updated or unchanged (200). */
  readonly created: boolean;
}

/** A workflow in `GET /v1/workflows`. */
export interface WorkflowSummary {
  readonly name: string;
  readonly revision: number;
  readonly description?: string;
  readonly updatedAt?: string;
}

/** One workflow with its source YAML, as `GET /v1/workflows/{name}` answers. */
export interface StoredWorkflow extends WorkflowSummary {
  /** The YAML as submitted. */
  readonly source: string;
  readonly [field: string]: JsonValue | undefined;
}
