/**
 * `POST /v1/events`: events from outside, matched against `queue` and `infra` triggers. The
 * trigger plane comes in a later version; until then the route validates its body and answers
 * 501 `NotImplemented`, so clients can be written against it now. (The GitHub webhook,
 * `POST /v1/hooks/github`, comes with the triggers too and is not routed yet.)
 */
import type { FastifyPluginCallback } from "fastify";
import { ApiError } from "../problems.ts";
import { problemResponses } from "../schemas.ts";

export function eventRoutes(): FastifyPluginCallback {
  return (app, _options, done) => {
    app.post(
      "/v1/events",
      {
        schema: {
          tags: ["events"],
          summary: "Publish an event from outside (not served yet: 501 until triggers exist)",
          body: {
            type: "object",
            required: ["source", "type", "data"],
            properties: {
              source: { type: "string", minLength: 1, maxLength: 256 },
              type: { type: "string", minLength: 1, maxLength: 256 },
              subject: { type: "string", maxLength: 1024 },
              data: { description: "Any JSON value." },
            },
          },
          response: problemResponses(400, 413, 415, 501),
        },
      },
      () => {
        throw new ApiError(
          "NotImplemented",
          "events from outside are matched against queue and infra triggers, which this engine does not run yet; start the workflow with POST /v1/workflows/{name}/executions instead",
        );
      },
    );
    done();
  };
}
