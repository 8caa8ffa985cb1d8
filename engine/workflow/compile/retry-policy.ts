/** Retry policies: defaults, merging the workflow's with a step's, and the delay before each retry. */
import type { StepError } from "../../errors.ts";
import type { Backoff, RetryPolicy } from "../definition.ts";
import { durationMs } from "../duration.ts";
import { seededRandom } from "../expressions.ts";

export interface ResolvedRetry {
  attempts: number;
  delayMs: number;
  backoff: Backoff;
  maxDelayMs: number | undefined;
  jitter: boolean;
  on: readonly string[] | undefined;
}

/** What a step gets with neither its own `retry` nor the workflow's: one attempt. */
const noRetry: ResolvedRetry = {
  attempts: 1,
  delayMs: 1_000,
  backoff: "exponential",
  maxDelayMs: undefined,
  jitter: false,
  on: undefined,
};

/** Defaults for the fields a written policy leaves out. */
const policyDefaults = { attempts: 3, delay: "1s", backoff: "exponential" as Backoff, jitter: false };

/** The step's policy over the workflow's, field by field; no policy at all means one attempt. */
export function resolveRetry(
  workflow: RetryPolicy | undefined,
  step: RetryPolicy | undefined,
): ResolvedRetry {
  if (!workflow && !step) return noRetry;
  const merged = { ...policyDefaults, ...workflow, ...step };
  return {
    attempts: merged.attempts,
    delayMs: durationMs(merged.delay),
    backoff: merged.backoff,
    maxDelayMs: merged.maxDelay === undefined ? undefined : durationMs(merged.maxDelay),
    jitter: merged.jitter,
    on: merged.on,
  };
}

/** Whether a failed attempt (numbered from 1) is tried again. */
export function shouldRetry(policy: ResolvedRetry, attempt: number, error: StepError): boolean {
  if (attempt >= policy.attempts || !error.retryable) return false;
  return policy.on === undefined || policy.on.includes(error.code);
}

/**
 * The delay after failed attempt `attempt` (from 1). Jitter is drawn from a generator seeded by
 * `seed` (execution, step run, attempt), so replaying the same event arms the same timer.
 */
export function retryDelayMs(policy: ResolvedRetry, attempt: number, seed: string): number {
  const base = policy.delayMs;
  let delay: number;
  switch (policy.backoff) {
    case "constant":
      delay = base;
      break;
    case "linear":
      delay = base * attempt;
      break;
    case "exponential":
      delay = base * 2 ** (attempt - 1);
      break;
    default: {
      const exhaustive: never = policy.backoff;
      throw new Error(`unknown backoff ${String(exhaustive)}`);
    }
  }
  if (policy.maxDelayMs !== undefined) delay = Math.min(delay, policy.maxDelayMs);
  if (policy.jitter) delay = Math.round(delay / 2 + (seededRandom(seed)() * delay) / 2);
  return delay;
}
