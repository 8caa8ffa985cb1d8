// Errors of the SDK, and how anything a function throws becomes the plain error shape that
// crosses the wire (`WireError`): a code, a message, whether to retry, and JSON details. Stack
// traces stay in the worker's log; they never travel.
import type { JsonValue, WireError } from "./protocol.ts";

/** Marks Baton errors across module copies and realms (a function isolate loads its own SDK). */
const batonErrorBrand = Symbol.for("baton.error");

/** Longest message sent on the wire; longer ones are cut (the full text stays in the worker's log). */
const MAX_MESSAGE_CHARS = 4_000;

export interface BatonErrorOptions {
  /**
   * Whether the engine may retry the step after this error (its retry policy still decides how
   * often). Default `false`: whoever throws a coded error knows what went wrong, and most coded
   * errors (a quota exceeded, a record not found) do not heal by trying again.
   */
  readonly retryable?: boolean;
  /** JSON data for the workflow (`$steps.<name>.error.details`). Anything that is not JSON is dropped. */
  readonly details?: unknown;
  /** The underlying error; kept in the worker's log, not sent on the wire. */
  readonly cause?: unknown;
}

/**
 * An error with a stable code, thrown by a function to fail its step in a way a workflow can
 * `catch` by code and a retry policy can recognise.
 *
 * Anything else a function throws becomes `FunctionError` (retryable).
 *
 * @example
 * ```ts
 * throw new BatonError("QuotaExceeded", `bucket ${bucket} is full`, { retryable: false, details: { bucket } });
 * ```
 */
export class BatonError extends Error {
  override readonly name = "BatonError";
  /** A stable code: `^[A-Za-z][A-Za-z0-9]*$` by convention, like Baton's own (`Timeout`, `InputInvalid`). */
  readonly code: string;
  readonly retryable: boolean;
  readonly details?: unknown;
  readonly [batonErrorBrand] = true;

  /**
   * @param code - the stable error code, e.g. `QuotaExceeded`
   * @param message - what went wrong and, when you know it, how to fix it
   * @param options - `retryable` (default `false`), `details` (JSON), `cause`
   */
  constructor(code: string, message: string, options: BatonErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    if (options.details !== undefined) this.details = options.details;
  }

  /** The error as it crosses the wire. */
  toWire(): WireError {
    return wireError(this.code, this.message, this.retryable, this.details);
  }
}

/** Whether `value` is a `BatonError`, also one made by another copy of the SDK. */
export function isBatonError(value: unknown): value is BatonError {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { [batonErrorBrand]?: unknown })[batonErrorBrand] === true &&
    typeof (value as { code?: unknown }).code === "string"
  );
}

/**
 * Normalises anything thrown into a `WireError`: a `BatonError` keeps its code, retryability and
 * details; anything else (an `Error`, a string, any value) becomes `FunctionError`, retryable,
 * with the error's name in the message when it says something (`TypeError: x is not a function`).
 */
export function toWireError(thrown: unknown): WireError {
  if (isBatonError(thrown)) {
    return wireError(thrown.code, thrown.message, thrown.retryable === true, thrown.details);
  }
  return wireError("FunctionError", describeThrown(thrown), true);
}

/** Builds a `WireError`, cutting an overlong message and dropping details that are not JSON. */
export function wireError(code: string, message: string, retryable: boolean, details?: unknown): WireError {
  const error: WireError = { code, message: truncate(message), retryable };
  const json = toJson(details);
  if (json !== undefined) error.details = json;
  return error;
}

function describeThrown(thrown: unknown): string {
  if (thrown instanceof Error || (typeof thrown === "object" && thrown !== null && "message" in thrown)) {
    const { name, message } = thrown as { name?: unknown; message?: unknown };
    const text = typeof message === "string" && message !== "" ? message : "(no message)";
    return typeof name === "string" && name !== "" && name !== "Error" ? `${name}: ${text}` : text;
  }
  if (typeof thrown === "string") return thrown;
  const json = toJson(thrown);
  return `the function threw a value that is not an Error: ${json === undefined ? String(thrown) : JSON.stringify(json)}`;
}

/** `value` as JSON data, or `undefined` when it is absent or not serialisable. */
function toJson(value: unknown): JsonValue | undefined {
  if (value === undefined) return undefined;
  try {
    const text = JSON.stringify(value);
    return text === undefined ? undefined : (JSON.parse(text) as JsonValue);
  } catch {
    return undefined;
  }
}

function truncate(message: string): string {
  return message.length <= MAX_MESSAGE_CHARS ? message : `${message.slice(0, MAX_MESSAGE_CHARS)}… (cut)`;
}
