/**
 * The events that commands and timers turn into, as pure functions: which execution each goes
 * to, what it says and the id it is deduplicated by. dispatch-commands.ts and the orchestrator
 * publish them; the conformance suite's simulator delivers them on its simulated clock, so both
 * run the same logic.
 */
import type { Json } from "../workflow/definition.ts";
import type {
  CancelChild,
  CancelItems,
  Finish,
  MachineContext,
  StartChild,
  StartItem,
} from "../workflow/compile/machine-types.ts";
import type { InputCheck } from "../workflow/input-schema.ts";
import type { ArmTimer } from "./apply-event.ts";
import type { StartEvent, TimerFiredEvent } from "./engine-events.ts";
import type { ExecutionRecord } from "./execution-record.ts";
import { childExecutionId, itemExecutionId } from "./ids.ts";

/** An event on its way to an execution; `at` is added when it is published. */
export interface OutgoingEvent {
  execution: string;
  event: { type: string } & Record<string, unknown>;
  /** Deduplication id (the JetStream message id): replaying the command sends the same event. */
  id: string;
}

/** A timer as BATON_TIMERS holds it: an armed timer and the execution it belongs to. */
export interface TimerMessage extends ArmTimer {
  execution: string;
}

/** The start of a `map` item: an execution of the map's body that inherits the parent's context. */
export function itemStart(record: ExecutionRecord, item: StartItem, traceparent?: string): OutgoingEvent {
  const context = record.snapshot.context as unknown as MachineContext;
  const id = itemExecutionId(record.id, item.step, item.run, item.index);
  const start: Omit<StartEvent, "at"> = {
    type: "execution.start",
    workflow: record.workflow,
    revision: record.revision,
    input: context.input,
    event: context.event,
    trigger: context.trigger,
    parent: { execution: record.id, step: item.step, run: item.run, kind: "item" },
    item: {
      step: item.step,
      index: item.index,
      value: item.item,
      vars: item.vars,
      steps: context.steps as unknown as Json,
    },
    ...(traceparent ? { traceparent } : {}),
  };
  return { execution: id, event: start, id: `start:${id}` };
}

/** The cancels of the items a map no longer needs. */
export function itemCancels(record: ExecutionRecord, cancel: CancelItems): OutgoingEvent[] {
  const { step, run, indices } = cancel;
  return indices.map((index) => ({
    execution: itemExecutionId(record.id, step, run, index),
    event: { type: "cancel", reason: "the map no longer needs this item" },
    id: `cancel:${record.id}:${step}:${run}:${index}`,
  }));
}

/** The workflow a `workflow` step names, as the engine found it (`undefined`: never submitted). */
export interface ChildWorkflow {
  name: string;
  revision: number;
  checkInput: (input: Json) => InputCheck;
}

/**
 * The start of a child execution, or, when it cannot start (its workflow was never submitted,
 * or the input fails the child's `input` schema), the parent's `child.done` with the error. The
 * input is checked and its defaults applied as for any execution's start.
 */
export function childStart(
  record: ExecutionRecord,
  child: StartChild,
  workflow: ChildWorkflow | undefined,
  traceparent?: string,
): OutgoingEvent {
  const refused = (code: string, message: string): OutgoingEvent => ({
    execution: record.id,
    event: {
      type: "child.done",
      step: child.step,
      run: child.run,
      error: { code, message, retryable: false },
    },
    id: `child-${code === "WorkflowNotFound" ? "missing" : "invalid"}:${record.id}:${child.step}:${child.run}`,
  });
  if (!workflow)
    return refused("WorkflowNotFound", `no workflow named "${child.workflow}" has been submitted`);
  const checked = workflow.checkInput(child.input);
  if (!checked.ok) {
    const problems = checked.problems.map((problem) => problem.message).join("; ");
    return refused("InputInvalid", `the input of child workflow "${workflow.name}" is invalid: ${problems}`);
  }
  const id = childExecutionId(record.id, child.step, child.run);
  const start: Omit<StartEvent, "at"> = {
    type: "execution.start",
    workflow: workflow.name,
    revision: workflow.revision,
    input: checked.value,
    parent: { execution: record.id, step: child.step, run: child.run, kind: "child" },
    ...(traceparent ? { traceparent } : {}),
  };
  return { execution: id, event: start, id: `start:${id}` };
}

/** The cancel of a child its parent no longer needs. */
export function childCancel(record: ExecutionRecord, cancel: CancelChild): OutgoingEvent {
  const { step, run } = cancel;
  return {
    execution: childExecutionId(record.id, step, run),
    event: { type: "cancel", reason: "the parent no longer needs this child" },
    id: `cancel:${record.id}:${step}:${run}`,
  };
}

/** How an item or child execution's end reaches its parent (`undefined` for a top-level one). */
export function parentAnswer(record: ExecutionRecord, end: Finish): OutgoingEvent | undefined {
  const parent = record.parent;
  if (!parent) return undefined;
  const failure =
    end.status === "succeeded"
      ? undefined
      : (end.error ?? { code: "Cancelled", message: end.status, retryable: false });
  const outcome = failure ? { error: failure } : { output: end.output };
  const event =
    parent.kind === "item"
      ? { type: "item.done", step: parent.step, run: parent.run, index: record.item!.index, ...outcome }
      : { type: "child.done", step: parent.step, run: parent.run, ...outcome };
  return { execution: parent.execution, event, id: `done:${record.id}` };
}

/** A due timer, as the event its execution applies: it fires at its due time, whenever it is read. */
export function timerFired(timer: TimerMessage): OutgoingEvent {
  const { execution, token, due } = timer;
  return {
    execution,
    event: {
      type: "timer.fired",
      timer: timer.timer,
      token,
      event: timer.event,
      at: due,
    } satisfies TimerFiredEvent,
    id: `fired:${token}`,
  };
}
