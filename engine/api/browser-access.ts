/**
 * What browsers may do (docs/api.md#browsers):
 *
 * - CORS (`@fastify/cors`): only the exact origins of `BATON_API_CORS_ORIGINS` get
 *   `Access-Control-Allow-Origin`; preflights are answered (without that header for any other
 *   origin, which the browser takes as a refusal). None by default.
 * - Websockets are not covered by CORS: an upgrade request carrying an `Origin` is refused (403)
 *   unless the origin is allowed or is the API's own (the console at /ui).
 * - Without tokens (loopback only) any page the user opens could call the API through the
 *   browser: the `Host` header must name a loopback host, so a DNS-rebinding page (its own name
 *   resolving to 127.0.0.1) is refused, and its websockets with it.
 */
import cors from "@fastify/cors";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { isLoopback } from "./auth.ts";
import { ApiError } from "./problems.ts";

/** Headers a browser may send and read across origins. */
const allowedHeaders = ["content-type", "authorization", "idempotency-key"];
const exposedHeaders = ["location", "retry-after", "idempotent-replayed"];

export async function useBrowserAccess(
  app: FastifyInstance,
  options: { origins: readonly string[]; tokenless: boolean },
): Promise<void> {
  const allowed = new Set(options.origins);
  if (options.tokenless)
    app.addHook("onRequest", (request, _reply, done) => {
      const host = hostnameOf(request.headers.host);
      if (host === undefined || !isLoopback(host))
        done(
          new ApiError(
            "Forbidden",
            `Host "${request.headers.host ?? ""}" is not a loopback name; without tokens (BATON_API_TOKENS) the API answers only requests addressed to localhost, 127.0.0.1 or [::1]`,
          ),
        );
      else done();
    });
  app.addHook("onRequest", (request, _reply, done) => {
    const origin = request.headers.origin;
    if (!isUpgrade(request) || origin === undefined) return done();
    if (allowed.has(origin) || isSameOrigin(origin, request.headers.host)) return done();
    done(
      new ApiError(
        "Forbidden",
        `a websocket from origin "${origin}" is not allowed: add it to BATON_API_CORS_ORIGINS`,
      ),
    );
  });
  await app.register(cors, {
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    allowedHeaders,
    exposedHeaders,
    maxAge: 600,
  });
}

/** A CORS preflight: answered by @fastify/cors, with no token (browsers never send one on it). */
export const isPreflight = (request: FastifyRequest): boolean =>
  request.method === "OPTIONS" && request.headers["access-control-request-method"] !== undefined;

const isUpgrade = (request: FastifyRequest): boolean =>
  request.headers.upgrade?.toLowerCase() === "websocket";

/** `localhost:8080` → `localhost`, `[::1]:8080` → `::1`. */
export function hostnameOf(host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  try {
    return new URL(`http://${host}`).hostname.replace(/^\[(.*)\]$/, "$1");
  } catch {
    return undefined;
  }
}

function isSameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === new URL(`http://${host}`).host;
  } catch {
    return false;
  }
}
