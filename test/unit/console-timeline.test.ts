/** The console's timeline (engine/api/ui/app/timeline.ts): rows and segments read off a history. */
import { describe, expect, it } from "vitest";
import { buildTimeline, type TimelineEvent } from "../../engine/api/ui/app/timeline.ts";

const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString();
const event = (ms: number, type: string, extra: Partial<TimelineEvent> = {}): TimelineEvent => ({
  at: at(ms),
  type,
  ...extra,
});

describe("buildTimeline", () => {
  it("gives each step a row with its attempts, outcomes and retry back-offs", () => {
    const history = [
      event(0, "ExecutionStarted"),
      event(10, "StepScheduled", { step: "fetch" }),
      event(20, "AttemptStarted", { step: "fetch", attempt: 1, worker: "w1" }),
      event(120, "AttemptFailed", { step: "fetch", attempt: 1 }),
      event(120, "RetryScheduled", { step: "fetch", attempt: 1 }),
      event(400, "AttemptStarted", { step: "fetch", attempt: 2, worker: "w2" }),
      event(500, "AttemptSucceeded", { step: "fetch", attempt: 2 }),
      event(500, "StepSucceeded", { step: "fetch" }),
      event(510, "StepScheduled", { step: "save" }),
      event(520, "AttemptStarted", { step: "save", attempt: 1 }),
    ];
    const { rows } = buildTimeline(history, Date.UTC(2026, 0, 1) + 900);
    expect(rows.map((row) => row.step)).toEqual(["fetch", "save"]);
    const fetch = rows[0]!.segments;
    expect(fetch.map(({ kind, from, to, outcome }) => ({ kind, from, to, outcome }))).toEqual([
      { kind: "step", from: 10, to: 500, outcome: "succeeded" },
      { kind: "attempt", from: 20, to: 120, outcome: "failed" },
      { kind: "retry-wait", from: 120, to: 400, outcome: undefined },
      { kind: "attempt", from: 400, to: 500, outcome: "succeeded" },
    ]);
    expect(fetch[3]!.worker).toBe("w2");
    // Still running: open until now.
    const save = rows[1]!.segments;
    expect(save.map(({ kind, to, open, outcome }) => ({ kind, to, open, outcome }))).toEqual([
      { kind: "step", to: 900, open: true, outcome: "running" },
      { kind: "attempt", to: 900, open: true, outcome: "running" },
    ]);
  });

  it("ends what is open when the execution ended (cancelled), not at now", () => {
    const history = [
      event(0, "ExecutionStarted"),
      event(5, "StepScheduled", { step: "pause" }),
      event(50, "TimerArmed", { step: "pause", data: { timer: "t1", due: at(3_600_000) } }),
      event(300, "ExecutionCancelled"),
    ];
    const { rows } = buildTimeline(history, Date.UTC(2026, 0, 1) + 10_000);
    expect(rows[0]!.segments.map(({ kind, from, to }) => ({ kind, from, to }))).toEqual([
      { kind: "step", from: 5, to: 300 },
      { kind: "timer", from: 50, to: 300 },
    ]);
  });
});
