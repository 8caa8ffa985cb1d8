/**
 * The spans of an execution, planned as plain data by the pure core (apply-event.ts) and
 * exported by engine/telemetry once the record that produced them is persisted.
 *
 * An execution can wait for days and outlive any engine process, so no span is ever held open in
 * memory: what has begun is written in the record (`trace.open`: its id and when it began), and
 * the span is emitted whole, with its real start and end times, by whichever process sees it end.
 * Span ids are derived from the execution id and the step run, so any replica (or a process after
 * a restart) names them alike, and a task's `traceparent` is the same however often its command is
 * sent again.
 *
 * The shape of a trace:
 *
 *     workflow <name>                   the execution's root, emitted when it starts (short)
 *     ├─ step <name>                    scheduled → succeeded / failed / skipped
 *     │  └─ attempt <function>          dispatched → answered   (a worker's `function <name>` under it)
 *     ├─ step <map>
 *     │  └─ workflow <name> item <i>    each item is an execution of its own, in the same trace
 *     ├─ retry from <step>              a failed execution re-run
 *     └─ end <status>                   the execution's end, with its error
 *
 * The root is short on purpose: emitted at once, it gives every later span a parent to hang under,
 * so a trace in a tracing UI is whole while the execution still waits.
 */
import { createHash } from "node:crypto";
import type { CompiledWorkflow } from "../workflow/compile/compile-workflow.ts";
import type { CancelTask, DispatchTask, StartChild, StartItem } from "../workflow/compile/machine-types.ts";
import type { EngineEvent, StartEvent } from "./engine-events.ts";
import type { ExecutionRecord, OutboxEntry } from "./execution-record.ts";
import type { HistoryEntry } from "./history.ts";
import {
  formatTraceparent,
  parseTraceparent,
  type PlannedSpan,
  type SpanAttributes,
} from "../telemetry/trace-context.ts";

/** A span begun and not yet ended, as the record keeps it. */
export interface OpenSpan {
  spanId: string;
  /** Epoch ms. */
  start: number;
  parentSpanId: string;
  attributes: SpanAttributes;
}

/** The trace an execution belongs to, kept in its record so that any process can continue it. */
export interface ExecutionTrace {
  /** 32 lowercase hex digits. */
  traceId: string;
  /** The execution's root span (16 hex digits). */
  spanId: string;
  /** The span the root hangs under: the `map` or `workflow` step of the parent execution. */
  parentSpanId?: string;
  /** W3C trace flags of the trace. */
  flags: string;
  /** What caused the execution (the API request, the webhook delivery), as `traceparent`s. */
  links?: string[];
  /** Steps and attempts begun and not yet ended, by key (`step:<name>`, `attempt:<step>:<run>:<n>`). */
  open: Record<string, OpenSpan>;
}

/** A stable id of `hexDigits` derived from `parts` (never all zeros, which W3C forbids). */
function derivedId(hexDigits: 16 | 32, ...parts: (string | number)[]): string {
  const id = createHash("sha256").update(parts.join("\u0000")).digest("hex").slice(0, hexDigits);
  return /^0+$/.test(id) ? `${id.slice(0, -1)}1` : id;
}

export const attemptSpanId = (execution: string, step: string, run: number, attempt: number) =>
  derivedId(16, execution, "attempt", step, run, attempt);

/** The trace of a new execution: its parent's (items, children, a traced caller) or a new one. */
export function beginTrace(id: string, start: StartEvent): ExecutionTrace {
  const parent = parseTraceparent(start.traceparent);
  const links = (start.links ?? []).filter((link) => parseTraceparent(link) !== undefined);
  return {
    traceId: parent?.traceId ?? derivedId(32, id, "trace"),
    spanId: derivedId(16, id, "execution"),
    ...(parent ? { parentSpanId: parent.spanId } : {}),
    flags: parent?.flags ?? "01",
    ...(links.length > 0 ? { links } : {}),
    open: {},
  };
}

/** The root span of an execution that has just started. */
export function rootSpan(record: ExecutionRecord, trace: ExecutionTrace): PlannedSpan {
  const item = record.item;
  return {
    name: item ? `workflow ${record.workflow} item ${item.index}` : `workflow ${record.workflow}`,
    traceId: trace.traceId,
    spanId: trace.spanId,
    ...(trace.parentSpanId ? { parentSpanId: trace.parentSpanId } : {}),
    flags: trace.flags,
    start: record.startedAt,
    attributes: {
      ...executionAttributes(record),
      ...(item ? { "baton.map.step": item.step, "baton.map.index": item.index } : {}),
      ...(record.parent ? { "baton.parent.execution": record.parent.execution } : {}),
    },
    ...(trace.links ? { links: trace.links } : {}),
  };
}

const executionAttributes = (record: ExecutionRecord): SpanAttributes => ({
  "baton.workflow": record.workflow,
  "baton.revision": record.revision,
  "baton.execution": record.id,
});

/**
 * Follows one transition: closes the spans of what ended, opens those of what began, and gives
 * each command that starts work elsewhere (a task, a map item, a child workflow) the
 * `traceparent` its work continues under. Changes `record.trace` (a fresh copy) and `commands`.
 */
export function traceTransition(
  compiled: CompiledWorkflow,
  record: ExecutionRecord,
  event: EngineEvent | undefined,
  commands: OutboxEntry[],
  history: HistoryEntry[],
): PlannedSpan[] {
  if (!record.trace) return [];
  const trace: ExecutionTrace = { ...record.trace, open: { ...record.trace.open } };
  record.trace = trace;
  const spans: PlannedSpan[] = [];
  const at = event?.at ?? record.startedAt;
  const base = executionAttributes(record);
  const close = (key: string, end: number, extra: SpanAttributes = {}, error?: PlannedSpan["error"]) => {
    const open = trace.open[key];
    if (!open) return;
    delete trace.open[key];
    const [kind, name] = key.split(":") as [string, string];
    spans.push({
      name: kind === "step" ? `step ${name}` : `attempt ${String(open.attributes["baton.function"])}`,
      traceId: trace.traceId,
      spanId: open.spanId,
      parentSpanId: open.parentSpanId,
      flags: trace.flags,
      start: open.start,
      end,
      attributes: { ...open.attributes, ...extra },
      ...(error ? { error } : {}),
    });
  };
  const abandonAttempts = (step: string, end: number) => {
    for (const key of Object.keys(trace.open))
      if (key.startsWith(`attempt:${step}:`))
        close(
          key,
          end,
          { "baton.outcome": "abandoned" },
          {
            code: "Abandoned",
            message: "the step moved on without this attempt's answer (it timed out, or was cancelled)",
          },
        );
  };
  const point = (name: string, time: number, attributes: SpanAttributes, error?: PlannedSpan["error"]) =>
    spans.push({
      name,
      traceId: trace.traceId,
      spanId: derivedId(16, record.id, name, record.historySeq, spans.length),
      parentSpanId: trace.spanId,
      flags: trace.flags,
      start: time,
      end: time,
      attributes: { ...base, ...attributes },
      ...(error ? { error } : {}),
    });

  // An attempt ends with its answer.
  if (event && (event.type === "task.succeeded" || event.type === "task.failed")) {
    const error = event.type === "task.failed" ? event.error : undefined;
    close(
      `attempt:${event.step}:${event.run}:${event.attempt}`,
      at,
      {
        "baton.outcome": error ? "failed" : "succeeded",
        ...(event.worker ? { "baton.worker": event.worker } : {}),
        ...(error ? { "baton.error.code": error.code } : {}),
      },
      error ? { code: error.code, message: error.message } : undefined,
    );
  }

  for (const entry of history) {
    const time = Date.parse(entry.at);
    const step = entry.step ?? "";
    switch (entry.type) {
      case "StepScheduled":
        // Still open from an earlier run that never ended (a branch left by a fail-fast parallel).
        abandonAttempts(step, time);
        close(
          `step:${step}`,
          time,
          { "baton.outcome": "abandoned" },
          {
            code: "Abandoned",
            message: "the step was scheduled again before this run ended",
          },
        );
        trace.open[`step:${step}`] = {
          spanId: derivedId(16, record.id, "step", step, entry.seq),
          start: time,
          parentSpanId: trace.spanId,
          attributes: { ...base, "baton.step": step, "baton.effect": compiled.effectSteps.has(step) },
        };
        break;
      case "StepSucceeded":
      case "StepSkipped":
      case "StepFailed": {
        abandonAttempts(step, time);
        const error = entry.type === "StepFailed" ? errorOf(entry) : undefined;
        const outcome = entry.type.slice("Step".length).toLowerCase();
        close(
          `step:${step}`,
          time,
          { "baton.outcome": outcome, ...(error ? { "baton.error.code": error.code } : {}) },
          error,
        );
        break;
      }
      case "ExecutionRetried":
        point(`retry from ${step}`, time, { "baton.step": step });
        break;
      case "ExecutionSucceeded":
      case "ExecutionFailed":
      case "ExecutionCancelled":
      case "ExecutionTimedOut": {
        // Whatever is still open ends with the execution (a cancelled or timed-out run).
        for (const key of Object.keys(trace.open)) {
          const abandoned = { code: "Abandoned", message: `the execution ended (${record.status})` };
          close(key, time, { "baton.outcome": "abandoned" }, abandoned);
        }
        const error = record.error ? { code: record.error.code, message: record.error.message } : undefined;
        point(
          `end ${record.status}`,
          time,
          { "baton.status": record.status, ...(error ? { "baton.error.code": error.code } : {}) },
          error,
        );
        break;
      }
      default:
        break;
    }
  }

  // Work that begins elsewhere continues the trace under its step (or, for a task, its attempt).
  for (const command of commands) {
    switch (command.type) {
      case "dispatchTask": {
        const task = command.params as unknown as DispatchTask;
        abandonAttempts(task.step, at);
        const spanId = attemptSpanId(record.id, task.step, task.run, task.attempt);
        trace.open[`attempt:${task.step}:${task.run}:${task.attempt}`] = {
          spanId,
          start: at,
          parentSpanId: trace.open[`step:${task.step}`]?.spanId ?? trace.spanId,
          attributes: {
            ...base,
            "baton.step": task.step,
            "baton.run": task.run,
            "baton.attempt": task.attempt,
            "baton.function": task.function,
            "baton.effect": task.effect,
            ...(task.idempotencyKey ? { "baton.idempotency_key": task.idempotencyKey } : {}),
          },
        };
        command.traceparent = formatTraceparent(trace.traceId, spanId, trace.flags);
        break;
      }
      case "cancelTask": {
        // A timed-out or no longer wanted attempt ends now, not when the next one is dispatched.
        const { step, run, attempt } = command.params as unknown as CancelTask;
        close(
          `attempt:${step}:${run}:${attempt}`,
          at,
          { "baton.outcome": "cancelled" },
          {
            code: "Cancelled",
            message: "the engine stopped waiting for this attempt (it timed out, or its step was cancelled)",
          },
        );
        break;
      }
      case "startItem":
      case "startChild": {
        const { step } = command.params as unknown as StartItem | StartChild;
        const parent = trace.open[`step:${step}`]?.spanId ?? trace.spanId;
        command.traceparent = formatTraceparent(trace.traceId, parent, trace.flags);
        break;
      }
      default:
        break;
    }
  }
  return spans;
}

function errorOf(entry: HistoryEntry): { code: string; message: string } | undefined {
  const error = (entry.data as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  if (!error || typeof error.code !== "string") return undefined;
  return { code: error.code, message: typeof error.message === "string" ? error.message : error.code };
}
