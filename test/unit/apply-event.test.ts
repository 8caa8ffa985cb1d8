/** The orchestrator's pure core: records, events and the commands and history they produce. */
import { describe, expect, it } from "vitest";
import { applyEvent, startExecution, type Applied } from "../../engine/orchestrator/apply-event.ts";
import type { EngineEvent } from "../../engine/orchestrator/engine-events.ts";
import { compileWorkflow } from "../../engine/workflow/compile/compile-workflow.ts";
import { validateWorkflowText } from "../../engine/workflow/validate.ts";
import { inboxLimit } from "../../engine/orchestrator/execution-record.ts";
import { wakeFor } from "../helpers/wake.ts";

const compiled = compileWorkflow(
  validateWorkflowText(`baton: v1
name: three
steps:
  - { name: one, call: f }
  - { name: two, call: f, effect: true }
  - { name: nap, wait: 1m }
`).workflows[0]!,
);

const at = Date.parse("2026-01-01T00:00:00Z");
/** An event without its time (each member of the union on its own). */
type Untimed = EngineEvent extends infer E ? (E extends unknown ? Omit<E, "at"> : never) : never;
let seq = 0;
function apply(applied: Applied, event: Untimed): Applied {
  const next = applyEvent(compiled, applied.record, { at, ...event }, `event-${++seq}`);
  if (!next) throw new Error(`event ${event.type} was not applied`);
  return next;
}
const commandsOf = (applied: Applied) => applied.commands.map((command) => command.type);
const start = () =>
  startExecution(compiled, "x1", {
    type: "execution.start",
    workflow: "three",
    revision: 1,
    input: { n: 1 },
    at,
  });

describe("applyEvent", () => {
  it("dispatches the first task, arms its timeout, and records the start", () => {
    const applied = start();
    expect(applied.record.status).toBe("running");
    expect(commandsOf(applied)).toContain("dispatchTask");
    // One wake-up message for both timers, due when the first of them is.
    expect(commandsOf(applied).filter((type) => type === "armTimer")).toHaveLength(1);
    // Two timers: the execution's deadline and the attempt's.
    expect(applied.history.map((entry) => entry.type)).toEqual([
      "ExecutionStarted",
      "TimerArmed",
      "StepScheduled",
      "TimerArmed",
    ]);
    expect(applied.record.outbox).toEqual(applied.commands);
  });

  it("hands effect steps an idempotency key and tells the ledger of their outcome", () => {
    const first = apply(start(), { type: "task.succeeded", step: "one", run: 1, attempt: 1, output: 2 });
    const dispatch = first.commands.find((command) => command.type === "dispatchTask")!.params as Record<
      string,
      unknown
    >;
    expect(dispatch).toMatchObject({ step: "two", effect: true, idempotencyKey: "x1/two/2" });
    const second = apply(first, {
      type: "task.succeeded",
      step: "two",
      run: 2,
      attempt: 1,
      output: 3,
      worker: "w1",
    });
    expect(second.commands[0]).toEqual({
      type: "recordEffect",
      params: {
        idempotencyKey: "x1/two/2",
        step: "two",
        attempt: 1,
        worker: "w1",
        outcome: "succeeded",
        output: 3,
      },
    });
    expect(second.record.status).toBe("waiting");
  });

  it("does not apply an event twice", () => {
    const started = start();
    const event = { type: "task.succeeded", step: "one", run: 1, attempt: 1, output: 2, at } as EngineEvent;
    const once = applyEvent(compiled, started.record, event, "same")!;
    expect(applyEvent(compiled, once.record, event, "same")).toBeUndefined();
  });

  it("fires a timer only while it is current", () => {
    const started = start();
    const timeout = wakeFor(started.record, /attempt-timeout/);
    const done = applyEvent(
      compiled,
      started.record,
      { type: "task.succeeded", step: "one", run: 1, attempt: 1, output: 2, at: at + 10 },
      "done",
    )!;
    // The attempt's timeout was cancelled when the answer came; the next step's comes later.
    const woken = applyEvent(compiled, done.record, timeout, "wake-1")!;
    expect(woken.commands.map((command) => command.type)).toEqual(["armTimer"]);
    // Recognised as cancelled, not merely ignored by the machine: nothing is recorded.
    expect(woken.history).toEqual([]);
    expect(woken.record.snapshot).toEqual(done.record.snapshot);
    // A wake-up the record does not know, with nothing due, is not even a write.
    expect(applyEvent(compiled, woken.record, { ...timeout, token: "x1.w999" }, "wake-2")).toBeUndefined();
  });

  it("costs no timer message for a step whose timeout an armed wake-up already covers", () => {
    const started = start();
    const next = applyEvent(
      compiled,
      started.record,
      { type: "task.succeeded", step: "one", run: 1, attempt: 1, output: 2, at: at + 10 },
      "later",
    )!;
    expect(commandsOf(next)).toContain("dispatchTask");
    expect(commandsOf(next)).not.toContain("armTimer");
    // The first wake-up comes while the second step still runs: it fires nothing and arms the next.
    const wake = wakeFor(started.record, /attempt-timeout/);
    const woken = applyEvent(compiled, next.record, wake, "wake")!;
    expect(woken.history).toEqual([]);
    expect(woken.commands.map((command) => [command.type, (command.params as { due: number }).due])).toEqual([
      ["armTimer", at + 10 + 5 * 60_000],
    ]);
    // And when that one comes, the second step's attempt times out.
    const timedOut = applyEvent(compiled, woken.record, wakeFor(woken.record, /attempt-timeout/), "wake-2")!;
    expect(timedOut.history.map((entry) => entry.type)).toContain("TimerFired");
    expect(commandsOf(timedOut)).toContain("cancelTask");
  });

  it("retries a failed execution from the failed step, and nothing else", () => {
    const failed = apply(start(), {
      type: "task.failed",
      step: "one",
      run: 1,
      attempt: 1,
      error: { code: "Broken", message: "no", retryable: false },
    });
    expect(failed.record.status).toBe("failed");
    expect(commandsOf(failed)).toContain("finish");
    const retried = apply(failed, { type: "retry" });
    expect(retried.record.status).toBe("running");
    expect(retried.history.map((entry) => entry.type)).toContain("ExecutionRetried");
    const dispatch = retried.commands.find((command) => command.type === "dispatchTask")!.params as Record<
      string,
      unknown
    >;
    expect(dispatch).toMatchObject({ step: "one", attempt: 1 });

    // Run the same execution to its end: the nap's timer fires with the token it was armed with.
    const napping = apply(apply(start(), ok("one", 1)), ok("two", 2));
    const succeeded = applyEvent(compiled, napping.record, wakeFor(napping.record, /wait:nap/), "nap")!;
    expect(succeeded.record.status).toBe("succeeded");
    expect(applyEvent(compiled, succeeded.record, { type: "retry", at }, "retry-1")).toBeUndefined();
  });
});

function ok(step: string, run: number): Untimed {
  return { type: "task.succeeded", step, run, attempt: 1, output: null };
}

describe("signals", () => {
  const waiting = compileWorkflow(
    validateWorkflowText(`baton: v1
name: waits
steps:
  - { name: approval, receive: { signal: approve } }
`).workflows[0]!,
  );
  const begin = () =>
    startExecution(waiting, "x9", { type: "execution.start", workflow: "waits", revision: 1, input: {}, at });
  const signal = (record: Applied["record"], name: string, id: string, key?: string) =>
    applyEvent(waiting, record, { type: "signal", name, payload: id, at, ...(key ? { key } : {}) }, id);
  const inboxOf = (applied: Applied) =>
    (applied.record.snapshot.context as unknown as { inbox: unknown[] }).inbox;

  it("applies a signal with an idempotency key once, whatever its event id", () => {
    const once = signal(begin().record, "later", "e1", "k1")!;
    expect(inboxOf(once)).toHaveLength(1);
    // Sent again (a client's retry, past JetStream's duplicate window): a new event id, the same key.
    expect(signal(once.record, "later", "e2", "k1")).toBeUndefined();
    expect(inboxOf(signal(once.record, "later", "e3", "k2")!)).toHaveLength(2);
  });

  it("keeps at most inboxLimit unclaimed signals, dropping the oldest with a history record", () => {
    let applied = begin();
    const overflow: string[] = [];
    for (let n = 0; n < inboxLimit + 3; n++) {
      applied = signal(applied.record, "unclaimed", `s${n}`)!;
      overflow.push(...applied.history.filter((e) => e.type === "InboxOverflow").map((e) => e.type));
    }
    expect(inboxOf(applied)).toHaveLength(inboxLimit);
    expect(overflow).toHaveLength(3);
    expect(inboxOf(applied)[0]).toMatchObject({ payload: "s3" });
    // The step still takes its own signal when it comes.
    expect(signal(applied.record, "approve", "go")!.record.status).toBe("succeeded");
  });
});
