/**
 * Every error, whatever threw it, leaves as a problem document: the API's own `ApiError`, the
 * errors of the executions service, fastify's request errors (validation, body size, media
 * type, malformed JSON), and NATS being away. Anything else is a bug: it is logged with its
 * stack, and the client gets `InternalError` with the request id, never the stack.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import {
  InputInvalidError,
  WorkflowInvalidError,
  WorkflowNameMismatchError,
  WorkflowNotFoundError,
} from "../orchestrator/executions.ts";
import { ApiError, problemContentType, problemOf, type ApiCode, type ProblemItem } from "./problems.ts";

/** Sends a problem document with the status the code has in the one table. */
export function sendProblem(reply: FastifyReply, error: ApiError): FastifyReply {
  const problem = problemOf(error.code, error.message, error.errors);
  return reply.code(problem.status).type(problemContentType).send(problem);
}

/** What fastify's own request errors mean, by their code. */
const fastifyCodes: Record<string, ApiCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "BodyTooLarge",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "UnsupportedMediaType",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "RequestInvalid",
  FST_ERR_CTP_EMPTY_JSON_BODY: "RequestInvalid",
  FST_ERR_CTP_INVALID_JSON_BODY: "RequestInvalid",
  FST_ERR_BAD_URL: "RequestInvalid",
};

/** NATS errors that mean "not now" rather than "wrong": the connection is down or JetStream is slow. */
const natsUnavailableCodes = new Set([
  "TIMEOUT",
  "503",
  "CONNECTION_CLOSED",
  "CONNECTION_DRAINING",
  "DISCONNECT",
  "CONNECTION_REFUSED",
]);

export function toApiError(error: unknown): ApiError | undefined {
  if (error instanceof ApiError) return error;
  if (error instanceof WorkflowInvalidError)
    return new ApiError(
      "WorkflowInvalid",
      `the workflow has ${error.problems.length} problem${error.problems.length === 1 ? "" : "s"}; errors[] lists each with its line and column`,
      error.problems.map(({ code, message, path, line, column }) => ({ code, message, path, line, column })),
    );
  if (error instanceof WorkflowNameMismatchError) return new ApiError("WorkflowNameMismatch", error.message);
  if (error instanceof WorkflowNotFoundError) return new ApiError("WorkflowNotFound", error.message);
  if (error instanceof InputInvalidError)
    return new ApiError(
      "InputInvalid",
      `the input does not match the input schema of workflow "${error.workflow}"; errors[] lists each problem`,
      error.problems.map(({ path, message }) => ({ code: "InputInvalid", message, path })),
    );
  const fastifyError = error as Partial<FastifyError> & {
    validation?: unknown[];
    validationContext?: string;
  };
  if (Array.isArray(fastifyError.validation)) {
    const items = fastifyError.validation.map((issue) =>
      validationItem(issue, fastifyError.validationContext),
    );
    return new ApiError("RequestInvalid", items.map((item) => item.message).join("; "), items);
  }
  const mapped = fastifyError.code === undefined ? undefined : fastifyCodes[fastifyError.code];
  if (mapped) return new ApiError(mapped, fastifyError.message ?? mapped);
  if ((error as Error)?.name === "NatsError" && natsUnavailableCodes.has(String(fastifyError.code)))
    return new ApiError("Unavailable", "NATS did not answer in time; try again shortly", undefined, {
      cause: error,
    });
  const status = fastifyError.statusCode;
  // Another client error fastify raised on its own (its messages say what was wrong, and no more).
  if (typeof status === "number" && status >= 400 && status < 500 && fastifyError.code?.startsWith("FST_"))
    return new ApiError("RequestInvalid", fastifyError.message ?? "the request is malformed");
  return undefined;
}

function validationItem(issue: unknown, context = "request"): ProblemItem {
  const {
    instancePath = "",
    message = "is invalid",
    params,
  } = issue as {
    instancePath?: string;
    message?: string;
    params?: { additionalProperty?: string; missingProperty?: string };
  };
  const field = params?.missingProperty ?? params?.additionalProperty;
  const path = `${context}${instancePath}${field && !instancePath.endsWith(field) ? `/${field}` : ""}`;
  return { code: "RequestInvalid", message: `${context}${instancePath} ${message}`, path };
}

export function handleError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  let known = toApiError(error);
  if (known?.code === "UnsupportedMediaType")
    known = new ApiError(
      "UnsupportedMediaType",
      `Content-Type "${request.headers["content-type"] ?? ""}" is not taken here: send JSON (application/json), or for a workflow document YAML (application/yaml, text/yaml)`,
    );
  if (known) {
    if (known.code === "Unavailable") request.log.warn({ err: error }, "NATS unavailable");
    return sendProblem(reply, known);
  }
  request.log.error({ err: error }, "request failed");
  return sendProblem(
    reply,
    new ApiError(
      "InternalError",
      `the request failed inside Baton; the server log has the details under request id ${request.id}`,
    ),
  );
}
