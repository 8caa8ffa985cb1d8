// The errors of the client, one class per way a call can go wrong: the server refused it
// (BatonApiError, from an RFC 9457 problem document), the server could not be reached
// (BatonConnectionError), the execution ended without succeeding (ExecutionFailedError), or it
// did not end in time (ResultTimeoutError). Each sets `name` and carries a stable `code`.
import type { Execution, StepError } from "./types.ts";

/** One problem in `errors[]` of a problem document: a workflow or an input that is not valid. */
export interface ProblemDetail {
  readonly code: string;
  readonly message: string;
  /** Where, as the user reads it: `steps[3].catch[0].next`, or `/images/0` for an input. */
  readonly path?: string;
  /** Line and column in the submitted YAML (from 1), for workflow problems. */
  readonly line?: number;
  readonly column?: number;
}

/** An RFC 9457 problem document, as the API answers errors with (`application/problem+json`). */
export interface ProblemDocument {
  readonly type?: string;
  readonly title?: string;
  readonly status: number;
  readonly detail?: string;
  /** A stable Baton error code: `WorkflowNotFound`, `InputInvalid`, `WorkflowInvalid`, ... */
  readonly code: string;
  readonly errors?: readonly ProblemDetail[];
}

/**
 * The API refused a request: it answered with an error status and a problem document.
 *
 * @example
 * ```ts
 * try {
 *   await baton.start("nope", {});
 * } catch (error) {
 *   if (error instanceof BatonApiError && error.code === "WorkflowNotFound") console.error(error.detail);
 *   else throw error;
 * }
 * ```
 */
export class BatonApiError extends Error {
  override name = "BatonApiError";
  /** The stable Baton error code (`WorkflowNotFound`, `InputInvalid`, `Unauthorized`, ...). */
  readonly code: string;
  /** The HTTP status. */
  readonly status: number;
  /** The problem's title: a short summary of the kind of problem. */
  readonly title: string | undefined;
  /** The problem's detail: what went wrong this time. */
  readonly detail: string | undefined;
  /** Every problem the server listed (`errors[]`): a workflow's validation problems, an input's. */
  readonly problems: readonly ProblemDetail[];
  /** The whole problem document, with any extension members. */
  readonly problem: ProblemDocument;

  constructor(problem: ProblemDocument, options?: { cause?: unknown }) {
    const what = problem.detail ?? problem.title ?? "the request failed";
    super(`${what} (${problem.code}, HTTP ${problem.status})`, options);
    this.code = problem.code;
    this.status = problem.status;
    this.title = problem.title;
    this.detail = problem.detail;
    this.problems = problem.errors ?? [];
    this.problem = problem;
  }
}

/**
 * A workflow document was refused (`WorkflowInvalid`): `problems` holds every problem with its
 * code, message, path, line and column.
 *
 * @example
 * ```ts
 * try {
 *   await baton.workflows.apply(yamlText);
 * } catch (error) {
 *   if (!(error instanceof WorkflowInvalidError)) throw error;
 *   for (const p of error.problems) console.error(`${p.line}:${p.column} ${p.code} ${p.path}: ${p.message}`);
 * }
 * ```
 */
export class WorkflowInvalidError extends BatonApiError {
  override name = "WorkflowInvalidError";
}

/**
 * The API could not be reached, or did not answer in time: nothing was said about the request
 * (it may or may not have been carried out; retry with an idempotency key to be sure).
 */
export class BatonConnectionError extends Error {
  override name = "BatonConnectionError";
  /**
   * Why: the system error code (`ECONNREFUSED`, `ENOTFOUND`, `ECONNRESET`, ...), `RequestTimeout`
   * when the server took too long, `Redirected` when something in front of the API answered with
   * a redirect (not followed), or `NetworkError` when nothing more precise is known.
   */
  readonly code: string;
  /** The URL that could not be reached. */
  readonly url: string;

  constructor(url: string, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.url = url;
    this.code = code;
  }
}

/**
 * An execution ended without succeeding: it failed, was cancelled or timed out. `error` is the
 * error it ended with (the failing step's error, `Cancelled`, `Timeout`, ...); `code` is its code.
 *
 * @example
 * ```ts
 * try {
 *   const output = await run.result({ timeout: 60_000 });
 * } catch (error) {
 *   if (error instanceof ExecutionFailedError) console.error(error.status, error.code, error.error?.message);
 *   else throw error;
 * }
 * ```
 */
export class ExecutionFailedError extends Error {
  override name = "ExecutionFailedError";
  /** The code of the error the execution ended with (`ExecutionFailed` when it carries none). */
  readonly code: string;
  /** How it ended: `failed`, `cancelled` or `timed_out`. */
  readonly status: string;
  /** The error it ended with, as the server reported it. */
  readonly error: StepError | undefined;
  /** The ended execution. */
  readonly execution: Execution;

  constructor(execution: Execution) {
    const error = execution.error ?? undefined;
    const what = error === undefined ? "" : `: ${error.code}: ${error.message}`;
    super(`execution ${execution.id} of ${execution.workflow} ${describeStatus(execution.status)}${what}`);
    this.code = error?.code ?? "ExecutionFailed";
    this.status = execution.status;
    this.error = error;
    this.execution = execution;
  }
}

/** The execution had not ended when `result()` or `outcome()` stopped waiting for it. */
export class ResultTimeoutError extends Error {
  override name = "ResultTimeoutError";
  readonly code = "ResultTimeout";
  readonly executionId: string;
  /** Its status when the wait ended (`running` or `waiting`). */
  readonly status: string;
  readonly timeoutMs: number;

  constructor(executionId: string, status: string, timeoutMs: number) {
    super(
      `execution ${executionId} had not ended after ${timeoutMs} ms (it is ${status}); wait longer, or follow it with events()`,
    );
    this.executionId = executionId;
    this.status = status;
    this.timeoutMs = timeoutMs;
  }
}

function describeStatus(status: string): string {
  switch (status) {
    case "failed":
      return "failed";
    case "cancelled":
      return "was cancelled";
    case "timed_out":
      return "timed out";
    default:
      return `ended with status ${status}`;
  }
}

/**
 * The error for an HTTP answer with an error status: the problem document it carries when it
 * carries one, else a problem made from the status (a proxy's HTML page, an empty body).
 */
export function errorFromResponse(status: number, body: unknown, fallbackText: string): BatonApiError {
  const problem = isProblemDocument(body)
    ? { ...body, status: typeof body.status === "number" ? body.status : status }
    : {
        status,
        code: codeForStatus(status),
        title: `HTTP ${status}`,
        detail: fallbackText.trim() === "" ? undefined : fallbackText.trim().slice(0, 500),
      };
  return problem.code === "WorkflowInvalid" ? new WorkflowInvalidError(problem) : new BatonApiError(problem);
}

function isProblemDocument(body: unknown): body is ProblemDocument {
  return typeof body === "object" && body !== null && typeof (body as { code?: unknown }).code === "string";
}

// Codes for answers that carry no problem document (a proxy in between, a crashed handler).
function codeForStatus(status: number): string {
  if (status === 401) return "Unauthorized";
  if (status === 403) return "Forbidden";
  if (status === 404) return "NotFound";
  if (status === 413) return "PayloadTooLarge";
  if (status >= 500) return "ServerError";
  return "HttpError";
}
