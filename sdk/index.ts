/**
 * Baton's TypeScript SDK: the worker kit (define functions, serve them) and the wire protocol.
 *
 * @example
 * ```ts
 * import { BatonError, defineFunction, serve } from "baton";
 *
 * export const charge = defineFunction({
 *   name: "charge",
 *   effect: true,
 *   input: { type: "object", required: ["amount"], properties: { amount: { type: "number" } } },
 *   async handler(input: { amount: number }, ctx) {
 *     if (input.amount > 1000) throw new BatonError("LimitExceeded", "amount above 1000", { retryable: false });
 *     return payments.charge(input.amount, { idempotencyKey: ctx.idempotencyKey, signal: ctx.signal });
 *   },
 * });
 *
 * await serve({ servers: process.env.NATS_URL, functions: [charge] });
 * ```
 *
 * @packageDocumentation
 */

export {
  /**
   * An error with a stable code, thrown by a function to fail its step so that a workflow can
   * `catch` it by code. `retryable` defaults to `false`; anything else thrown becomes
   * `FunctionError`, retryable.
   *
   * @example
   * ```ts
   * throw new BatonError("QuotaExceeded", "the bucket is full", { retryable: false, details: { bucket } });
   * ```
   */
  BatonError,
  /** Whether a value is a `BatonError` (also one from another copy of the SDK). */
  isBatonError,
  /** Normalises anything thrown into the wire error `{ code, message, retryable, details? }`. */
  toWireError,
} from "./errors.ts";
export type {
  /** The options of `BatonError`: `retryable` (default `false`), `details` (JSON), `cause`. */
  BatonErrorOptions,
} from "./errors.ts";

export {
  /**
   * Defines a function for workers to serve. Call it at the top level of an ES module: the
   * handler runs in an isolate that imports that module again and finds the function by name.
   *
   * @param options - `name`, `handler(input, ctx)`, and optionally `input` (JSON Schema checked
   *   before the handler runs), `effect` (the lane: default both; `true` effect steps only;
   *   `false` pure steps only), `timeout` (ms or `"30s"`), `module` (default: from the call stack)
   *
   * @example
   * ```ts
   * export const add = defineFunction({
   *   name: "add",
   *   input: { type: "object", required: ["a", "b"], properties: { a: { type: "number" }, b: { type: "number" } } },
   *   handler: (input: { a: number; b: number }) => input.a + input.b,
   * });
   * ```
   */
  defineFunction,
  /** Whether a value is a function definition (what `defineFunction` returns). */
  isFunctionDefinition,
} from "./worker/define-function.ts";
export type {
  /** A function as `defineFunction` returns it, ready for `serve`. */
  FunctionDefinition,
  /** What a handler knows about its attempt: execution, step, attempt, idempotency key, signal, deadline, logger. */
  FunctionContext,
  /** The options of `defineFunction`. */
  FunctionOptions,
  /** A JSON Schema (draft 2020-12). */
  JsonSchema,
} from "./worker/define-function.ts";

export {
  /**
   * Serves functions from NATS JetStream until drained or closed: pulls their tasks (at most
   * `concurrency` pure and `effectConcurrency` effect attempts at once), runs each attempt in an
   * isolate, reports the outcome and heartbeats.
   *
   * @param options - `functions`; `servers` (default `NATS_URL`) or `connection`; `concurrency`
   *   (default 16); `effectConcurrency` (default: `concurrency`); `name`; `signal` (abort to
   *   drain); `isolateHeapMb` (default 512); `graceMs` (default 1000); `drainTimeoutMs` (default 30 000)
   * @returns a handle with `drain()`, `close()` and `closed`
   *
   * @example
   * ```ts
   * const worker = await serve({ servers: process.env.NATS_URL, functions: [add], concurrency: 8 });
   * process.once("SIGTERM", () => void worker.drain());
   * ```
   */
  serve,
} from "./worker/serve.ts";
export type {
  /** The options of `serve`. */
  ServeOptions,
  /** A serving worker: `id`, `running`, `closed`, `drain()`, `close()`. */
  WorkerHandle,
} from "./worker/serve.ts";

export {
  /** A logger writing JSON lines to stderr, from `BATON_LOG_LEVEL` (default `info`). */
  createJsonLogger,
} from "./worker/logger.ts";
export type {
  /** Where a worker and its functions log (`ctx.logger`). */
  Logger,
  /** Structured fields of a log line. */
  LogFields,
} from "./worker/logger.ts";

export {
  /**
   * Imports ES modules and returns the function definitions they export (the default export,
   * an array of them, and named exports), as `baton worker MODULE...` does.
   */
  loadFunctionModules,
} from "./worker/load-modules.ts";

/** The wire contract between the engine and workers: subjects, streams, headers, envelopes. */
export * as protocol from "./protocol.ts";
