/** Starting, reading, awaiting and listing executions. */
import type { FastifyPluginCallback } from "fastify";
import type { ExecutionRecord, RecordStatus } from "../../orchestrator/execution-record.ts";
import { isEnded } from "../../orchestrator/execution-record.ts";
import type { Found } from "../../orchestrator/executions.ts";
import type { Json } from "../../workflow/definition.ts";
import type { ApiContext } from "../context.ts";
import {
  summarizeExecution,
  viewExecution,
  viewPendingStart,
  type ExecutionView,
} from "../execution-view.ts";
import { executionLinks } from "../execution-links.ts";
import { ApiError } from "../problems.ts";
import {
  executionIdSchema,
  executionStatuses,
  problemResponses,
  schemaRefs,
  waitSchema,
  workflowNameSchema,
} from "../schemas.ts";
import { waitMsOf } from "../wait.ts";

const tags = ["executions"];
export const idParams = { type: "object", required: ["id"], properties: { id: executionIdSchema } } as const;
const waitQuery = { type: "object", properties: { wait: waitSchema } } as const;

const defaultPageSize = 50;
const maxPageSize = 500;

export interface IdParams {
  Params: { id: string };
}

/** Finds an execution or answers 404. */
export async function findOr404(context: ApiContext, id: string): Promise<Found> {
  const found = await context.executions.find(id);
  if (!found) throw new ApiError("ExecutionNotFound", `no execution has the id "${id}"`);
  return found;
}

export function executionRoutes(context: ApiContext): FastifyPluginCallback {
  const { executions, limits, closing } = context;

  const view = async (record: ExecutionRecord): Promise<ExecutionView> => {
    const [history, workflow] = await Promise.all([
      executions.history(record.id, record),
      executions.workflows.get(record.workflow, record.revision),
    ]);
    const viewed = viewExecution(record, history, workflow?.definition);
    const progress = isEnded(record.status) ? undefined : context.progress.lastOf(record.id);
    return progress === undefined ? viewed : { ...viewed, progress };
  };
  const viewFound = (found: Found) => (found.record ? view(found.record) : viewPendingStart(found.pending));
  const awaitEnd = (id: string, wait: string | undefined) =>
    executions.awaitEnd(id, { timeoutMs: waitMsOf(wait, limits.maxWaitMs), signal: closing });

  return (app, _options, done) => {
    app.post<{
      Params: { name: string };
      Querystring: { wait?: string };
      Headers: { "idempotency-key"?: string };
      Body: Json | undefined;
    }>(
      "/v1/workflows/:name/executions",
      {
        schema: {
          tags,
          summary: "Start an execution (202 Accepted); with `?wait=`, wait that long for its end (200)",
          description:
            "The body is the input (JSON; an empty body is `{}`). With an `Idempotency-Key`, a second start with the same key for the same workflow returns the first execution (and the header `Idempotent-Replayed: true`).",
          params: { type: "object", required: ["name"], properties: { name: workflowNameSchema } },
          querystring: waitQuery,
          headers: {
            type: "object",
            properties: { "idempotency-key": { type: "string", minLength: 1, maxLength: 255 } },
          },
          body: { description: "The execution input: any JSON value." },
          response: {
            200: { ...schemaRefs.execution, description: "Ended within `wait`." },
            202: {
              ...schemaRefs.executionAccepted,
              description: "Accepted; `Location` names the execution.",
            },
            ...problemResponses(400, 404, 413, 415),
          },
        },
      },
      async (request, reply) => {
        if (request.bodyBytes > limits.inputLimit)
          throw new ApiError(
            "InputTooLarge",
            `the input is ${request.bodyBytes} bytes; this server takes at most ${limits.inputLimit} (BATON_API_INPUT_LIMIT)`,
          );
        const input = request.body === undefined ? {} : request.body;
        const key = request.headers["idempotency-key"];
        const started =
          key === undefined
            ? { ...(await executions.start(request.params.name, input)), replayed: false }
            : await executions.startOnce(request.params.name, input, key);
        reply.header("location", `/v1/executions/${started.id}`);
        if (started.replayed) reply.header("idempotent-replayed", "true");
        const ended =
          request.query.wait === undefined ? undefined : await awaitEnd(started.id, request.query.wait);
        if (ended) return reply.code(200).send(await view(ended));
        const status: RecordStatus = started.replayed
          ? ((await executions.get(started.id))?.status ?? "running")
          : "running";
        return reply.code(202).send({
          id: started.id,
          workflow: started.workflow,
          revision: started.revision,
          status,
          links: await executionLinks(context.accessTokens, started.id),
        });
      },
    );

    app.get<IdParams>(
      "/v1/executions/:id",
      {
        schema: {
          tags,
          summary: "One execution, with its steps",
          params: idParams,
          response: { 200: schemaRefs.execution, ...problemResponses(400, 404) },
        },
      },
      async (request) => viewFound(await findOr404(context, request.params.id)),
    );

    app.get<IdParams & { Querystring: { wait?: string } }>(
      "/v1/executions/:id/result",
      {
        schema: {
          tags,
          summary:
            "Long poll for the end: 200 with the execution once it has ended, 202 if it is still running after `wait`",
          params: idParams,
          querystring: waitQuery,
          response: {
            200: { ...schemaRefs.execution, description: "Ended." },
            202: {
              type: "object",
              description: "Still running after `wait`.",
              required: ["id", "status"],
              properties: { id: { type: "string" }, status: { type: "string", enum: executionStatuses } },
            },
            ...problemResponses(400, 404),
          },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const found = await findOr404(context, id);
        const ended =
          found.record && isEnded(found.record.status)
            ? found.record
            : await awaitEnd(id, request.query.wait);
        if (ended) return reply.code(200).send(await view(ended));
        const now = await executions.get(id);
        return reply.code(202).send({ id, status: now?.status ?? "running" });
      },
    );

    app.get<IdParams>(
      "/v1/executions/:id/history",
      {
        schema: {
          tags,
          summary: "Every event of the execution, in order",
          params: idParams,
          response: {
            200: {
              type: "object",
              required: ["items"],
              properties: { items: { type: "array", items: schemaRefs.historyEvent } },
            },
            ...problemResponses(400, 404),
          },
        },
      },
      async (request) => {
        const { id } = request.params;
        const found = await findOr404(context, id);
        return { items: await executions.history(id, found.record) };
      },
    );

    app.get<{ Querystring: { workflow?: string; status?: RecordStatus; limit?: number; cursor?: string } }>(
      "/v1/executions",
      {
        schema: {
          tags,
          summary: "List top-level executions, newest first",
          description:
            "Pages follow `next`: pass it back as `cursor`. A page may hold fewer than `limit` items and still have a `next`.",
          querystring: {
            type: "object",
            properties: {
              workflow: workflowNameSchema,
              status: { type: "string", enum: executionStatuses },
              limit: { type: "integer", minimum: 1, maximum: maxPageSize, default: defaultPageSize },
              cursor: { type: "string", maxLength: 400, pattern: "^[A-Za-z0-9_-]+$" },
            },
          },
          response: {
            200: {
              type: "object",
              required: ["items"],
              properties: {
                items: { type: "array", items: schemaRefs.executionSummary },
                next: { type: "string", description: "The cursor of the next page; absent on the last." },
              },
            },
            ...problemResponses(400),
          },
        },
      },
      async (request) => {
        const { workflow, status, limit = defaultPageSize, cursor } = request.query;
        const after = cursor === undefined ? undefined : decodeCursor(cursor);
        const page = await executions.list({
          limit,
          ...(workflow === undefined ? {} : { workflow }),
          ...(status === undefined ? {} : { status }),
          ...(after === undefined ? {} : { after }),
        });
        return {
          items: page.items.map(summarizeExecution),
          ...(page.next === undefined ? {} : { next: encodeCursor(page.next) }),
        };
      },
    );
    done();
  };
}

/** Cursors are opaque to clients: the id a page ended at, base64url-encoded. */
const encodeCursor = (id: string) => Buffer.from(`after:${id}`).toString("base64url");

function decodeCursor(cursor: string): string {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const id = text.startsWith("after:") ? text.slice("after:".length) : "";
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(id))
    throw new ApiError(
      "RequestInvalid",
      "the cursor is not one this API gave out: pass `next` back unchanged",
      [{ code: "RequestInvalid", message: "not a cursor of this API", path: "querystring/cursor" }],
    );
  return id;
}
