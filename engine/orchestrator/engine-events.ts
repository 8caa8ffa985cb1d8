/**
 * Events on `baton.events.p.<partition>.<execution>` as the orchestrator reads them: the machine's own events
 * (machine-types.ts) plus those only the orchestrator understands (start, timer fired, a task
 * picked up by a worker). Anything else on the subject is refused as malformed.
 */
import type { Json } from "../workflow/definition.ts";
import type { MachineEvent } from "../workflow/compile/machine-types.ts";

export interface StartEvent {
  type: "execution.start";
  workflow: string;
  revision: number;
  input: Json;
  event?: Json;
  trigger?: Json;
  parent?: { execution: string; step: string; run: number; kind: "item" | "child" };
  /** Item executions: the map step, the item and what it inherits from its parent. */
  item?: { step: string; index: number; value: Json; vars: Record<string, Json>; steps: Json };
  /** The span the execution continues under (a parent's `map` or `workflow` step), W3C format. */
  traceparent?: string;
  /** Spans that caused it (the API request, the webhook delivery), W3C `traceparent`s. */
  links?: string[];
  at: number;
}

export interface TimerFiredEvent {
  type: "timer.fired";
  timer: string;
  token: string;
  /** The machine event to apply (xstate's delayed event). */
  event: { type: string };
  at: number;
}

export interface TaskStartedEvent {
  type: "task.started";
  step: string;
  run: number;
  attempt: number;
  worker: string;
  at: number;
}

export type EngineEvent = StartEvent | TimerFiredEvent | TaskStartedEvent | MachineEvent;

const machineEventTypes = new Set([
  "task.succeeded",
  "task.failed",
  "item.done",
  "child.done",
  "signal",
  "message",
  "cancel",
]);

/** Checks the shape of an event read off NATS; returns a reason when it is not one. */
export function checkEngineEvent(
  value: unknown,
): { ok: true; event: EngineEvent } | { ok: false; reason: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { ok: false, reason: "not a JSON object" };
  const event = value as Record<string, unknown>;
  const type = event.type;
  if (typeof type !== "string") return { ok: false, reason: 'no "type"' };
  const has = (field: string, kind: string) => typeof event[field] === kind;
  const fail = (what: string) => ({ ok: false as const, reason: `${type}: ${what}` });
  switch (type) {
    case "execution.start":
      if (!has("workflow", "string") || !has("revision", "number"))
        return fail("needs workflow and revision");
      break;
    case "timer.fired":
      if (!has("timer", "string") || !has("token", "string") || typeof event.event !== "object")
        return fail("needs timer, token and event");
      break;
    case "task.started":
    case "task.succeeded":
    case "task.failed":
      if (!has("step", "string") || !has("run", "number") || !has("attempt", "number"))
        return fail("needs step, run and attempt");
      if (type === "task.failed" && (typeof event.error !== "object" || event.error === null))
        return fail("needs an error");
      break;
    case "item.done":
    case "child.done":
      if (!has("step", "string") || !has("run", "number")) return fail("needs step and run");
      break;
    case "signal":
      if (!has("name", "string")) return fail("needs a name");
      break;
    case "message":
      if (!has("subject", "string")) return fail("needs a subject");
      break;
    case "cancel":
    case "retry":
      break;
    default:
      if (!machineEventTypes.has(type)) return { ok: false, reason: `unknown event type "${type}"` };
  }
  if (typeof event.at !== "number") event.at = Date.now();
  return { ok: true, event: event as unknown as EngineEvent };
}
