// One execution, seen from the client: read it, wait for its end, follow its events, act on it.
import type { JsonValue } from "../protocol.ts";
import { ExecutionFailedError, ResultTimeoutError } from "./errors.ts";
import { streamEvents, type EventStreamOptions } from "./event-stream.ts";
import type { Transport } from "./transport.ts";
import { isFinalStatus, type Execution, type HistoryEvent, type StartedExecution } from "./types.ts";

/** Options of `result()` and `outcome()`. */
export interface WaitOptions {
  /**
   * How long to wait for the end, in milliseconds, before throwing `ResultTimeoutError`.
   * Default: no limit (wait until the execution ends). `0` looks once without waiting.
   */
  readonly timeout?: number;
  /** Abort to stop waiting; the promise then rejects with the abort reason. */
  readonly signal?: AbortSignal;
}

// One long poll asks the server to hold the request at most this long; a longer wait is several
// polls in a row, so no proxy or server limit on request duration gets in the way.
const longPollMs = 30_000;

/**
 * A handle on one execution: `baton.start()` returns one, `baton.execution(id)` makes one for an
 * execution started elsewhere. Creating a handle sends no request.
 */
export class ExecutionHandle {
  /** The execution id. */
  readonly id: string;
  /**
   * What the start answered (`id`, `workflow`, `revision`, `status` at that moment), when this
   * handle comes from `baton.start()`. With `wait`, it is the whole execution if it ended in time.
   */
  readonly started: StartedExecution | Execution | undefined;
  readonly #transport: Transport;

  /** @internal Use `baton.start()` or `baton.execution(id)`. */
  constructor(transport: Transport, id: string, started?: StartedExecution | Execution) {
    this.#transport = transport;
    this.id = id;
    this.started = started;
  }

  private get path(): string {
    return `/v1/executions/${encodeURIComponent(this.id)}`;
  }

  /** The execution as it is now: status, input, output or error, steps. Throws `BatonApiError` (404) for an unknown id. */
  async get(): Promise<Execution> {
    return (await this.#transport.request("GET", this.path)).body as Execution;
  }

  /** Every event of the execution's history so far, in order. */
  async history(): Promise<HistoryEvent[]> {
    const answer = await this.#transport.request("GET", `${this.path}/history`);
    return [...(answer.body as { items: HistoryEvent[] }).items];
  }

  /**
   * Resolves with the execution's output once it has succeeded. Throws `ExecutionFailedError`
   * (with the step error in `.error`) when it fails, is cancelled or times out, and
   * `ResultTimeoutError` when it has not ended within `timeout`.
   *
   * @param options - `timeout` in ms (default: no limit), `signal`
   *
   * @example
   * ```ts
   * const run = await baton.start("hello", { name: "ana" });
   * const output = await run.result({ timeout: 60_000 });
   * ```
   */
  async result<T = JsonValue>(options: WaitOptions = {}): Promise<T> {
    const execution = await this.outcome(options);
    if (execution.status !== "succeeded") throw new ExecutionFailedError(execution);
    return execution.output as T;
  }

  /**
   * Resolves with the ended execution whatever its status (`succeeded`, `failed`, `cancelled`,
   * `timed_out`); throws `ResultTimeoutError` when it has not ended within `timeout`. Long polls
   * `GET /v1/executions/{id}/result?wait=` until then.
   *
   * @param options - `timeout` in ms (default: no limit), `signal`
   */
  async outcome(options: WaitOptions = {}): Promise<Execution> {
    const timeout = options.timeout ?? Infinity;
    if (!(timeout >= 0))
      throw new RangeError(`timeout must be a number of milliseconds >= 0, not ${timeout}`);
    const deadline = Date.now() + timeout;
    for (;;) {
      options.signal?.throwIfAborted();
      const waitMs = Math.max(0, Math.min(longPollMs, deadline - Date.now()));
      const answer = await this.#transport.request("GET", `${this.path}/result`, {
        query: { wait: `${Math.ceil(waitMs)}ms` },
        extraTimeoutMs: waitMs,
        signal: options.signal,
      });
      const body = answer.body as Execution | { id: string; status: string };
      if (answer.status === 200 && isFinalStatus(body.status)) return body as Execution;
      if (Date.now() >= deadline) throw new ResultTimeoutError(this.id, body.status, timeout);
    }
  }

  /**
   * The execution's events as they happen, over a websocket: every event from the start (or
   * after `after`), then the new ones live; the iteration ends after the final event
   * (`ExecutionSucceeded`, `ExecutionFailed`, `ExecutionCancelled`, `ExecutionTimedOut`).
   * Breaking out of the loop closes the connection.
   *
   * @param options - `after`: a `seq` to resume after (default: from the start); `signal`
   *
   * @example
   * ```ts
   * for await (const event of run.events()) console.log(event.seq, event.type, event.step ?? "");
   * ```
   */
  events(options: EventStreamOptions = {}): AsyncGenerator<HistoryEvent, void, undefined> {
    return streamEvents(this.#transport, this.id, options);
  }

  /**
   * Delivers a signal to the execution; a `receive` step waiting for `name` gets `payload` as
   * its output. A signal sent before the execution reaches the step is kept until it does.
   * Throws `BatonApiError` with status 409 when the execution has ended.
   *
   * @param name - the signal's name, as in `receive: { signal: <name> }`
   * @param payload - any JSON value (default: none)
   */
  async signal(name: string, payload?: JsonValue, options: { idempotencyKey?: string } = {}): Promise<void> {
    await this.#transport.request("POST", `${this.path}/signals/${encodeURIComponent(name)}`, {
      json: payload,
      headers: options.idempotencyKey === undefined ? {} : { "idempotency-key": options.idempotencyKey },
    });
  }

  /**
   * Cancels the execution: running attempts are told to stop, pending steps never start, and it
   * ends `cancelled`. Throws `BatonApiError` with status 409 when it has already ended.
   */
  async cancel(): Promise<void> {
    await this.#transport.request("POST", `${this.path}/cancel`);
  }

  /** Re-runs a failed execution from the step that failed; completed steps are not run again. */
  async retry(): Promise<void> {
    await this.#transport.request("POST", `${this.path}/retry`);
  }
}
