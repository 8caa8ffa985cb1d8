/**
 * An execution as the API shows it (`GET /v1/executions/{id}`), from its record and its
 * history: the steps are read off the history (scheduled, attempts, outcome), their `effect`
 * flag off the workflow definition. Pure.
 */
import type { AttemptProgressEvent } from "./progress-relay.ts";
import type { StepError } from "../errors.ts";
import type { PendingStart } from "../orchestrator/executions.ts";
import { isEnded, type ExecutionRecord, type RecordStatus } from "../orchestrator/execution-record.ts";
import type { HistoryEntry } from "../orchestrator/history.ts";
import type { Json, Step, WorkflowDefinition } from "../workflow/definition.ts";

export type StepStatus =
  "running" | "waiting" | "succeeded" | "failed" | "skipped" | "cancelled" | "timed_out";

export interface StepView {
  name: string;
  status: StepStatus;
  attempts: number;
  startedAt: string;
  endedAt?: string;
  effect: boolean;
  runs: number;
  /** The input of a `call` step while it runs, as its function received it. */
  input?: Json;
  /** The latest run's output, once it succeeded. */
  output?: Json;
  /** Why the latest run failed. */
  error?: Json;
}

export interface ExecutionView {
  id: string;
  workflow: string;
  revision: number;
  status: RecordStatus;
  input: Json;
  output?: Json;
  error?: StepError;
  startedAt: string;
  endedAt?: string;
  parent?: ExecutionRecord["parent"];
  traceId: string | null;
  steps: StepView[];
  /** The last progress of the running attempt (progress-relay.ts), while the execution runs. */
  progress?: AttemptProgressEvent;
}

export interface ExecutionSummary {
  id: string;
  workflow: string;
  revision: number;
  status: RecordStatus;
  startedAt: string;
  endedAt?: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function summarizeExecution(record: ExecutionRecord): ExecutionSummary {
  return {
    id: record.id,
    workflow: record.workflow,
    revision: record.revision,
    status: record.status,
    startedAt: iso(record.startedAt),
    ...(record.endedAt === undefined ? {} : { endedAt: iso(record.endedAt) }),
  };
}

export function viewExecution(
  record: ExecutionRecord,
  history: HistoryEntry[],
  definition: WorkflowDefinition | undefined,
): ExecutionView {
  const context = record.snapshot.context as { input?: Json } | null;
  return {
    ...summarizeExecution(record),
    input: context?.input ?? null,
    ...(isEnded(record.status) && record.output !== undefined ? { output: record.output } : {}),
    ...(record.error ? { error: record.error } : {}),
    ...(record.parent ? { parent: record.parent } : {}),
    traceId: record.trace?.traceId ?? null,
    steps: withData(stepsOf(history, definition ? effectStepsOf(definition) : new Set(), record), record),
  };
}

/** Each top-level step's input, output and error, as the record's machine holds them now. */
function withData(steps: StepView[], record: ExecutionRecord): StepView[] {
  const context = record.snapshot.context as {
    pending?: Record<string, { input?: Json }>;
    steps?: Record<string, { output?: Json; error?: Json }>;
  } | null;
  for (const step of steps) {
    const input = context?.pending?.[step.name]?.input;
    const done = context?.steps?.[step.name];
    if (input !== undefined) step.input = input;
    if (step.status === "succeeded" && done?.output !== undefined) step.output = done.output;
    if (done?.error !== undefined && done.error !== null) step.error = done.error;
  }
  return steps;
}

/** A start no engine has taken yet: running, with no step so far. */
export function viewPendingStart(pending: PendingStart): ExecutionView {
  return {
    id: pending.id,
    workflow: pending.workflow,
    revision: pending.revision,
    status: "running",
    input: pending.input,
    startedAt: iso(pending.at),
    traceId: null,
    steps: [],
  };
}

/** Each step by its latest run, in the order the steps were first scheduled. */
export function stepsOf(
  history: readonly HistoryEntry[],
  effectSteps: ReadonlySet<string>,
  record: Pick<ExecutionRecord, "status" | "endedAt">,
): StepView[] {
  const steps = new Map<string, StepView>();
  for (const entry of history) {
    if (entry.step === undefined) continue;
    const step = steps.get(entry.step);
    switch (entry.type) {
      case "StepScheduled":
        steps.set(entry.step, {
          name: entry.step,
          status: "running",
          attempts: 0,
          startedAt: entry.at,
          effect: effectSteps.has(entry.step),
          runs: (step?.runs ?? 0) + 1,
        });
        break;
      case "AttemptStarted":
        if (step && entry.attempt !== undefined) step.attempts = Math.max(step.attempts, entry.attempt);
        break;
      case "StepSucceeded":
      case "StepFailed":
      case "StepSkipped":
        if (!step) break;
        step.status =
          entry.type === "StepSucceeded" ? "succeeded" : entry.type === "StepFailed" ? "failed" : "skipped";
        step.endedAt = entry.at;
        if (typeof entry.attempt === "number") step.attempts = Math.max(step.attempts, entry.attempt);
        break;
      default:
        break;
    }
  }
  for (const step of steps.values()) {
    if (step.status !== "running") continue;
    if (record.status === "waiting") step.status = "waiting";
    else if (isEnded(record.status)) {
      // The execution ended around it: a cancel, a timeout, or a sibling's failure stopped it.
      step.status = record.status === "timed_out" ? "timed_out" : "cancelled";
      if (record.endedAt !== undefined) step.endedAt = iso(record.endedAt);
    }
  }
  return [...steps.values()];
}

/** The names of the effect steps of a workflow, nested lists included. */
export function effectStepsOf(definition: WorkflowDefinition): Set<string> {
  const names = new Set<string>();
  const visit = (steps: readonly Step[]) => {
    for (const step of steps) {
      if ("call" in step && step.effect === true) names.add(step.name);
      if ("switch" in step) for (const branch of step.switch) if (branch.steps) visit(branch.steps);
      if ("parallel" in step) for (const branch of Object.values(step.parallel.branches)) visit(branch);
      if ("map" in step) visit(step.map.steps);
    }
  };
  visit(definition.steps);
  return names;
}
