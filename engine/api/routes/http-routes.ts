/**
 * The workflows' own routes (`http` triggers, docs/triggers.md#http): one catch-all fastify
 * route that looks the method and path up in the trigger registry (routes come and go with
 * workflow submissions, and fastify cannot add routes once it listens).
 *
 * A request is bounded before anything is stored: the body limit (`BATON_API_INPUT_LIMIT`), the
 * route's rate (`@fastify/rate-limit`, per route and API process: 429 with `Retry-After`), then
 * the trigger's `input` template and the workflow's input schema (400). Only then does it become
 * a trigger event (source `http`, subject `<METHOD> <path>`), stored on BATON_TRIGGERS and
 * processed at once like a webhook delivery; the answer is `202` with `Location` and `links`, or
 * for `respond: sync` the output (200) or the error (502) when the execution ends within the
 * route's timeout.
 *
 * Requests that match no route get what the API gives any unknown path: 401 without a valid
 * token, else 404 RouteNotFound.
 */
import { randomUUID } from "node:crypto";
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from "fastify";
import { isEnded, type ExecutionRecord } from "../../orchestrator/execution-record.ts";
import { InputInvalidError } from "../../orchestrator/executions.ts";
import { routeTable, type HttpRoute } from "../../triggers/http-routes.ts";
import { matchTriggerEvent } from "../../triggers/matcher.ts";
import type { TriggerEvent } from "../../triggers/trigger-event.ts";
import { httpMethods, type Json } from "../../workflow/definition.ts";
import { reservedPrefixOf } from "../../workflow/validate/check-route.ts";
import { compileInputCheck, type InputCheck } from "../../workflow/input-schema.ts";
import type { ApiContext } from "../context.ts";
import { executionLinks } from "../execution-links.ts";
import { ApiError } from "../problems.ts";
import { unauthorized } from "../request-access.ts";

/** Request headers never handed to a workflow: credentials, and what only the connection needs. */
const hiddenHeaders = new Set([
  "authorization",
  "cookie",
  "proxy-authorization",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
]);

const inputCheckCacheSize = 256;
/** The router's `maxParamLength` (server.ts): longer segments are refused on every route. */
const maxSegmentLength = 1_024;

export function httpRouteRoutes(context: ApiContext): FastifyPluginCallback {
  const { triggers, executions, limits, closing, accessTokens, isAuthorized } = context;
  const inputChecks = new Map<string, (input: Json) => InputCheck>();

  const routeOf = (request: FastifyRequest): HttpRoute | undefined => {
    const path = `/${(request.params as { "*"?: string })["*"] ?? ""}`;
    return routeTable(triggers.registry.workflows()).get(`${request.method} ${path}`);
  };

  /** The workflow's input check, compiled once per revision. */
  const inputCheckOf = async (route: HttpRoute) => {
    const stored = await executions.workflows.get(route.workflow);
    if (!stored) return undefined;
    const key = `${stored.name}@${stored.revision}:${stored.hash}`;
    let check = inputChecks.get(key);
    if (!check) {
      check = compileInputCheck(stored.definition);
      inputChecks.set(key, check);
      if (inputChecks.size > inputCheckCacheSize) inputChecks.delete(inputChecks.keys().next().value!);
    }
    return check;
  };

  const notFound = (request: FastifyRequest, reply: FastifyReply): ApiError => {
    if (!isAuthorized(request.headers.authorization)) return unauthorizedError(reply);
    return new ApiError(
      "RouteNotFound",
      `no route ${request.method} ${request.url.split("?")[0]}; see /docs`,
    );
  };

  return (app, _options, done) => {
    // Besides JSON (the server's parser): text and forms, as workflows behind web forms get them.
    app.addContentTypeParser("text/plain", { parseAs: "string" }, (request, body, parsed) => {
      request.bodyBytes = Buffer.byteLength(body);
      parsed(null, body);
    });
    app.addContentTypeParser(
      "application/x-www-form-urlencoded",
      { parseAs: "string" },
      (request, body, parsed) => {
        request.bodyBytes = Buffer.byteLength(body);
        parsed(null, Object.fromEntries(new URLSearchParams(body.toString())));
      },
    );

    app.route({
      method: [...httpMethods],
      url: "/*",
      bodyLimit: limits.inputLimit,
      schema: { hide: true },
      config: {
        isPublic: true,
        rateLimit: {
          // One bucket per route, not per client: the rate protects what the route starts.
          keyGenerator: (request: FastifyRequest) => routeOf(request)?.key ?? "",
          allowList: (_request: FastifyRequest, key: string) => key === "",
          max: (request: FastifyRequest) => routeOf(request)?.rate.max ?? 1,
          timeWindow: (request: FastifyRequest) => routeOf(request)?.rate.windowMs ?? 1_000,
        },
      },
      handler: async (request, reply) => {
        const path = `/${(request.params as { "*"?: string })["*"] ?? ""}`;
        // What can never be a route is answered at once, as before there were routes: a segment
        // longer than any id (what the router refuses on the API's own routes), a reserved prefix.
        if (path.split("/").some((segment) => segment.length > maxSegmentLength))
          throw new ApiError(
            "RequestInvalid",
            `a path segment is longer than ${maxSegmentLength} characters`,
          );
        if (reservedPrefixOf(path) !== undefined) throw notFound(request, reply);
        // A workflow submitted a moment ago may not be in the registry yet: catch up, then look again.
        const route = routeOf(request) ?? (await triggers.registry.upToDate(), routeOf(request));
        if (!route) throw notFound(request, reply);
        if (route.auth === "token" && !isAuthorized(request.headers.authorization))
          throw unauthorizedError(reply);
        const event = requestEvent(request, route);
        const [match] = matchTriggerEvent(
          [{ workflow: route.workflow, revision: route.revision, triggers: [route.trigger] }],
          event,
        );
        if (!match) throw notFound(request, reply);
        if ("rejected" in match)
          throw new ApiError("InputInvalid", `the route's input template failed: ${match.rejected}`, [
            { code: "InputInvalid", message: match.rejected, path: "input" },
          ]);
        const check = await inputCheckOf(route);
        if (!check) throw notFound(request, reply);
        const checked = check(match.input);
        if (!checked.ok) throw new InputInvalidError(route.workflow, checked.problems);

        const { record } = await triggers.accept(event);
        const started = record.executions.find((execution) => execution.workflow === route.workflow);
        if (!started) {
          const reason = record.rejected?.find((refusal) => refusal.workflow === route.workflow)?.reason;
          // Deleted, or its input refused, between the check above and the start.
          if (reason === undefined) throw notFound(request, reply);
          throw new ApiError("InputInvalid", reason, [
            { code: "InputInvalid", message: reason, path: "input" },
          ]);
        }
        const id = started.execution;
        reply.header("location", `/v1/executions/${id}`);
        if (route.respond === "sync") {
          const ended = await executions.awaitEnd(id, {
            timeoutMs: Math.min(route.timeoutMs, limits.maxWaitMs),
            signal: closing,
          });
          if (ended && isEnded(ended.status)) return answerEnded(ended, reply);
        }
        const now = await executions.get(id);
        return reply
          .code(202)
          .send({ id, status: now?.status ?? "running", links: await executionLinks(accessTokens, id) });
      },
    });
    done();
  };
}

function unauthorizedError(reply: FastifyReply): ApiError {
  reply.header("www-authenticate", 'Bearer realm="baton"');
  return unauthorized();
}

/** The trigger event of a request: `$event.data` is `{ method, path, query, headers, body }`. */
function requestEvent(request: FastifyRequest, route: HttpRoute): TriggerEvent {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers))
    if (!hiddenHeaders.has(name) && value !== undefined)
      headers[name] = Array.isArray(value) ? value.join(", ") : value;
  return {
    source: "http",
    type: "request",
    id: randomUUID(),
    time: new Date().toISOString(),
    subject: route.key,
    // `$event.data` is the request, as in a CloudEvent whose data is the HTTP request.
    data: {
      data: {
        method: route.method,
        path: route.path,
        query: { ...(request.query as Record<string, Json>) },
        headers,
        body: request.body === undefined ? null : (request.body as Json),
      },
    },
  };
}

/** sync, ended in time: 200 with the output, or 502 with the error it ended with. */
function answerEnded(record: ExecutionRecord, reply: FastifyReply) {
  if (record.status === "succeeded")
    return reply
      .code(200)
      .type("application/json; charset=utf-8")
      .send(JSON.stringify(record.output ?? null));
  const code = record.error?.code ?? (record.status === "cancelled" ? "Cancelled" : "Failed");
  const message = record.error?.message ?? `the execution ended ${record.status}`;
  throw new ApiError(
    "RouteExecutionFailed",
    `execution ${record.id} ended ${record.status}: ${code}: ${message}`,
    [{ code, message, path: `executions/${record.id}` }],
  );
}
