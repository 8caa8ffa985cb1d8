/** Acting on an execution: signal, cancel, retry. Each answers 202 once the event is on NATS. */
import type { FastifyPluginCallback } from "fastify";
import { isEnded } from "../../orchestrator/execution-record.ts";
import type { Found } from "../../orchestrator/executions.ts";
import type { Json } from "../../workflow/definition.ts";
import type { ApiContext } from "../context.ts";
import { ApiError } from "../problems.ts";
import { executionIdSchema, executionStatuses, problemResponses, signalNameSchema } from "../schemas.ts";
import { findOr404, idParams, type IdParams } from "./executions.ts";

const tags = ["executions"];
/** How long a retry waits for an engine to take it before answering anyway. */
const retryTakenWaitMs = 5_000;
const accepted = (extra: Record<string, unknown> = {}) => ({
  type: "object",
  description: "Accepted: the event is on its way to the execution.",
  required: ["id"],
  properties: { id: { type: "string" }, ...extra },
});

/** Signals and cancels are for executions still under way. */
function refuseEnded(found: Found, what: string): void {
  if (found.record && isEnded(found.record.status))
    throw new ApiError(
      "ExecutionEnded",
      `execution "${found.record.id}" has already ended (${found.record.status}); it cannot be ${what}`,
    );
}

export function executionActionRoutes(context: ApiContext): FastifyPluginCallback {
  const { executions, limits, closing } = context;
  return (app, _options, done) => {
    app.post<{
      Params: { id: string; name: string };
      Body: Json | undefined;
      Headers: { "idempotency-key"?: string };
    }>(
      "/v1/executions/:id/signals/:name",
      {
        schema: {
          tags,
          summary: "Deliver a signal; the body (JSON, optional) is its payload",
          description:
            "With an `Idempotency-Key`, the signal is delivered once however often it is sent: the execution remembers the keys of its last 1,000 keyed signals.",
          params: {
            type: "object",
            required: ["id", "name"],
            properties: { id: executionIdSchema, name: signalNameSchema },
          },
          headers: {
            type: "object",
            properties: { "idempotency-key": { type: "string", minLength: 1, maxLength: 255 } },
          },
          body: { description: "The signal's payload: any JSON value (an empty body is null)." },
          response: {
            202: accepted({ signal: { type: "string" } }),
            ...problemResponses(400, 404, 409, 413, 415),
          },
        },
      },
      async (request, reply) => {
        const { id, name } = request.params;
        if (request.bodyBytes > limits.inputLimit)
          throw new ApiError(
            "InputTooLarge",
            `the signal payload is ${request.bodyBytes} bytes; this server takes at most ${limits.inputLimit} (BATON_API_INPUT_LIMIT)`,
          );
        refuseEnded(await findOr404(context, id), "signalled");
        await executions.signal(id, name, request.body ?? null, request.headers["idempotency-key"]);
        return reply.code(202).send({ id, signal: name });
      },
    );

    app.post<IdParams>(
      "/v1/executions/:id/cancel",
      {
        schema: {
          tags,
          summary: "Cancel: running attempts are told to stop, pending steps never start",
          params: idParams,
          response: { 202: accepted(), ...problemResponses(400, 404, 409) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        refuseEnded(await findOr404(context, id), "cancelled");
        await executions.cancel(id);
        return reply.code(202).send({ id });
      },
    );

    app.post<IdParams>(
      "/v1/executions/:id/retry",
      {
        schema: {
          tags,
          summary: "Re-run a failed execution from the step that failed; completed steps are not run again",
          description:
            "Answers once an engine has taken the retry, with the status then (`running`, or already an end when the re-run was quick), or after 5 s when no engine has taken it yet (it will), with `status: failed`. The history tells the two `failed` apart (`ExecutionRetried`).",
          params: idParams,
          response: {
            202: accepted({ status: { type: "string", enum: executionStatuses } }),
            ...problemResponses(400, 404, 409),
          },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const found = await findOr404(context, id);
        const status = found.record?.status ?? "running";
        if (status !== "failed")
          throw new ApiError(
            "ExecutionNotFailed",
            `execution "${id}" is ${status}; only a failed execution can be retried`,
          );
        const parent = found.record?.parent;
        if (parent)
          throw new ApiError(
            "ExecutionNotFailed",
            `execution "${id}" is part of execution "${parent.execution}" (step "${parent.step}"), which has moved on; retry "${parent.execution}" instead`,
          );
        await executions.retry(id);
        // Answer once an engine has taken the retry (normally milliseconds), so that a client
        // reading or awaiting the execution next does not see the failure it asked to undo. An
        // ended execution's record changes only by a retry: any newer history means it was
        // taken (the status alone may already be `failed` again, when the re-run failed fast).
        const failedAt = found.record?.historySeq ?? 0;
        const taken = await executions.awaitRecord(id, (record) => record.historySeq > failedAt, {
          timeoutMs: retryTakenWaitMs,
          signal: closing,
        });
        return reply.code(202).send({ id, status: taken?.status ?? "failed" });
      },
    );
    done();
  };
}
