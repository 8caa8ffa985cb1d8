/**
 * Leader elections and a node going away are ordinary weather on a NATS cluster: while a stream
 * elects a new leader (a few seconds after its leader dies), a JetStream request gets "no
 * responders" (503), a 503 API error ("JetStream system temporarily unavailable"), or no answer
 * at all (a timeout). {@link retryNats} tries such a request again, with exponential backoff and
 * full jitter, until it succeeds or `patienceMs` has passed; then the last error goes to the
 * caller, whose own recovery (a redelivery, a retry of the batch) takes over. It logs nothing:
 * this is not something a person needs to look at.
 *
 * Only requests that are safe to repeat belong here: reads, publishes with a message id (JetStream
 * drops a second copy within the duplicate window), and compare-and-set writes (a repeat of one
 * that did land fails the compare, which the callers already handle as a race). A publish
 * without a message id may be repeated only on "no responders", which means nothing was stored:
 * pass `{ idempotent: false }`.
 */
import { ErrorCode, NatsError } from "nats";

export interface RetryNatsOptions {
  /** Give up (throw the last error) once this long has passed. Default 15 s: longer than an election. */
  readonly patienceMs?: number;
  /** The first delay; each one after is up to twice as long. Default 50 ms. */
  readonly baseDelayMs?: number;
  /** The longest delay between two tries. Default 2 s. */
  readonly maxDelayMs?: number;
  /**
   * Whether the request may be repeated after a timeout, when it may have been carried out.
   * Default true; false retries "no responders" only.
   */
  readonly idempotent?: boolean;
  /** Stops retrying (the last error is thrown) once aborted. */
  readonly signal?: AbortSignal;
}

/**
 * How long a client's read (an execution record, a workflow) waits out an election before it
 * fails: longer than the 15 s default, whose failures JetStream redelivers, as a client's failed
 * read is an error in front of a person.
 */
export const readPatienceMs = 30_000;

/**
 * How long a pull request waits on the server before the client renews it; every pull of Baton's
 * (workers' fetches, the engine's and triggers' `consume`) sets it. A pull is lost when its
 * consumer's leader changes on a cluster; nats.js notices from two missed idle heartbeats (each
 * half of this), so what was pulled from the old leader is pulled again within about this long.
 * With nats.js's default of 30 s an execution stalled about 40 s after a leader stepdown.
 */
export const pullExpiresMs = 5_000;

/** Whether `error` is NATS having no leader to answer for now (or being away a moment), not a refusal. */
export function isElectionWeather(error: unknown, { idempotent = true } = {}): boolean {
  if (isNoResponders(error)) return true;
  if (!(error instanceof NatsError)) return false;
  const code: string = error.code;
  if (code === (ErrorCode.Timeout as string) || code === (ErrorCode.JetStream408RequestTimeout as string))
    return idempotent;
  // JetStream API errors carry the HTTP-like code: 503 is "temporarily unavailable" (no leader yet).
  const apiError = (error as NatsError & { api_error?: { code?: number; err_code?: number } }).api_error;
  if (apiError?.code === 503) return idempotent || apiError.err_code === 10008;
  return false;
}

/** Whether `error` is "no responders": nobody subscribed to the subject got the request. */
export function isNoResponders(error: unknown): boolean {
  return error instanceof NatsError && error.code === (ErrorCode.NoResponders as string);
}

/** Runs `request`, again while it fails with election weather (see the module comment). */
export async function retryNats<T>(request: () => Promise<T>, options: RetryNatsOptions = {}): Promise<T> {
  const { patienceMs = 15_000, baseDelayMs = 50, maxDelayMs = 2_000, idempotent = true, signal } = options;
  const deadline = Date.now() + patienceMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await request();
    } catch (error) {
      if (!isElectionWeather(error, { idempotent }) || signal?.aborted) throw error;
      // Full jitter: processes that lost the same leader do not all come back at the same moment.
      const delay = Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** attempt);
      if (Date.now() + delay > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
