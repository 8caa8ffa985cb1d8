/**
 * Trigger deliveries (`GET /v1/deliveries/{source}/{id}`): every event that arrived through a
 * trigger, with the executions it started and the workflows that refused it. Also the answer the
 * routes that receive events give (`accepted`).
 */
import { listKeys } from "../../nats/kv-keys.ts";
import type { FastifyPluginCallback } from "fastify";
import type { Processed } from "../../triggers/matcher.ts";
import { triggerSources, type DeliveryRecord, type TriggerSource } from "../../triggers/trigger-event.ts";
import type { ApiContext } from "../context.ts";
import { ApiError } from "../problems.ts";
import { problemResponses } from "../schemas.ts";

const tags = ["events"];

const started = {
  type: "array",
  items: {
    type: "object",
    required: ["workflow", "execution"],
    properties: { workflow: { type: "string" }, execution: { type: "string" } },
  },
} as const;

const rejected = {
  type: "array",
  description: "Workflows whose trigger matched but which refused the event (its input, or an expression).",
  items: {
    type: "object",
    required: ["workflow", "reason"],
    properties: { workflow: { type: "string" }, reason: { type: "string" } },
  },
} as const;

/** `202` of the routes that receive events. */
export const acceptedResponse = {
  type: "object",
  description:
    "Accepted: the executions the event started (or, for a delivery seen before, those the first one started).",
  required: ["delivery", "source", "executions", "started", "replayed"],
  properties: {
    delivery: { type: "string" },
    source: { type: "string", enum: [...triggerSources] },
    executions: { type: "array", items: { type: "string" } },
    started,
    rejected,
    replayed: {
      type: "boolean",
      description: "This delivery had been received before; nothing new was started.",
    },
  },
} as const;

export function acceptedAnswer({ record, replayed }: Processed) {
  return {
    delivery: record.id,
    source: record.source,
    executions: record.executions.map((execution) => execution.execution),
    started: record.executions,
    ...(record.rejected === undefined ? {} : { rejected: record.rejected }),
    replayed,
  };
}

const deliverySchema = {
  type: "object",
  required: ["source", "id", "type", "receivedAt", "executions"],
  properties: {
    source: { type: "string" },
    id: { type: "string" },
    type: { type: "string" },
    receivedAt: { type: "string" },
    executions: started,
    rejected,
  },
} as const;

interface DeliveryParams {
  Params: { source: TriggerSource; id: string };
}

const defaultListSize = 50;
const maxListSize = 200;

export function deliveryRoutes({ triggers }: ApiContext): FastifyPluginCallback {
  return (app, _options, done) => {
    app.get<{ Querystring: { source?: TriggerSource; limit?: number } }>(
      "/v1/deliveries",
      {
        schema: {
          tags,
          summary: "The latest trigger deliveries, newest first, with the executions they started",
          description:
            "Reads every key of `baton_deliveries` (kept 30 days) and returns the newest `limit`: meant for the console, not for large volumes.",
          querystring: {
            type: "object",
            properties: {
              source: { type: "string", enum: [...triggerSources] },
              limit: { type: "integer", minimum: 1, maximum: maxListSize, default: defaultListSize },
            },
          },
          response: {
            200: {
              type: "object",
              required: ["items"],
              properties: { items: { type: "array", items: deliverySchema } },
            },
            ...problemResponses(400),
          },
        },
      },
      async (request) => {
        const { source, limit = defaultListSize } = request.query;
        const keys = await listKeys(triggers.deliveries, source === undefined ? ">" : `${source}.>`);
        const records: DeliveryRecord[] = [];
        for (const key of keys) {
          const entry = await triggers.deliveries.get(key);
          if (entry && entry.operation === "PUT") records.push(entry.json<DeliveryRecord>());
        }
        records.sort((a, b) => b.receivedAt.localeCompare(a.receivedAt));
        return { items: records.slice(0, limit) };
      },
    );

    app.get<DeliveryParams>(
      "/v1/deliveries/:source/:id",
      {
        schema: {
          tags,
          summary: "A trigger delivery: the executions it started, the workflows that refused it",
          params: {
            type: "object",
            required: ["source", "id"],
            properties: {
              source: { type: "string", enum: [...triggerSources] },
              id: { type: "string", minLength: 1, maxLength: 512 },
            },
          },
          response: {
            200: deliverySchema,
            ...problemResponses(400, 404),
          },
        },
      },
      async (request) => {
        const { source, id } = request.params;
        const record = await triggers.delivery(source, id);
        if (!record)
          throw new ApiError(
            "DeliveryNotFound",
            `no ${source} delivery "${id}" has been received (or it has expired)`,
          );
        return record;
      },
    );
    done();
  };
}
