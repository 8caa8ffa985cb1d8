// An execution's timeline, read off its history: one row per step (in the order steps were first
// scheduled), each with the step's span, its attempts (with their outcome), the waits between
// attempts (retry back-off) and its timers. Times are milliseconds from the execution's start.
// No import from the DOM side: the unit tests load this module in Node.

/** A history event, as much of it as the timeline reads. */
export interface TimelineEvent {
  at: string;
  type: string;
  step?: string;
  attempt?: number;
  worker?: string;
  data?: unknown;
}

export type SegmentKind = "step" | "attempt" | "retry-wait" | "timer";

export interface Segment {
  kind: SegmentKind;
  from: number;
  to: number;
  /** Still open: its end is "now". */
  open: boolean;
  attempt?: number;
  worker?: string;
  /** Attempts and steps: how they ended. */
  outcome?: "succeeded" | "failed" | "skipped" | "running";
  label: string;
}

export interface TimelineRow {
  step: string;
  segments: Segment[];
}

export function buildTimeline(
  history: readonly TimelineEvent[],
  now: number,
): { start: number; rows: TimelineRow[] } {
  const start = history.length > 0 ? Date.parse(history[0]!.at) : now;
  const rows = new Map<string, TimelineRow>();
  const rowOf = (step: string): TimelineRow => {
    let row = rows.get(step);
    if (!row) {
      row = { step, segments: [] };
      rows.set(step, row);
    }
    return row;
  };
  const openOf = (row: TimelineRow, kind: SegmentKind) =>
    [...row.segments].reverse().find((segment) => segment.kind === kind && segment.open);
  const close = (segment: Segment | undefined, at: number, outcome?: Segment["outcome"]) => {
    if (!segment) return;
    segment.to = at;
    segment.open = false;
    if (outcome) segment.outcome = outcome;
  };
  const timers = new Map<string, Segment>();
  let ended: number | undefined;

  for (const event of history) {
    const at = Date.parse(event.at) - start;
    const data = (event.data ?? {}) as { timer?: string; due?: string };
    if (
      event.type.startsWith("Execution") &&
      event.type !== "ExecutionStarted" &&
      event.type !== "ExecutionRetried"
    )
      ended = at;
    if (event.type === "ExecutionRetried") ended = undefined;
    if (event.type === "TimerFired" && data.timer) {
      close(timers.get(data.timer), at);
      timers.delete(data.timer);
    }
    if (!event.step) continue;
    const row = rowOf(event.step);
    switch (event.type) {
      case "StepScheduled":
        close(openOf(row, "step"), at);
        row.segments.push({ kind: "step", from: at, to: at, open: true, outcome: "running", label: "step" });
        break;
      case "AttemptStarted":
        close(openOf(row, "retry-wait"), at);
        row.segments.push({
          kind: "attempt",
          from: at,
          to: at,
          open: true,
          outcome: "running",
          label: `attempt ${event.attempt ?? "?"}`,
          ...(event.attempt === undefined ? {} : { attempt: event.attempt }),
          ...(event.worker === undefined ? {} : { worker: event.worker }),
        });
        break;
      case "AttemptSucceeded":
        close(openOf(row, "attempt"), at, "succeeded");
        break;
      case "AttemptFailed":
        close(openOf(row, "attempt"), at, "failed");
        break;
      case "RetryScheduled":
        row.segments.push({ kind: "retry-wait", from: at, to: at, open: true, label: "retry back-off" });
        break;
      case "TimerArmed":
        if (data.timer) {
          const segment: Segment = {
            kind: "timer",
            from: at,
            to: at,
            open: true,
            label: `timer ${data.timer}`,
          };
          row.segments.push(segment);
          timers.set(data.timer, segment);
        }
        break;
      case "StepSucceeded":
        close(openOf(row, "step"), at, "succeeded");
        close(openOf(row, "retry-wait"), at);
        break;
      case "StepFailed":
        close(openOf(row, "step"), at, "failed");
        close(openOf(row, "retry-wait"), at);
        break;
      case "StepSkipped":
        close(openOf(row, "step"), at, "skipped");
        break;
      default:
        break;
    }
  }
  // What is still open runs until now, or until the execution ended (cancelled, timed out).
  const end = ended ?? now - start;
  for (const row of rows.values())
    for (const segment of row.segments) if (segment.open) segment.to = Math.max(segment.from, end);
  return { start, rows: [...rows.values()] };
}
