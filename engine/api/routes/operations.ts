/** Health, readiness, metrics and the OpenAPI description. */
import type { FastifyPluginCallback } from "fastify";
import type { ApiContext } from "../context.ts";
import { ApiError } from "../problems.ts";
import { problemResponses, schemaRefs } from "../schemas.ts";

const tags = ["operations"];

export function operationRoutes({ readiness, metrics }: ApiContext): FastifyPluginCallback {
  return (app, _options, done) => {
    app.get(
      "/healthz",
      {
        config: { isPublic: true },
        schema: {
          tags,
          summary: "The process lives (no token needed)",
          security: [],
          response: {
            200: {
              type: "object",
              required: ["status"],
              properties: { status: { type: "string", enum: ["ok"] } },
            },
          },
        },
      },
      () => ({ status: "ok" }),
    );

    app.get(
      "/readyz",
      {
        config: { isPublic: true },
        schema: {
          tags,
          summary: "NATS is connected and the streams are ready (no token needed)",
          security: [],
          response: {
            200: {
              type: "object",
              required: ["status", "nats"],
              properties: { status: { type: "string", enum: ["ready"] }, nats: { type: "string" } },
            },
            503: {
              description: "Not ready: `detail` says why.",
              content: { "application/problem+json": { schema: schemaRefs.problem } },
            },
          },
        },
      },
      async () => {
        const report = await readiness.check();
        if (!report.isReady) throw new ApiError("Unavailable", `not ready: ${report.problems.join("; ")}`);
        return { status: "ready", nats: report.nats };
      },
    );

    app.get(
      "/metrics",
      {
        schema: {
          tags,
          summary: "Prometheus metrics (text exposition format)",
          produces: ["text/plain"],
          response: { 200: { type: "string" }, ...problemResponses() },
        },
      },
      async (_request, reply) => {
        const { contentType, text } = await metrics.render();
        return reply.type(contentType).send(text);
      },
    );

    const describe = {
      schema: {
        tags,
        summary: "This API's OpenAPI 3 description",
        response: { 200: { type: "object", additionalProperties: true }, ...problemResponses() },
      },
    };
    app.get("/docs", describe, () => app.swagger());
    app.get("/docs/json", describe, () => app.swagger());
    done();
  };
}
