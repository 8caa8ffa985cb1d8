/** History records: what happened to an execution, in order, as `GET /v1/executions/{id}/history` shows it. */
import type { Json } from "../workflow/definition.ts";

export const engineHistoryTypes = [
  "AttemptStarted",
  "AttemptSucceeded",
  "AttemptFailed",
  "TimerArmed",
  "TimerFired",
  "InboxOverflow",
] as const;

export interface HistoryEntry {
  seq: number;
  /** ISO 8601. */
  at: string;
  type: string;
  step?: string;
  attempt?: number;
  worker?: string;
  idempotencyKey?: string;
  data?: Json;
}
