/**
 * `POST /v1/events`: an event from outside becomes a trigger event (source `infra` unless the body
 * says `queue`), is stored on BATON_TRIGGERS and matched at once against the workflows' `infra`
 * and `queue` triggers. `id` makes a retry of the same event safe: a delivery seen before starts
 * nothing new and answers with what the first one started. Without `id`, each request is a new
 * delivery.
 */
import { randomUUID } from "node:crypto";
import type { FastifyPluginCallback } from "fastify";
import type { TriggerEvent } from "../../triggers/trigger-event.ts";
import type { Json } from "../../workflow/definition.ts";
import type { ApiContext } from "../context.ts";
import { ApiError } from "../problems.ts";
import { problemResponses } from "../schemas.ts";
import { acceptedAnswer, acceptedResponse } from "./deliveries.ts";

interface EventBody {
  Body: { source?: "infra" | "queue"; type: string; subject?: string; data: Json; id?: string };
}

export function eventRoutes({ triggers }: ApiContext): FastifyPluginCallback {
  return (app, _options, done) => {
    app.post<EventBody>(
      "/v1/events",
      {
        schema: {
          tags: ["events"],
          summary:
            "Publish an event from outside: it starts the workflows whose infra or queue triggers accept it",
          body: {
            type: "object",
            required: ["type", "data"],
            additionalProperties: false,
            properties: {
              source: { type: "string", enum: ["infra", "queue"], default: "infra" },
              type: { type: "string", minLength: 1, maxLength: 256 },
              subject: { type: "string", minLength: 1, maxLength: 1024, pattern: "^[^\\s*>]+$" },
              data: { description: "Any JSON value: `$event` of the executions it starts." },
              id: {
                type: "string",
                minLength: 1,
                maxLength: 256,
                description: "Delivery id: resending it starts nothing new.",
              },
            },
          },
          response: { 202: acceptedResponse, ...problemResponses(400, 413, 415) },
        },
      },
      async (request, reply) => {
        const { source = "infra", type, subject, data, id } = request.body;
        if (source === "queue" && subject === undefined)
          throw new ApiError("RequestInvalid", "a queue event needs the subject it was published on", [
            { code: "RequestInvalid", message: "required for source queue", path: "body/subject" },
          ]);
        const event: TriggerEvent = {
          source,
          type,
          id: id ?? randomUUID(),
          time: new Date().toISOString(),
          ...(subject === undefined ? {} : { subject }),
          data: data ?? null,
        };
        return reply.code(202).send(acceptedAnswer(await triggers.accept(event)));
      },
    );
    done();
  };
}
