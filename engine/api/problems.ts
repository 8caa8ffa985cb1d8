/**
 * Errors as the API answers them: RFC 9457 problem documents (`application/problem+json`)
 * carrying a stable Baton code, and the one table from code to HTTP status. Every code here is
 * in the catalogue (engine/errors.ts) and in docs/errors.md; docs/api.md shows this table.
 */
import type { ErrorCode } from "../errors.ts";

/** The HTTP status of every code the API answers with. */
export const httpStatusOf = {
  RequestInvalid: 400,
  WorkflowInvalid: 400,
  WorkflowNameMismatch: 400,
  PackageInvalid: 400,
  FunctionNameMismatch: 400,
  InputInvalid: 400,
  Unauthorized: 401,
  SignatureInvalid: 401,
  Forbidden: 403,
  RouteNotFound: 404,
  WorkflowNotFound: 404,
  FunctionNotFound: 404,
  ExecutionNotFound: 404,
  DeliveryNotFound: 404,
  ExecutionEnded: 409,
  ExecutionNotFailed: 409,
  RouteConflict: 409,
  BodyTooLarge: 413,
  WorkflowTooLarge: 413,
  PackageTooLarge: 413,
  InputTooLarge: 413,
  UnsupportedMediaType: 415,
  WebsocketRequired: 426,
  TooManyRequests: 429,
  InternalError: 500,
  NotImplemented: 501,
  RouteExecutionFailed: 502,
  Unavailable: 503,
} as const satisfies Partial<Record<ErrorCode, number>>;

export type ApiCode = keyof typeof httpStatusOf;

export const problemContentType = "application/problem+json";

/** One problem among several: a validation problem of a workflow, a bad input field, a bad parameter. */
export interface ProblemItem {
  code: string;
  message: string;
  /** Where: `steps[2].call` in a workflow, a JSON Pointer (`/images/0`) in an input, `querystring/limit` in a request. */
  path: string;
  /** In the submitted YAML, from 1 (workflow problems only). */
  line?: number;
  column?: number;
}

export interface ProblemDocument {
  /** `urn:baton:error:<code>`: stable, and documented in docs/errors.md. */
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ApiCode;
  errors?: ProblemItem[];
}

/** An answer other than success, thrown anywhere in a route and turned into a problem document. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly code: ApiCode,
    detail: string,
    readonly errors?: ProblemItem[],
    options?: ErrorOptions,
  ) {
    super(detail, options);
  }

  get status(): number {
    return httpStatusOf[this.code];
  }
}

/** `WorkflowNameMismatch` → `Workflow name mismatch`. */
export function titleOf(code: ApiCode): string {
  const words = code.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function problemOf(code: ApiCode, detail: string, errors?: ProblemItem[]): ProblemDocument {
  return {
    type: `urn:baton:error:${code}`,
    title: titleOf(code),
    status: httpStatusOf[code],
    detail,
    code,
    ...(errors === undefined || errors.length === 0 ? {} : { errors }),
  };
}
