/**
 * HTTP routes (the `http` trigger source, docs/triggers.md): which workflow serves which method
 * and path, their settings with defaults filled in, and the conflicts a new definition would
 * make. The routes themselves are served by the API (engine/api/routes/http-routes.ts); a request
 * becomes a trigger event of source `http` whose subject is the route key (`POST /train`), so the
 * matcher and the deliveries treat it like any other event.
 */
import { durationMs } from "../workflow/duration.ts";
import type { HttpMethod, HttpTrigger, WorkflowDefinition } from "../workflow/definition.ts";
import type { ArmedWorkflow } from "./trigger-registry.ts";

export const defaultRouteMethod: HttpMethod = "POST";
/** A route's rate limit unless it sets `rate`. */
export const defaultRouteRate = "20/s";
/** How long a `respond: sync` route waits unless it sets `timeout`. */
export const defaultSyncTimeout = "10s";

/** `<METHOD> <path>`: what two routes must not share, and the subject of the events a route makes. */
export const routeKeyOf = (trigger: HttpTrigger): string =>
  `${trigger.http.method ?? defaultRouteMethod} ${trigger.http.path}`;

export interface HttpRoute {
  key: string;
  workflow: string;
  revision: number;
  trigger: HttpTrigger;
  method: HttpMethod;
  path: string;
  respond: "async" | "sync";
  timeoutMs: number;
  auth: "none" | "token";
  rate: { max: number; windowMs: number };
}

const rateWindows = { s: 1_000, m: 60_000, h: 3_600_000 } as const;

/** `20/s` → at most 20 requests per 1000 ms. The schema has checked the form. */
export function parseRate(rate: string): { max: number; windowMs: number } {
  const [count, unit] = rate.split("/") as [string, keyof typeof rateWindows];
  return { max: Number(count), windowMs: rateWindows[unit] };
}

function routeOf(workflow: ArmedWorkflow, trigger: HttpTrigger): HttpRoute {
  const { http } = trigger;
  return {
    key: routeKeyOf(trigger),
    workflow: workflow.workflow,
    revision: workflow.revision,
    trigger,
    method: http.method ?? defaultRouteMethod,
    path: http.path,
    respond: http.respond ?? "async",
    timeoutMs: durationMs(http.timeout ?? defaultSyncTimeout),
    auth: http.auth ?? "none",
    rate: parseRate(http.rate ?? defaultRouteRate),
  };
}

const httpTriggersOf = (triggers: ArmedWorkflow["triggers"]): HttpTrigger[] =>
  triggers.filter((trigger): trigger is HttpTrigger => "http" in trigger);

/**
 * Every route of the armed workflows, by key. Submissions refuse a second claim (RouteConflict),
 * but two API replicas could each accept one at the same moment: then the workflow whose name
 * sorts first serves the route, the same on every replica.
 */
export function routeTable(workflows: readonly ArmedWorkflow[]): Map<string, HttpRoute> {
  const table = new Map<string, HttpRoute>();
  for (const workflow of [...workflows].sort((a, b) => a.workflow.localeCompare(b.workflow)))
    for (const trigger of httpTriggersOf(workflow.triggers)) {
      const route = routeOf(workflow, trigger);
      if (!table.has(route.key)) table.set(route.key, route);
    }
  return table;
}

/** The routes of `definition` that another armed workflow already serves, with the holder. */
export function routeConflicts(
  definition: WorkflowDefinition,
  workflows: readonly ArmedWorkflow[],
): { key: string; holder: string }[] {
  const held = new Map<string, string>();
  for (const workflow of workflows)
    if (workflow.workflow !== definition.name)
      for (const trigger of httpTriggersOf(workflow.triggers))
        held.set(routeKeyOf(trigger), workflow.workflow);
  const conflicts: { key: string; holder: string }[] = [];
  for (const trigger of httpTriggersOf(definition.triggers ?? [])) {
    const holder = held.get(routeKeyOf(trigger));
    if (holder !== undefined) conflicts.push({ key: routeKeyOf(trigger), holder });
  }
  return conflicts;
}
