/**
 * The `links` of a started execution (docs/api.md#links): where to read it, await its result and
 * follow its events. `result` and `events` carry an access token for that execution alone, so a
 * browser can follow it without an API token; links are relative to the API's origin.
 */
import type { AccessTokens } from "./access-tokens.ts";

export interface ExecutionLinks {
  execution: string;
  result: string;
  events: string;
}

export async function executionLinks(accessTokens: AccessTokens, id: string): Promise<ExecutionLinks> {
  const token = encodeURIComponent(await accessTokens.issue(id));
  return {
    execution: `/v1/executions/${id}`,
    result: `/v1/executions/${id}/result?access_token=${token}`,
    events: `/v1/executions/${id}/events?access_token=${token}`,
  };
}

/** The schema of `links` in answers. */
export const linksSchema = {
  type: "object",
  description:
    "Relative to the API's origin. `result` and `events` carry an access token that reads this execution only (`BATON_API_ACCESS_TTL`).",
  required: ["execution", "result", "events"],
  properties: {
    execution: { type: "string" },
    result: { type: "string", description: "Long poll for the end (GET)." },
    events: { type: "string", description: "The events websocket (connect with ws:// or wss://)." },
  },
} as const;
