/**
 * Every error code Baton gives out, in one place. `docs/errors.md` mirrors this catalogue and
 * `test/unit/error-catalogue.test.ts` fails when the two disagree.
 *
 * - `validation`: a problem in a submitted workflow document (reported all at once, with line and column).
 * - `step`: how a step (and so an execution) fails at run time; `retryable` is the default a retry policy sees.
 * - `api`: an answer of the HTTP API, the SDK or the CLI.
 */

export type ErrorCategory = "validation" | "step" | "api";

export interface ErrorSpec {
  readonly category: ErrorCategory;
  /** One sentence: when this code is given. */
  readonly when: string;
  /** Step errors only: whether a retry policy retries it unless told otherwise. */
  readonly retryable?: boolean;
}

export const errorCatalogue = {
  // --- validation: problems in a workflow document -------------------------------------------
  YamlSyntax: { category: "validation", when: "The text is not well-formed YAML." },
  NotAMapping: { category: "validation", when: "A document is not a YAML mapping (an object)." },
  UnsupportedVersion: {
    category: "validation",
    when: "`baton` is not a language version this engine knows (only `v1`).",
  },
  MissingField: { category: "validation", when: "A required field is absent." },
  UnknownField: {
    category: "validation",
    when: "A field the language does not define is present (often a typo).",
  },
  WrongType: {
    category: "validation",
    when: "A field has the wrong type (a string where a list belongs, say).",
  },
  InvalidValue: {
    category: "validation",
    when: "A field's value is outside what the language allows (an unknown enum value, a number out of range, a name that breaks its pattern).",
  },
  StepKindMissing: {
    category: "validation",
    when: "A step names none of the step kinds (`call`, `switch`, `parallel`, ...).",
  },
  StepKindConflict: { category: "validation", when: "A step names more than one step kind." },
  DuplicateStep: { category: "validation", when: "Two steps of one workflow share a name." },
  DuplicateWorkflow: {
    category: "validation",
    when: "Two documents of one file define the same workflow name.",
  },
  UnknownStep: { category: "validation", when: "A `next` or `catch.next` names no step of the same list." },
  InvalidSwitchBranch: {
    category: "validation",
    when: "A `switch` branch has both or neither of `next` and `steps`, or both or neither of `when` and `default`, or `default` is not last.",
  },
  InvalidReceive: {
    category: "validation",
    when: "A `receive` has both or neither of `signal` and `subject`.",
  },
  InvalidDuration: {
    category: "validation",
    when: "A duration is not a whole number with a unit (`250ms`, `5s`, `10m`, `2h`, `7d`), or is zero where a positive one is needed.",
  },
  InvalidCron: {
    category: "validation",
    when: "A schedule's `cron` is not a valid 5- or 6-field cron expression.",
  },
  InvalidTimezone: { category: "validation", when: "A schedule's `timezone` is not an IANA time zone name." },
  InvalidSubject: {
    category: "validation",
    when: "A NATS subject is malformed (empty tokens, spaces, or wildcards where a concrete subject is needed), or reserved for Baton and NATS (under `baton.`, `$JS.`, `$KV.`, `$O.`, `$SYS.` or `_INBOX.`, or a trigger's pattern starting with a wildcard).",
  },
  InvalidTrigger: {
    category: "validation",
    when: "A trigger names no source or several, or an event type its source does not produce.",
  },
  InvalidRoute: {
    category: "validation",
    when: "An http trigger's path is not of the form `/[a-z0-9/_-]*`, or starts with a prefix the API serves itself (`/v1`, `/docs`, `/ui`, `/healthz`, `/readyz`, `/metrics`).",
  },
  ExpressionSyntax: { category: "validation", when: "A `${ ... }` expression does not parse as JSONata." },
  ExpressionExpected: {
    category: "validation",
    when: "A field that must be an expression (`if`, `when`, `match`) is not written as `${ ... }`.",
  },
  InvalidInputSchema: {
    category: "validation",
    when: "The workflow's `input` is not a valid JSON Schema (draft 2020-12).",
  },

  // --- step: how steps and executions fail at run time ----------------------------------------
  Timeout: {
    category: "step",
    retryable: true,
    when: "An attempt, a step, a `receive` or the whole execution ran past its timeout (the execution then ends `timed_out`).",
  },
  WorkerCrashed: {
    category: "step",
    retryable: true,
    when: "The worker died, or the function crashed its process or thread, during the attempt.",
  },
  FunctionError: {
    category: "step",
    retryable: true,
    when: "The function threw something that is not a Baton error.",
  },
  InputInvalid: {
    category: "step",
    retryable: false,
    when: "The input was rejected against its declared schema (a function's, or the workflow's at start).",
  },
  FunctionUnavailable: {
    category: "step",
    retryable: true,
    when: "An attempt timed out while no live worker served its function (no heartbeat names it), or while its deployed package was marked unhealthy (its workers kept crashing): nobody was there to run it.",
  },
  EventPoisoned: {
    category: "step",
    retryable: false,
    when: "An event could not be applied to the execution however often it was tried (a workflow revision gone, a record that cannot be read): it was set aside on BATON_POISON and the execution failed.",
  },
  ExpressionError: {
    category: "step",
    retryable: false,
    when: "An expression failed at run time (a type error, a budget exceeded).",
  },
  NoBranchMatched: {
    category: "step",
    retryable: false,
    when: "A `switch` had no matching branch and no `default`.",
  },
  ItemsFailed: {
    category: "step",
    retryable: false,
    when: "A `map` had more failed items than its `tolerate`.",
  },
  StepBudgetExceeded: {
    category: "step",
    retryable: false,
    when: "The execution took more backward `next` jumps than its budget.",
  },
  Cancelled: { category: "step", retryable: false, when: "The execution was cancelled." },
  WorkflowNotFound: {
    category: "step",
    retryable: false,
    when: "A `workflow` step, or a start, names a workflow that has not been submitted.",
  },
  TaskInvalid: {
    category: "step",
    retryable: false,
    when: "A worker could not read the task it was given (a malformed message, or a protocol version it does not speak).",
  },
  SubjectRefused: {
    category: "step",
    retryable: false,
    when: "An `emit` or `receive` subject, as evaluated at run time, is reserved (under `baton.`, `$JS.`, `$KV.`, `$O.`, `$SYS.` or `_INBOX.`) or not one concrete subject.",
  },
  OutputInvalid: {
    category: "step",
    retryable: false,
    when: "A function returned something that is not JSON, or too large for a NATS message (return a reference instead).",
  },

  // --- api: answers to clients ---------------------------------------------------------------
  WorkflowInvalid: {
    category: "api",
    when: "A submitted workflow failed validation; `errors[]` lists every problem.",
  },
  WorkflowNameMismatch: {
    category: "api",
    when: "The document sent to `PUT /v1/workflows/{name}` is not exactly one workflow named `{name}`.",
  },
  RequestInvalid: {
    category: "api",
    when: "A path parameter, query parameter, header or body does not have the form the route takes (malformed JSON included); `errors[]` says where.",
  },
  Unauthorized: {
    category: "api",
    when: "The request has no bearer token, or one that is not among those configured in `BATON_API_TOKENS`.",
  },
  Forbidden: {
    category: "api",
    when: "An execution access token was used for something other than reading its own execution (or it has expired or is not valid), or a browser's `Origin` or the `Host` header is not one the API allows.",
  },
  SignatureInvalid: {
    category: "api",
    when: "A webhook's signature (`X-Hub-Signature-256`) is missing, or made with none of the secrets in `BATON_GITHUB_SECRET`.",
  },
  RouteNotFound: { category: "api", when: "No route of the API has this method and path." },
  DeliveryNotFound: {
    category: "api",
    when: "No trigger delivery of this source has this id (it never arrived, or it is older than the deliveries' retention).",
  },
  ExecutionNotFound: {
    category: "api",
    when: "No execution has this id (it never existed, or it ended longer ago than the retention).",
  },
  ExecutionEnded: {
    category: "api",
    when: "The execution has already ended, so it can no longer be signalled or cancelled.",
  },
  RouteConflict: {
    category: "api",
    when: "The workflow's http trigger claims a method and path that another workflow already serves.",
  },
  TooManyRequests: {
    category: "api",
    when: "An http route got more requests than its `rate` allows; `Retry-After` says when to try again.",
  },
  RouteExecutionFailed: {
    category: "api",
    when: "A sync http route's execution ended without succeeding; `errors[0].code` is the error it ended with.",
  },
  ExecutionNotFailed: {
    category: "api",
    when: "Only a failed execution can be retried, and not an item or child execution (retry the execution it is part of).",
  },
  BodyTooLarge: {
    category: "api",
    when: "The request body is larger than the API takes (`BATON_API_BODY_LIMIT`).",
  },
  WorkflowTooLarge: {
    category: "api",
    when: "The workflow document is larger than the API takes (`BATON_API_WORKFLOW_LIMIT`).",
  },
  PackageTooLarge: {
    category: "api",
    when: "The function package is larger than the API takes (`BATON_API_PACKAGE_LIMIT`).",
  },
  PackageInvalid: {
    category: "api",
    when: "The body sent to `PUT /v1/functions/{name}` is not a package: not one self-contained JavaScript module, a module that throws when loaded, one that defines no function, or settings out of range.",
  },
  FunctionNameMismatch: {
    category: "api",
    when: "The package sent to `PUT /v1/functions/{name}` does not define a function named `{name}`.",
  },
  FunctionNotFound: {
    category: "api",
    when: "No function package of this name has been deployed (or it was deleted).",
  },
  InputTooLarge: {
    category: "api",
    when: "The execution input or signal payload is larger than the API takes (`BATON_API_INPUT_LIMIT`).",
  },
  UnsupportedMediaType: {
    category: "api",
    when: "The request body's `Content-Type` is not one the route takes (JSON, and YAML for workflows).",
  },
  WebsocketRequired: {
    category: "api",
    when: "The route streams over a websocket and the request did not ask to upgrade to one.",
  },
  NotImplemented: {
    category: "api",
    when: "The route is part of the API contract but this engine does not serve it yet.",
  },
  Unavailable: {
    category: "api",
    when: "NATS is not reachable or JetStream is not ready; try again shortly.",
  },
  InternalError: {
    category: "api",
    when: "Something failed inside Baton; the server's log has the details under the request id.",
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof errorCatalogue;
export type ValidationCode = {
  [C in ErrorCode]: (typeof errorCatalogue)[C]["category"] extends "validation" ? C : never;
}[ErrorCode];
export type StepErrorCode = {
  [C in ErrorCode]: (typeof errorCatalogue)[C]["category"] extends "step" ? C : never;
}[ErrorCode];

/** Whether a code is one of Baton's own (functions may raise codes of their own too). */
export function isBatonCode(code: string): code is ErrorCode {
  return Object.hasOwn(errorCatalogue, code);
}

/** One problem found in a workflow document. `line` and `column` count from 1. */
export interface Problem {
  code: ValidationCode;
  message: string;
  /** Where in the document, as the user reads it: `steps[3].catch[0].next`. */
  path: string;
  line: number;
  column: number;
}

/** A step error as it crosses the wire and lands in `$steps.<name>.error`. */
export interface StepError {
  code: string;
  message: string;
  retryable: boolean;
  details?: unknown;
  /** `ItemsFailed` only: which items of the `map` failed, and how. */
  items?: { index: number; error: StepError }[];
}

/** Builds a step error with the catalogue's default retryability for Baton's own codes. */
export function stepError(code: StepErrorCode, message: string, details?: unknown): StepError {
  const error: StepError = { code, message, retryable: errorCatalogue[code].retryable };
  if (details !== undefined) error.details = details;
  return error;
}
