/**
 * Function packages (docs/functions.md): deploy a bundle as the next version of a function,
 * list, read (versions, scale settings, health, and which workers serve which version, from
 * the workers' heartbeats), delete.
 */
import { listKeys } from "../../nats/kv-keys.ts";
import type { FastifyError, FastifyPluginCallback } from "fastify";
import type { KV } from "nats";
import type { HeartbeatEnvelope } from "../../../sdk/protocol.ts";
import { checkPackage, PackageRefusedError } from "../../functions/check-package.ts";
import {
  defaultScale,
  environments,
  PackageStore,
  type Environment,
  type FunctionPackage,
  type ScaleSettings,
} from "../../functions/package-store.ts";
import { openWorkersBucket } from "../../nats/topology.ts";
import { formatDuration, parseDuration } from "../../workflow/duration.ts";
import type { ApiContext } from "../context.ts";
import { handleError } from "../error-handler.ts";
import { ApiError } from "../problems.ts";
import { problemResponses } from "../schemas.ts";

const tags = ["functions"];
export const packageContentTypes = [
  "application/javascript",
  "text/javascript",
  "application/gzip",
  "application/octet-stream",
];

/** The function-name pattern of defineFunction and the workflow language. */
const functionNameSchema = {
  type: "string",
  pattern: "^[a-z][a-z0-9._-]{0,127}$",
  description: "A function name, as `defineFunction` takes it.",
} as const;
const nameParams = { type: "object", required: ["name"], properties: { name: functionNameSchema } } as const;

const scaleSchema = {
  type: "object",
  required: ["minScale", "maxScale", "concurrency", "idle"],
  properties: {
    minScale: { type: "integer", description: "Workers kept running with nothing to do." },
    maxScale: { type: "integer", description: "Most workers the pools start." },
    concurrency: { type: "integer", description: "Attempts one worker runs at once, per lane." },
    idle: { type: "string", description: "How long without tasks before scaling down to `minScale`." },
  },
} as const;

const versionSchema = {
  type: "object",
  required: ["version", "digest", "size", "environment", "createdAt"],
  properties: {
    version: { type: "integer" },
    digest: { type: "string", description: "`sha256:<hex>` of the bundle." },
    size: { type: "integer", description: "Bytes." },
    environment: { type: "string" },
    createdAt: { type: "string", format: "date-time" },
  },
} as const;

const functionSummarySchema = {
  type: "object",
  required: ["name", "version", "digest", "size", "environment", "scale", "health", "updatedAt"],
  properties: {
    name: { type: "string" },
    version: { type: "integer", description: "The latest version: the one new workers load." },
    digest: { type: "string" },
    size: { type: "integer" },
    environment: { type: "string", enum: [...environments] },
    scale: scaleSchema,
    health: {
      type: "object",
      required: ["status"],
      properties: {
        status: { type: "string", enum: ["healthy", "unhealthy"] },
        version: { type: "integer" },
        reason: { type: "string" },
        since: { type: "string", format: "date-time" },
      },
    },
    createdAt: { type: "string", format: "date-time" },
    updatedAt: { type: "string", format: "date-time" },
  },
} as const;

const functionSchema = {
  ...functionSummarySchema,
  required: [...functionSummarySchema.required, "versions", "workers"],
  properties: {
    ...functionSummarySchema.properties,
    versions: { type: "array", items: versionSchema },
    workers: {
      type: "array",
      description:
        "Live workers serving the function, with the package version each loaded (none: a worker of plain modules).",
      items: {
        type: "object",
        required: ["worker", "node", "running", "seenAt"],
        properties: {
          worker: { type: "string" },
          node: { type: "string" },
          version: { type: "integer" },
          digest: { type: "string" },
          running: { type: "integer" },
          seenAt: { type: "string", format: "date-time" },
        },
      },
    },
  },
} as const;

const deployQuerySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    environment: { type: "string", enum: [...environments], default: "node20" },
    minScale: { type: "integer", minimum: 0, maximum: 1000 },
    maxScale: { type: "integer", minimum: 1, maximum: 1000 },
    concurrency: { type: "integer", minimum: 1, maximum: 10_000 },
    idle: { type: "string", pattern: "^[0-9]{1,9}(ms|s|m|h|d)$" },
  },
} as const;

interface NameParams {
  Params: { name: string };
}

interface DeployQuery {
  environment?: Environment;
  minScale?: number;
  maxScale?: number;
  concurrency?: number;
  idle?: string;
}

export function functionRoutes({ executions, limits }: ApiContext): FastifyPluginCallback {
  let store: Promise<PackageStore> | undefined;
  const packages = () => {
    store ??= PackageStore.open(executions.connection.jetstream()).catch((error: unknown) => {
      store = undefined;
      throw error;
    });
    return store;
  };
  let workersKv: Promise<KV> | undefined;
  const workersBucket = () => {
    workersKv ??= openWorkersBucket(executions.connection.jetstream()).catch((error: unknown) => {
      workersKv = undefined;
      throw error;
    });
    return workersKv;
  };

  const view = async (fn: FunctionPackage, store: PackageStore) => {
    const health = await store.health(fn.name);
    const unhealthy = health !== undefined && health.version === fn.version;
    return {
      name: fn.name,
      version: fn.version,
      digest: fn.digest,
      size: fn.size,
      environment: fn.environment,
      scale: viewScale(fn.scale),
      health: unhealthy
        ? { status: "unhealthy", version: health.version, reason: health.reason, since: health.since }
        : { status: "healthy" },
      createdAt: fn.createdAt,
      updatedAt: fn.updatedAt,
    };
  };

  return (app, _options, done) => {
    app.addContentTypeParser(
      packageContentTypes,
      { parseAs: "buffer", bodyLimit: limits.packageLimit },
      (request, body, done_) => {
        request.bodyBytes = (body as Buffer).byteLength;
        done_(null, body);
      },
    );
    // Within this plugin, a body over the limit is a package too large, with the limit's name.
    app.setErrorHandler((error: FastifyError, request, reply) => {
      if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE")
        return handleError(
          new ApiError(
            "PackageTooLarge",
            `the package is larger than this server takes: at most ${limits.packageLimit} bytes (BATON_API_PACKAGE_LIMIT)`,
          ),
          request,
          reply,
        );
      return handleError(error, request, reply);
    });

    app.put<NameParams & { Body: Buffer; Querystring: DeployQuery }>(
      "/v1/functions/:name",
      {
        bodyLimit: limits.packageLimit,
        schema: {
          tags,
          summary:
            "Deploy a function package: the bundle becomes the next version (an identical bundle keeps its version); scale settings in the query",
          consumes: packageContentTypes,
          params: nameParams,
          querystring: deployQuerySchema,
          response: {
            200: { ...functionSummarySchema, description: "Updated (new version), rescaled or unchanged." },
            201: { ...functionSummarySchema, description: "Created." },
            ...problemResponses(400, 413, 415),
          },
        },
      },
      async (request, reply) => {
        const { name } = request.params;
        const body = request.body as unknown;
        if (!Buffer.isBuffer(body) || body.byteLength === 0)
          throw new ApiError(
            "PackageInvalid",
            "send the package as the body: the bundle (one ES module, Content-Type: application/javascript), or an archive of it and the packages it loads at run time (application/gzip), as `baton function deploy` builds them",
          );
        const scale = scaleFrom(request.query);
        try {
          await checkPackage(name, body);
        } catch (error) {
          if (error instanceof PackageRefusedError) throw new ApiError(error.code, error.message);
          throw error;
        }
        const store = await packages();
        const { fn, outcome } = await store.put(name, body, request.query.environment ?? "node20", scale);
        reply.header("baton-deploy-outcome", outcome);
        return reply.code(outcome === "created" ? 201 : 200).send(await view(fn, store));
      },
    );

    app.get(
      "/v1/functions",
      {
        schema: {
          tags,
          summary: "List deployed functions (latest versions), by name",
          response: {
            200: {
              type: "object",
              required: ["items"],
              properties: { items: { type: "array", items: functionSummarySchema } },
            },
            ...problemResponses(),
          },
        },
      },
      async () => {
        const store = await packages();
        const items = [];
        for (const fn of await store.list()) items.push(await view(fn, store));
        return { items };
      },
    );

    app.get<NameParams>(
      "/v1/functions/:name",
      {
        schema: {
          tags,
          summary: "One function: its versions, scale settings, health, and the workers serving it",
          params: nameParams,
          response: { 200: functionSchema, ...problemResponses(400, 404) },
        },
      },
      async (request) => {
        const { name } = request.params;
        const store = await packages();
        const fn = await store.get(name);
        if (fn === undefined)
          throw new ApiError("FunctionNotFound", `no function named "${name}" has been deployed`);
        const versions = (await store.versions(name)).map(
          ({ version, digest, size, environment, createdAt }) => ({
            version,
            digest,
            size,
            environment,
            createdAt,
          }),
        );
        return {
          ...(await view(fn, store)),
          versions,
          workers: await servingWorkers(await workersBucket(), name),
        };
      },
    );

    app.delete<NameParams>(
      "/v1/functions/:name",
      {
        schema: {
          tags,
          summary: "Delete a function: the pools stop its workers; its stored versions stay",
          params: nameParams,
          response: { 204: { type: "null", description: "Deleted." }, ...problemResponses(400, 404) },
        },
      },
      async (request, reply) => {
        const { name } = request.params;
        if (!(await (await packages()).remove(name)))
          throw new ApiError("FunctionNotFound", `no function named "${name}" has been deployed`);
        return reply.code(204).send();
      },
    );
    done();
  };
}

function scaleFrom(query: DeployQuery): ScaleSettings {
  const idleMs = query.idle === undefined ? defaultScale.idleMs : parseDuration(query.idle);
  if (idleMs === undefined || idleMs <= 0)
    throw new ApiError("PackageInvalid", `idle "${query.idle}" is not a positive duration (e.g. 30s, 5m)`, [
      { code: "PackageInvalid", message: "not a positive duration", path: "querystring/idle" },
    ]);
  const scale: ScaleSettings = {
    minScale: query.minScale ?? defaultScale.minScale,
    maxScale: query.maxScale ?? Math.max(defaultScale.maxScale, query.minScale ?? 0),
    concurrency: query.concurrency ?? defaultScale.concurrency,
    idleMs,
  };
  if (scale.minScale > scale.maxScale)
    throw new ApiError(
      "PackageInvalid",
      `minScale (${scale.minScale}) is larger than maxScale (${scale.maxScale})`,
      [{ code: "PackageInvalid", message: "larger than maxScale", path: "querystring/minScale" }],
    );
  return scale;
}

export function viewScale(scale: ScaleSettings) {
  return {
    minScale: scale.minScale,
    maxScale: scale.maxScale,
    concurrency: scale.concurrency,
    idle: formatDuration(scale.idleMs),
  };
}

/** The live workers whose heartbeats name `fn`, with the package version each loaded. */
async function servingWorkers(kv: KV, fn: string) {
  const workers = [];
  for (const key of await listKeys(kv)) {
    const entry = await kv.get(key);
    if (!entry || entry.operation !== "PUT") continue;
    const beat = entry.json<HeartbeatEnvelope>();
    if (!beat.functions.some((served) => served.name === fn)) continue;
    workers.push({
      worker: beat.worker,
      node: beat.node,
      ...(beat.package?.name === fn ? { version: beat.package.version, digest: beat.package.digest } : {}),
      running: beat.running,
      seenAt: entry.created.toISOString(),
    });
  }
  return workers;
}
