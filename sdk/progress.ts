// Progress reports (docs/protocol.md#progress): how far an attempt has got, sent by the worker on
// core NATS, never stored. The API relays them to the execution's event websocket
// (`AttemptProgress`) and keeps the last one per execution for its view. A report lost on the way
// is simply superseded by the next one; a worker sends at most `maxProgressPerSecond` per attempt.

// Subjects: `subjects.progress(execution)` and `subjects.allProgress` in protocol.ts.

/** A worker sends at most this many reports per second per attempt; extra ones are coalesced. */
export const maxProgressPerSecond = 4;
/** Longest `message` of a report; longer ones are cut. */
export const maxProgressMessageLength = 200;

/** The wire form of one progress report (JSON). */
export interface ProgressReport {
  v: 1;
  execution: string;
  step: string;
  run: number;
  attempt: number;
  worker: string;
  /** From 0 to 1. */
  fraction: number;
  message?: string;
  /** ISO 8601, when the function reported it. */
  at: string;
}

/** Whether a value is a report of this form (what the API relays and keeps). */
export function isProgressReport(value: unknown): value is ProgressReport {
  const report = value as Partial<ProgressReport> | null;
  return (
    typeof report === "object" &&
    report !== null &&
    report.v === 1 &&
    typeof report.execution === "string" &&
    typeof report.step === "string" &&
    Number.isInteger(report.run) &&
    Number.isInteger(report.attempt) &&
    typeof report.worker === "string" &&
    typeof report.fraction === "number" &&
    report.fraction >= 0 &&
    report.fraction <= 1 &&
    (report.message === undefined || typeof report.message === "string") &&
    typeof report.at === "string"
  );
}
