/**
 * `GET /v1/executions/{id}/links`: the `links` of an execution that was not started by this
 * client (the console follows any execution's websocket this way: a browser cannot put the bearer
 * token on a websocket). Needs an API token like every other route; an access token cannot mint
 * another.
 */
import type { FastifyPluginCallback } from "fastify";
import type { ApiContext } from "../context.ts";
import { executionLinks, linksSchema } from "../execution-links.ts";
import { problemResponses } from "../schemas.ts";
import { findOr404, idParams, type IdParams } from "./executions.ts";

export function executionLinkRoutes(context: ApiContext): FastifyPluginCallback {
  return (app, _options, done) => {
    app.get<IdParams>(
      "/v1/executions/:id/links",
      {
        schema: {
          tags: ["executions"],
          summary: "The execution's links, with a fresh access token (for a browser's websocket)",
          params: idParams,
          response: { 200: linksSchema, ...problemResponses(400, 404) },
        },
      },
      async (request) => {
        await findOr404(context, request.params.id);
        return executionLinks(context.accessTokens, request.params.id);
      },
    );
    done();
  };
}
