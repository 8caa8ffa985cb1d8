/** `?wait=30s`: how long a request may hold on for an execution's end, cut to the server's maximum. */
import { parseDuration } from "../workflow/duration.ts";

/** Milliseconds to wait; 0 without `wait`. The route's schema has checked the form already. */
export function waitMsOf(wait: string | undefined, maxWaitMs: number): number {
  if (wait === undefined) return 0;
  return Math.min(parseDuration(wait) ?? 0, maxWaitMs);
}
