/** What every group of routes is given. */
import type { ApiConfig } from "../config.ts";
import type { Executions } from "../orchestrator/executions.ts";
import type { Triggers } from "../triggers/matcher.ts";
import type { AccessTokens } from "./access-tokens.ts";
import type { ProgressRelay } from "./progress-relay.ts";
import type { ApiMetrics } from "./metrics.ts";
import type { Readiness } from "./readiness.ts";

/** The limits and waits the routes enforce: `ApiConfig` without where to listen and who may call. */
export type ApiLimits = Pick<
  ApiConfig,
  "bodyLimit" | "workflowLimit" | "inputLimit" | "packageLimit" | "maxWaitMs"
>;

export interface ApiContext {
  executions: Executions;
  limits: ApiLimits;
  metrics: ApiMetrics;
  readiness: Readiness;
  /** Aborted when the server begins to close: long polls answer, event streams end. */
  closing: AbortSignal;
  /** Receives events from outside (webhooks, `POST /v1/events`) and knows their deliveries. */
  triggers: Triggers;
  /** Secrets GitHub webhooks may be signed with (`BATON_GITHUB_SECRET`). */
  githubSecrets: string[];
  /** Attempts' progress reports, live and the last per execution. */
  progress: ProgressRelay;
  /** Issues and checks the execution access tokens of `links`. */
  accessTokens: AccessTokens;
  /** Whether an `Authorization` header carries one of the API's bearer tokens (always, without tokens). */
  isAuthorized: (authorization: string | undefined) => boolean;
  /** The console's trace link template (`BATON_UI_TRACE_URL`). */
  uiTraceUrl?: string | undefined;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** Reachable without a bearer token (health and readiness). */
    isPublic?: boolean;
  }
}
