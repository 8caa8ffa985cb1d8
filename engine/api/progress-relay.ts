/**
 * Progress reports (sdk/progress.ts) as the API sees them: one core NATS subscription on
 * `baton.progress.>` per API process, the last report of every execution kept in memory (for the
 * execution's view), and listeners for the event websockets. Nothing is stored anywhere: an API
 * process started after a report has no last value until the next one.
 */
import type { NatsConnection, Subscription } from "nats";
import { isProgressReport, type ProgressReport } from "../../sdk/progress.ts";
import { subjects } from "../../sdk/protocol.ts";

/** Executions whose last report is kept; the oldest are forgotten first. */
const maxRemembered = 10_000;

/** How the websocket and the view show a report: an event that is not part of the history (no `seq`). */
export interface AttemptProgressEvent {
  type: "AttemptProgress";
  at: string;
  step: string;
  run: number;
  attempt: number;
  fraction: number;
  message?: string;
}

export const toProgressEvent = (report: ProgressReport): AttemptProgressEvent => ({
  type: "AttemptProgress",
  at: report.at,
  step: report.step,
  run: report.run,
  attempt: report.attempt,
  fraction: report.fraction,
  ...(report.message === undefined ? {} : { message: report.message }),
});

export class ProgressRelay {
  private readonly last = new Map<string, AttemptProgressEvent>();
  private readonly listeners = new Map<string, Set<(event: AttemptProgressEvent) => void>>();
  private readonly subscription: Subscription;

  constructor(nc: NatsConnection) {
    this.subscription = nc.subscribe(subjects.allProgress, {
      callback: (error, message) => {
        if (error) return;
        let report: unknown;
        try {
          report = message.json();
        } catch {
          return;
        }
        if (isProgressReport(report)) this.receive(report);
      },
    });
  }

  private receive(report: ProgressReport): void {
    const event = toProgressEvent(report);
    this.last.delete(report.execution);
    this.last.set(report.execution, event);
    if (this.last.size > maxRemembered) this.last.delete(this.last.keys().next().value!);
    for (const listener of this.listeners.get(report.execution) ?? []) listener(event);
  }

  /** The last report of an execution this process has seen. */
  lastOf(execution: string): AttemptProgressEvent | undefined {
    return this.last.get(execution);
  }

  /** Calls `listener` with every report of the execution from now on; returns the way to stop. */
  follow(execution: string, listener: (event: AttemptProgressEvent) => void): () => void {
    let set = this.listeners.get(execution);
    if (!set) {
      set = new Set();
      this.listeners.set(execution, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(execution);
    };
  }

  close(): void {
    this.subscription.unsubscribe();
    this.listeners.clear();
  }
}

/** The schema of `progress` in the execution's view. */
export const progressSchema = {
  type: "object",
  description:
    "The last progress the running attempt reported (`ctx.progress`), as this API process last saw it; absent once the execution has ended.",
  required: ["at", "step", "run", "attempt", "fraction"],
  properties: {
    at: { type: "string" },
    step: { type: "string" },
    run: { type: "integer" },
    attempt: { type: "integer" },
    fraction: { type: "number", minimum: 0, maximum: 1 },
    message: { type: "string" },
  },
} as const;
