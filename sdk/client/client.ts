// BatonClient: the entry point of the client half of the SDK.
import type { JsonValue } from "../protocol.ts";
import { ExecutionHandle } from "./execution-handle.ts";
import { Transport } from "./transport.ts";
import type { Execution, ExecutionPage, ExecutionStatus, StartedExecution } from "./types.ts";
import { WorkflowsApi } from "./workflows-api.ts";

/** Where the API listens when nothing says otherwise: `baton dev`'s address. */
export const defaultApiUrl = "http://127.0.0.1:8080";

/** The options of `new BatonClient()`. */
export interface BatonClientOptions {
  /** The API's base URL. Default: `BATON_URL`, else `http://127.0.0.1:8080`. */
  readonly url?: string;
  /** A bearer token (one of the server's `BATON_API_TOKENS`). Default: `BATON_TOKEN`, else none. */
  readonly token?: string;
  /**
   * How long one request may take, in milliseconds, before it fails with
   * `BatonConnectionError` (`RequestTimeout`). Long polls get their wait on top. Default 30 000.
   */
  readonly requestTimeout?: number;
}

/** The options of `baton.start()`. */
export interface StartOptions {
  /**
   * Starting again with the same key for the same workflow returns the first execution instead
   * of starting another: safe to retry after a timeout or a lost answer.
   */
  readonly idempotencyKey?: string;
  /**
   * Wait up to this many milliseconds for the execution to end before answering (the
   * handle's `started` is then the ended execution). Default: answer as soon as it is started.
   */
  readonly wait?: number;
  readonly signal?: AbortSignal;
}

/** The options of `baton.executions.list()`. */
export interface ListExecutionsOptions {
  /** Only executions of this workflow. */
  readonly workflow?: string;
  /** Only executions with this status. */
  readonly status?: ExecutionStatus;
  /** At most this many (the server caps it). Default: the server's. */
  readonly limit?: number;
  /** The `next` of a previous page, to read the page after it. */
  readonly cursor?: string;
}

/** The executions on the server (`baton.executions`). */
export class ExecutionsApi {
  readonly #transport: Transport;

  /** @internal Use `baton.executions`. */
  constructor(transport: Transport) {
    this.#transport = transport;
  }

  /**
   * One page of executions, newest first; pass `next` back as `cursor` for the following page.
   *
   * @example
   * ```ts
   * const { items, next } = await baton.executions.list({ workflow: "hello", status: "failed", limit: 20 });
   * ```
   */
  async list(options: ListExecutionsOptions = {}): Promise<ExecutionPage> {
    const answer = await this.#transport.request("GET", "/v1/executions", {
      query: {
        workflow: options.workflow,
        status: options.status,
        limit: options.limit,
        cursor: options.cursor,
      },
    });
    return answer.body as ExecutionPage;
  }

  /** One execution as it is now. Throws `BatonApiError` (404) for an unknown id. */
  async get(id: string): Promise<Execution> {
    return new ExecutionHandle(this.#transport, id).get();
  }
}

/**
 * A client of the Baton HTTP API: submit workflows, start executions, wait for their results,
 * follow their events, signal, cancel and retry them. Every method sends HTTP to the API (and a
 * websocket for `events()`); errors are `BatonApiError` (the server refused, with its problem
 * document), `BatonConnectionError` (it could not be reached), `ExecutionFailedError` and
 * `ResultTimeoutError` (from `result()`).
 *
 * @example
 * ```ts
 * import { BatonClient } from "baton";
 *
 * const baton = new BatonClient({ url: "http://127.0.0.1:8080", token: process.env.BATON_TOKEN });
 * await baton.workflows.apply(yamlText);
 * const run = await baton.start("hello", { name: "ana" }, { idempotencyKey: "hello-ana-1" });
 * for await (const event of run.events()) console.log(event.type, event.step ?? "");
 * console.log(await run.result({ timeout: 60_000 }));
 * ```
 */
export class BatonClient {
  /** The API's base URL. */
  readonly url: string;
  /** Workflow definitions: `apply`, `validate`, `get`, `list`, `delete`. */
  readonly workflows: WorkflowsApi;
  /** Executions: `list`, `get`. */
  readonly executions: ExecutionsApi;
  readonly #transport: Transport;

  /**
   * @param options - `url` (default `BATON_URL`, else `http://127.0.0.1:8080`), `token` (default
   *   `BATON_TOKEN`), `requestTimeout` in ms (default 30 000)
   */
  constructor(options: BatonClientOptions = {}) {
    const url = options.url ?? envVar("BATON_URL") ?? defaultApiUrl;
    const token = options.token ?? envVar("BATON_TOKEN");
    const requestTimeout = options.requestTimeout ?? 30_000;
    if (!(requestTimeout > 0)) throw new RangeError(`requestTimeout must be a positive number of ms`);
    this.#transport = new Transport(url, token, requestTimeout);
    this.url = this.#transport.baseUrl.href.replace(/\/$/, "");
    this.workflows = new WorkflowsApi(this.#transport);
    this.executions = new ExecutionsApi(this.#transport);
  }

  /**
   * Starts an execution of a workflow (`POST /v1/workflows/{name}/executions`).
   *
   * @param workflow - the workflow's name
   * @param input - the execution input, checked against the workflow's `input` schema (default `{}`)
   * @param options - `idempotencyKey`, `wait` (ms to wait for the end before answering), `signal`
   * @returns a handle on the execution
   * @throws `BatonApiError` with code `WorkflowNotFound` (404) or `InputInvalid` (400, every
   *   problem in `.problems`); nothing is started then
   *
   * @example
   * ```ts
   * const run = await baton.start("pr-thumbnails", { repo: "acme/site", images: [] }, { idempotencyKey: "abc" });
   * const output = await run.result({ timeout: 60_000 });
   * ```
   */
  async start(workflow: string, input: JsonValue = {}, options: StartOptions = {}): Promise<ExecutionHandle> {
    const wait = options.wait;
    if (wait !== undefined && !(wait >= 0)) throw new RangeError(`wait must be a number of ms >= 0`);
    const answer = await this.#transport.request(
      "POST",
      `/v1/workflows/${encodeURIComponent(workflow)}/executions`,
      {
        json: input,
        query: { wait: wait === undefined ? undefined : `${Math.ceil(wait)}ms` },
        headers: options.idempotencyKey === undefined ? {} : { "idempotency-key": options.idempotencyKey },
        extraTimeoutMs: wait ?? 0,
        signal: options.signal,
      },
    );
    const started = answer.body as StartedExecution | Execution;
    return new ExecutionHandle(this.#transport, started.id, started);
  }

  /** A handle on an execution started elsewhere (sends no request). */
  execution(id: string): ExecutionHandle {
    return new ExecutionHandle(this.#transport, id);
  }
}

function envVar(name: string): string | undefined {
  const value = typeof process === "undefined" ? undefined : process.env[name];
  return value === undefined || value === "" ? undefined : value;
}
