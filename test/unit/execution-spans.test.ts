/** The spans the pure core plans: ids any process derives alike, starts kept in the record, ends emitted whole. */
import { wakeFor } from "../helpers/wake.ts";
import { describe, expect, it } from "vitest";
import { applyEvent, startExecution, type Applied } from "../../engine/orchestrator/apply-event.ts";
import type { EngineEvent, StartEvent } from "../../engine/orchestrator/engine-events.ts";
import type { ExecutionRecord } from "../../engine/orchestrator/execution-record.ts";
import { parseTraceparent } from "../../engine/telemetry/trace-context.ts";
import { compileWorkflow } from "../../engine/workflow/compile/compile-workflow.ts";
import { validateWorkflowText } from "../../engine/workflow/validate.ts";

const compiled = compileWorkflow(
  validateWorkflowText(`baton: v1
name: spans
steps:
  - name: one
    call: f
    retry: { attempts: 3, delay: 1s }
  - name: nap
    wait: 1h
  - name: fan
    map:
      items: [1, 2]
      steps:
        - { name: each, call: g }
`).workflows[0]!,
);

const t0 = Date.parse("2026-01-01T00:00:00Z");
const startEvent: StartEvent = { type: "execution.start", workflow: "spans", revision: 3, input: {}, at: t0 };
type Untimed = EngineEvent extends infer E ? (E extends unknown ? Omit<E, "at"> : never) : never;

let seq = 0;
function apply(applied: Applied, event: Untimed, at: number): Applied {
  const next = applyEvent(compiled, applied.record, { at, ...event }, `e${++seq}`);
  if (!next) throw new Error(`${event.type} not applied`);
  return next;
}
/** A record as another process reads it back from the KV store. */
const reloaded = (applied: Applied): Applied => ({
  ...applied,
  record: JSON.parse(JSON.stringify(applied.record)) as ExecutionRecord,
});
const traceparentOf = (applied: Applied, type: string) =>
  applied.commands.find((command) => command.type === type)?.traceparent;
/** The `timer.fired` of the execution's wake-up that fires the timer armed for `event`. */
function firing(applied: Applied, eventType: RegExp): Untimed {
  const timer = Object.values(applied.record.deferred ?? {}).find((candidate) =>
    eventType.test(candidate.event.type),
  )!;
  const { at: _due, ...event } = wakeFor(applied.record, new RegExp(`^${escape(timer.timer)}$`));
  return event;
}
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe("execution spans", () => {
  it("plans nothing for an execution started without tracing", () => {
    const applied = startExecution(compiled, "x0", startEvent);
    expect(applied.record.trace).toBeUndefined();
    expect(applied.spans).toEqual([]);
    expect(applied.commands.every((command) => command.traceparent === undefined)).toBe(true);
    const next = apply(
      applied,
      { type: "task.succeeded", step: "one", run: 1, attempt: 1, output: 1 },
      t0 + 5,
    );
    expect(next.spans).toEqual([]);
  });

  it("emits the root at the start and hands the task its attempt's span as traceparent", () => {
    const applied = startExecution(
      compiled,
      "x1",
      { ...startEvent, links: ["00-" + "a".repeat(32) + "-" + "b".repeat(16) + "-01", "junk"] },
      { traced: true },
    );
    const trace = applied.record.trace!;
    expect(applied.spans.map((span) => span.name)).toEqual(["workflow spans"]);
    const [root] = applied.spans;
    expect(root).toMatchObject({ traceId: trace.traceId, spanId: trace.spanId, start: t0 });
    expect(root!.parentSpanId).toBeUndefined();
    expect(root!.links).toEqual(["00-" + "a".repeat(32) + "-" + "b".repeat(16) + "-01"]);
    expect(root!.attributes).toMatchObject({
      "baton.workflow": "spans",
      "baton.revision": 3,
      "baton.execution": "x1",
    });
    const task = parseTraceparent(traceparentOf(applied, "dispatchTask"))!;
    expect(task.traceId).toBe(trace.traceId);
    expect(trace.open["attempt:one:1:1"]?.spanId).toBe(task.spanId);
    expect(trace.open["attempt:one:1:1"]?.parentSpanId).toBe(trace.open["step:one"]?.spanId);
    // The same start applied again (a lost compare-and-set, another replica) names everything alike.
    const again = startExecution(compiled, "x1", startEvent, { traced: true });
    expect(traceparentOf(again, "dispatchTask")).toBe(traceparentOf(applied, "dispatchTask"));
    expect(again.record.trace!.open).toEqual(trace.open);
    // Another execution gets a trace of its own.
    expect(startExecution(compiled, "x2", startEvent, { traced: true }).record.trace!.traceId).not.toBe(
      trace.traceId,
    );
  });

  it("ends attempts and steps with their real times, across a reload of the record", () => {
    const started = reloaded(startExecution(compiled, "x3", startEvent, { traced: true }));
    const stepId = started.record.trace!.open["step:one"]!.spanId;
    const failed = reloaded(
      apply(
        started,
        {
          type: "task.failed",
          step: "one",
          run: 1,
          attempt: 1,
          error: { code: "Boom", message: "no", retryable: true },
        },
        t0 + 40,
      ),
    );
    expect(failed.spans).toHaveLength(1);
    expect(failed.spans[0]).toMatchObject({
      name: "attempt f",
      parentSpanId: stepId,
      start: t0,
      end: t0 + 40,
      error: { code: "Boom", message: "no" },
    });
    expect(failed.spans[0]!.attributes).toMatchObject({
      "baton.attempt": 1,
      "baton.outcome": "failed",
      "baton.error.code": "Boom",
    });
    const retried = reloaded(apply(failed, firing(failed, /retry/i), t0 + 1_040));
    const second = parseTraceparent(traceparentOf(retried, "dispatchTask"))!;
    expect(second.spanId).not.toBe(failed.spans[0]!.spanId);
    expect(retried.record.trace!.open["attempt:one:1:2"]).toMatchObject({
      start: t0 + 1_040,
      parentSpanId: stepId,
    });
    const done = apply(
      retried,
      { type: "task.succeeded", step: "one", run: 1, attempt: 2, output: 1, worker: "w" },
      t0 + 1_100,
    );
    expect(done.spans.map((span) => [span.name, span.spanId, span.start, span.end])).toEqual([
      ["attempt f", second.spanId, t0 + 1_040, t0 + 1_100],
      ["step one", stepId, t0, t0 + 1_100],
    ]);
    expect(done.spans[0]!.attributes["baton.worker"]).toBe("w");
    // The wait that follows is open in the record only: nothing is emitted until it ends.
    expect(done.record.trace!.open["step:nap"]).toMatchObject({ start: t0 + 1_100 });
    expect(Object.keys(done.record.trace!.open)).toEqual(["step:nap"]);
  });

  it("starts map items under the map step, in the same trace", () => {
    let applied = startExecution(compiled, "x4", startEvent, { traced: true });
    applied = apply(applied, { type: "task.succeeded", step: "one", run: 1, attempt: 1, output: 1 }, t0 + 10);
    const napDone = apply(applied, firing(applied, /nap|after|wait/i), t0 + 3_600_010);
    expect(napDone.spans.map((span) => span.name)).toEqual(["step nap"]);
    expect(napDone.spans[0]).toMatchObject({ start: t0 + 10, end: t0 + 3_600_010 });
    const fan = napDone.record.trace!.open["step:fan"]!;
    const items = napDone.commands.filter((command) => command.type === "startItem");
    expect(items).toHaveLength(2);
    for (const item of items)
      expect(parseTraceparent(item.traceparent)).toMatchObject({
        traceId: napDone.record.trace!.traceId,
        spanId: fan.spanId,
      });
    // An item execution continues its parent's trace under that span.
    const item = startExecution(
      compiled,
      "x4.fan.1.0",
      {
        ...startEvent,
        parent: { execution: "x4", step: "fan", run: 3, kind: "item" },
        item: { step: "fan", index: 0, value: 1, vars: {}, steps: {} },
        traceparent: items[0]!.traceparent!,
      },
      { traced: true },
    );
    expect(item.spans[0]).toMatchObject({
      name: "workflow spans item 0",
      traceId: napDone.record.trace!.traceId,
      parentSpanId: fan.spanId,
    });
  });

  it("closes what is still open when the execution ends, and marks the end", () => {
    const started = startExecution(compiled, "x5", startEvent, { traced: true });
    const cancelled = apply(started, { type: "cancel", reason: "stop" }, t0 + 50);
    const names = cancelled.spans.map((span) => span.name);
    expect(names).toEqual(expect.arrayContaining(["attempt f", "step one", "end cancelled"]));
    const attempt = cancelled.spans.find((span) => span.name === "attempt f")!;
    expect(attempt.error?.code).toBe("Abandoned");
    expect(cancelled.spans.find((span) => span.name === "end cancelled")!.parentSpanId).toBe(
      started.record.trace!.spanId,
    );
    expect(cancelled.record.trace!.open).toEqual({});
  });
  it("ends a timed-out attempt when the engine stops waiting for it, not at the next dispatch", () => {
    const timed = compileWorkflow(
      validateWorkflowText(`baton: v1
name: timed
steps:
  - name: slow
    call: f
    timeout: 5s
    retry: { attempts: 2, delay: 1m }
`).workflows[0]!,
    );
    const started = startExecution(timed, "x6", { ...startEvent, workflow: "timed" }, { traced: true });
    const fired = applyEvent(timed, started.record, wakeFor(started.record, /attempt-timeout/), "timeout")!;
    expect(fired.commands.map((command) => command.type)).toContain("cancelTask");
    const attempt = fired.spans.find((span) => span.name === "attempt f");
    expect(attempt).toMatchObject({ start: t0, end: t0 + 5_000, error: { code: "Cancelled" } });
    expect(Object.keys(fired.record.trace!.open)).toEqual(["step:slow"]);
  });
});
