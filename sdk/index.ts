/**
 * Baton's TypeScript SDK: the client of the HTTP API (submit workflows, start executions, await
 * and follow them), the worker kit (define functions, serve them) and the wire protocol.
 *
 * @example
 * ```ts
 * import { BatonClient } from "baton";
 *
 * const baton = new BatonClient({ url: "http://127.0.0.1:8080", token: process.env.BATON_TOKEN });
 * await baton.workflows.apply(yamlText);
 * const run = await baton.start("hello", { name: "ana" }, { idempotencyKey: "hello-ana" });
 * console.log(await run.result({ timeout: 60_000 }));
 * ```
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

export {
  /**
   * A client of the Baton HTTP API: `workflows` (apply, validate, get, list, delete), `start`,
   * `execution(id)`, `executions` (list, get).
   *
   * @param options - `url` (default `BATON_URL`, else `http://127.0.0.1:8080`), `token` (default
   *   `BATON_TOKEN`), `requestTimeout` in ms (default 30 000)
   *
   * @example
   * ```ts
   * const baton = new BatonClient({ url: "http://127.0.0.1:8080", token });
   * await baton.workflows.apply(yamlText); // throws WorkflowInvalidError with .problems
   * const run = await baton.start("pr-thumbnails", { repo: "acme/site", images: [] }, { idempotencyKey: "abc" });
   * const done = await run.result({ timeout: 60_000 }); // throws ExecutionFailedError on failure
   * for await (const event of run.events()) console.log(event.type);
   * await run.signal("approve", { by: "sam" });
   * await run.cancel();
   * ```
   */
  BatonClient,
  /** `baton.executions`: `list({ workflow, status, limit, cursor })` and `get(id)`. */
  ExecutionsApi,
  /** The API address the client uses when neither `url` nor `BATON_URL` says otherwise. */
  defaultApiUrl,
} from "./client/client.ts";
export type {
  /** The options of `new BatonClient()`: `url`, `token`, `requestTimeout`. */
  BatonClientOptions,
  /** The options of `baton.start()`: `idempotencyKey`, `wait` (ms), `signal`. */
  StartOptions,
  /** The options of `baton.executions.list()`: `workflow`, `status`, `limit`, `cursor`. */
  ListExecutionsOptions,
} from "./client/client.ts";

export {
  /**
   * A handle on one execution: `id`, `get()`, `history()`, `result({ timeout })`,
   * `outcome({ timeout })`, `events({ after })`, `signal(name, payload)`, `cancel()`, `retry()`.
   *
   * @example
   * ```ts
   * const run = baton.execution(id);
   * for await (const event of run.events({ after: 10 })) console.log(event.seq, event.type);
   * ```
   */
  ExecutionHandle,
} from "./client/execution-handle.ts";
export type {
  /** The options of `result()` and `outcome()`: `timeout` in ms (default: no limit), `signal`. */
  WaitOptions,
} from "./client/execution-handle.ts";
export type {
  /** The options of `events()`: `after` (a `seq` to resume after), `signal`. */
  EventStreamOptions,
} from "./client/event-stream.ts";

export {
  /** `baton.workflows`: `apply(yamlText)`, `validate(yamlText)`, `get(name)`, `list()`, `delete(name)`. */
  WorkflowsApi,
} from "./client/workflows-api.ts";
export type {
  /** What `baton.workflows.validate()` resolves to: `valid` and every problem. */
  ValidationResult,
} from "./client/workflows-api.ts";

export {
  /**
   * The API refused a request: `code` (stable Baton code such as `WorkflowNotFound`), `status`
   * (HTTP), `title`, `detail`, `problems` (the problem document's `errors[]`) and `problem`.
   */
  BatonApiError,
  /** A workflow was refused as invalid (`WorkflowInvalid`): every problem is in `.problems`. */
  WorkflowInvalidError,
  /** The API could not be reached or did not answer in time: `code` (`ECONNREFUSED`, `RequestTimeout`, ...), `url`. */
  BatonConnectionError,
  /** `result()` on an execution that failed, was cancelled or timed out: `code`, `status`, `error`, `execution`. */
  ExecutionFailedError,
  /** `result()` or `outcome()` gave up waiting: `executionId`, `status`, `timeoutMs`. */
  ResultTimeoutError,
} from "./client/errors.ts";
export type {
  /** An RFC 9457 problem document as the API sends it. */
  ProblemDocument,
  /** One entry of a problem document's `errors[]`: `code`, `message`, `path`, `line`, `column`. */
  ProblemDetail,
} from "./client/errors.ts";

export {
  /** Every execution status, in lifecycle order. */
  executionStatuses,
  /** Whether a status is final (`succeeded`, `failed`, `cancelled`, `timed_out`). */
  isFinalStatus,
} from "./client/types.ts";
export type {
  /** An execution as `GET /v1/executions/{id}` answers. */
  Execution,
  /** `running`, `waiting`, `succeeded`, `failed`, `cancelled` or `timed_out`. */
  ExecutionStatus,
  /** One step of an execution: `name`, `status`, `attempts`, times, `effect`. */
  ExecutionStep,
  /** An execution in a list. */
  ExecutionSummary,
  /** One page of executions: `items` and the `next` cursor. */
  ExecutionPage,
  /** What a start answers: `id`, `workflow`, `revision`, `status`. */
  StartedExecution,
  /** One history event: `seq`, `at`, `type`, `step?`, `attempt?`, `worker?`, `data?`. */
  HistoryEvent,
  /** The error an execution or a step ended with: `code`, `message`, `retryable`, `details?`. */
  StepError,
  /** What `apply` stored for one workflow: `name`, `revision`, `triggers`, `created`. */
  AppliedWorkflow,
  /** A workflow in a list: `name`, `revision`, `description`, `updatedAt`. */
  WorkflowSummary,
  /** One workflow with its `source` YAML. */
  StoredWorkflow,
} from "./client/types.ts";
