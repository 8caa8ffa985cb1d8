/**
 * Who may make a request: the `onRequest` check of every route that is not public.
 *
 * - An execution access token (`?access_token=`, or `Authorization: Bearer` with one) is checked
 *   whenever one is presented, tokens configured or not: valid, unexpired, and used to read its
 *   own execution (`GET /v1/executions/{id}`, `.../result`, `.../events`), else 403 Forbidden.
 * - Otherwise the API's bearer tokens (auth.ts): missing or wrong, 401 Unauthorized.
 */
import type { FastifyRequest } from "fastify";
import type { AccessTokens } from "./access-tokens.ts";
import { createTokenCheck } from "./auth.ts";
import { isPreflight } from "./browser-access.ts";
import { ApiError } from "./problems.ts";

/** The routes an execution access token reads, by their fastify URL. */
const readRoutes = new Set(["/v1/executions/:id", "/v1/executions/:id/result", "/v1/executions/:id/events"]);

const jwtPattern = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export type AccessCheck = (request: FastifyRequest) => Promise<void>;

export function createAccessCheck(tokens: readonly string[], accessTokens: AccessTokens): AccessCheck {
  const isAuthorized = createTokenCheck(tokens);
  return async (request) => {
    if (request.routeOptions.config?.isPublic || isPreflight(request)) return;
    const access = accessTokenOf(request, isAuthorized);
    if (access !== undefined) {
      const grant = await accessTokens.verify(access);
      if (!grant)
        throw new ApiError(
          "Forbidden",
          "the access token is not valid or has expired: start a new execution",
        );
      const { url } = request.routeOptions;
      const id = (request.params as { id?: unknown } | undefined)?.id;
      if (
        (request.method !== "GET" && request.method !== "HEAD") ||
        url === undefined ||
        !readRoutes.has(url) ||
        id !== grant.execution
      )
        throw new ApiError(
          "Forbidden",
          `this access token only reads execution ${grant.execution} (GET /v1/executions/${grant.execution}, its /result and /events)`,
        );
      return;
    }
    if (isAuthorized(request.headers.authorization)) return;
    throw unauthorized();
  };
}

/** Throws 401 with the `WWW-Authenticate` the reply should carry (set by the caller's hook). */
export const unauthorized = (): ApiError =>
  new ApiError("Unauthorized", "send Authorization: Bearer <token> with a token from BATON_API_TOKENS");

function accessTokenOf(
  request: FastifyRequest,
  isAuthorized: (authorization: string | undefined) => boolean,
): string | undefined {
  const query = (request.query as { access_token?: unknown } | undefined)?.access_token;
  if (typeof query === "string") return query;
  const bearer = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? "")?.[1];
  // An API token is never taken for an access token, whatever it looks like.
  if (bearer !== undefined && jwtPattern.test(bearer) && !isAuthorized(request.headers.authorization))
    return bearer;
  return undefined;
}
