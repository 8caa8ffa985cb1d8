/**
 * The HTTP API (docs/api.md): a fastify application built by `buildServer`, which never listens
 * by itself: tests drive it with `inject()`, and `startApi` (start-api.ts) puts it on a port.
 *
 * The tree: root-level request handling (bearer tokens, body parsers, problem documents for
 * every error, OpenAPI from the route schemas), then one plugin per group of routes, each a
 * thin layer over the `Executions` service, which does the work over NATS.
 */
import { randomUUID } from "node:crypto";
import rateLimit from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import websocket from "@fastify/websocket";
import fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import type { ApiConfig } from "../config.ts";
import type { Executions } from "../orchestrator/executions.ts";
import { AccessTokens } from "./access-tokens.ts";
import { createTokenCheck } from "./auth.ts";
import { useBrowserAccess } from "./browser-access.ts";
import { useJsonBodies } from "./body-parsers.ts";
import type { ApiContext, ApiLimits } from "./context.ts";
import { handleError, sendProblem } from "./error-handler.ts";
import { ApiMetrics } from "./metrics.ts";
import { ApiError, problemContentType, problemOf } from "./problems.ts";
import { ProgressRelay } from "./progress-relay.ts";
import { Readiness } from "./readiness.ts";
import { createAccessCheck } from "./request-access.ts";
import { Triggers } from "../triggers/matcher.ts";
import { deliveryRoutes } from "./routes/deliveries.ts";
import { eventRoutes } from "./routes/events.ts";
import { executionActionRoutes } from "./routes/execution-actions.ts";
import { executionEventRoutes } from "./routes/execution-events.ts";
import { executionLinkRoutes } from "./routes/execution-links.ts";
import { executionRoutes } from "./routes/executions.ts";
import { functionRoutes } from "./routes/functions.ts";
import { githubRoutes } from "./routes/github.ts";
import { httpRouteRoutes } from "./routes/http-routes.ts";
import { operationRoutes } from "./routes/operations.ts";
import { workerRoutes } from "./routes/workers.ts";
import { workflowRoutes } from "./routes/workflows.ts";
import { sharedSchemas } from "./schemas.ts";
import { uiRoutes } from "./ui/ui-routes.ts";

export interface ApiOptions {
  executions: Executions;
  /** Who may call (`tokens`, `githubSecrets`, browsers) and the limits; defaults: no token, no webhook secret, no origin, the defaults of `loadApiConfig`. */
  config?: Partial<
    Pick<
      ApiConfig,
      "tokens" | "githubSecrets" | "accessTtlMs" | "signingKey" | "corsOrigins" | "uiTraceUrl"
    > &
      ApiLimits
  >;
  /** fastify's logger option (pino); default: no logging. */
  logger?: FastifyServerOptions["logger"];
  /** Also export the process's own metrics (CPU, memory, event loop). */
  processMetrics?: boolean;
}

export const defaultLimits: ApiLimits = {
  bodyLimit: 1024 * 1024,
  workflowLimit: 256 * 1024,
  inputLimit: 512 * 1024,
  packageLimit: 16 * 1024 * 1024,
  maxWaitMs: 5 * 60_000,
};

const defaultAccessTtlMs = 24 * 60 * 60_000;

/** Path parameters longer than this are refused before routing (ids and names are far shorter). */
const maxParamLength = 1_024;

export async function buildServer(options: ApiOptions): Promise<FastifyInstance> {
  const config = options.config ?? {};
  const tokens = config.tokens ?? [];
  const limits: ApiLimits = {
    bodyLimit: config.bodyLimit ?? defaultLimits.bodyLimit,
    workflowLimit: config.workflowLimit ?? defaultLimits.workflowLimit,
    inputLimit: config.inputLimit ?? defaultLimits.inputLimit,
    packageLimit: config.packageLimit ?? defaultLimits.packageLimit,
    maxWaitMs: config.maxWaitMs ?? defaultLimits.maxWaitMs,
  };
  const app = fastify({
    logger: options.logger ?? false,
    bodyLimit: limits.bodyLimit,
    genReqId: () => randomUUID(),
    // Requests that arrive while the server closes are served (with problem documents when
    // NATS has gone), rather than given fastify's own non-problem 503.
    return503OnClosing: false,
    ajv: { customOptions: { allErrors: true } },
    routerOptions: {
      maxParamLength,
      onMaxParamLength: (_path, _request, response) => {
        const problem = JSON.stringify(
          problemOf("RequestInvalid", `a path segment is longer than ${maxParamLength} characters`),
        );
        response
          .writeHead(400, {
            "content-type": problemContentType,
            "content-length": Buffer.byteLength(problem),
          })
          .end(problem);
      },
    },
    // Requests Node's HTTP parser refuses (a malformed request line, raw control characters,
    // headers over Node's limit) never reach a route: answer them with a problem document too.
    clientErrorHandler: (error, socket) => {
      if ((error as NodeJS.ErrnoException).code === "ECONNRESET" || !socket.writable) return;
      const problem = JSON.stringify(
        problemOf(
          "RequestInvalid",
          "the request line or headers are malformed, or the headers are too large",
        ),
      );
      socket.end(
        `HTTP/1.1 400 Bad Request\r\nContent-Type: ${problemContentType}\r\nContent-Length: ${Buffer.byteLength(problem)}\r\nConnection: close\r\n\r\n${problem}`,
      );
    },
    frameworkErrors: (error, _request, reply) => {
      sendProblem(
        reply,
        new ApiError("RequestInvalid", `the request's URL or headers are malformed: ${error.message}`),
      );
    },
  });

  // First: its onRequest hook marks upgrade requests, and its onResponse hook ends the socket of
  // one that is refused (by the token check, say); hooks run in the order they were added.
  await app.register(websocket, {
    options: { maxPayload: 64 * 1024 },
    // Tell every client why its stream ends; ws finishes each closing handshake on its own
    // (terminating a peer that never answers), so closing the server does not wait for them.
    preClose: (done) => {
      for (const client of app.websocketServer.clients) client.close(1001, "server closing");
      app.websocketServer.close();
      done();
    },
  });
  await useBrowserAccess(app, { origins: config.corsOrigins ?? [], tokenless: tokens.length === 0 });
  const closing = new AbortController();
  const nc = options.executions.connection;
  const accessTokens = await AccessTokens.open(nc, {
    ttlMs: config.accessTtlMs ?? defaultAccessTtlMs,
    signingKey: config.signingKey,
  });
  const context: ApiContext = {
    executions: options.executions,
    limits,
    metrics: new ApiMetrics(nc, await nc.jetstreamManager(), {
      processMetrics: options.processMetrics ?? false,
    }),
    readiness: new Readiness(nc),
    closing: closing.signal,
    triggers: await Triggers.open(options.executions),
    githubSecrets: config.githubSecrets ?? [],
    accessTokens,
    progress: new ProgressRelay(nc),
    isAuthorized: createTokenCheck(tokens),
    uiTraceUrl: config.uiTraceUrl,
  };
  app.addHook("preClose", (done) => {
    closing.abort();
    done();
  });
  // Answers given while closing (long polls cut short, late requests) end their connection, so
  // that closing the server does not wait for clients' keep-alive connections to time out.
  app.addHook("onSend", (_request, reply, payload, done) => {
    if (closing.signal.aborted) reply.header("connection", "close");
    done(null, payload);
  });
  app.addHook("onClose", (_instance, done) => {
    context.metrics.close();
    context.readiness.close();
    context.triggers.close();
    context.progress.close();
    done();
  });

  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      new ApiError("RouteNotFound", `no route ${request.method} ${request.url.split("?")[0]}; see /docs`),
    ),
  );

  const checkAccess = createAccessCheck(tokens, accessTokens);
  app.addHook("onRequest", async (request, reply) => {
    try {
      await checkAccess(request);
    } catch (error) {
      if (error instanceof ApiError && error.code === "Unauthorized")
        reply.header("www-authenticate", 'Bearer realm="baton"');
      throw error;
    }
  });
  // Only the routes that ask for it (the workflows' http routes) are limited.
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, { after }) =>
      new ApiError("TooManyRequests", `this route takes no more requests for now; retry in ${after}`),
  });

  useJsonBodies(app);
  // Bodies are JSON (and YAML on the workflow routes); anything else is 415.
  app.removeContentTypeParser("text/plain");
  for (const schema of sharedSchemas) app.addSchema(schema);

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "Baton API",
        version: "1",
        description:
          "Durable workflows of serverless functions, on NATS JetStream. Errors are RFC 9457 problem documents with a stable `code` (docs/errors.md).",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: tokens.length === 0 ? [] : [{ bearer: [] }],
      tags: [
        { name: "workflows", description: "Submit and read workflow definitions." },
        { name: "executions", description: "Start, read, await, signal, cancel and retry executions." },
        { name: "functions", description: "Deploy, read and delete function packages (docs/functions.md)." },
        { name: "events", description: "Events from outside, webhooks, and the deliveries they made." },
        { name: "operations", description: "Health, readiness, metrics, this description." },
      ],
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, index) =>
        typeof json.$id === "string" ? json.$id : `def-${index}`,
    },
  });

  await app.register(operationRoutes(context));
  await app.register(workflowRoutes(context));
  await app.register(executionRoutes(context));
  await app.register(executionActionRoutes(context));
  await app.register(executionEventRoutes(context));
  await app.register(eventRoutes(context));
  await app.register(githubRoutes(context));
  await app.register(deliveryRoutes(context));
  await app.register(workerRoutes(context));
  await app.register(functionRoutes(context));
  await app.register(executionLinkRoutes(context));
  await app.register(uiRoutes(context));
  // Last: the catch-all that serves the workflows' own routes.
  await app.register(httpRouteRoutes(context));
  return app;
}
