/**
 * An http trigger's path: the pattern is in the schema; here, the prefixes Baton serves itself.
 * A route under one of them would be shadowed by (or shadow) the API, so it is refused when the
 * workflow is submitted rather than left to never fire.
 */
import type { JsonPath } from "../load.ts";
import type { DocumentCheck } from "./document-check.ts";
import { orList, quote } from "./wording.ts";

/** What the API serves itself: no route may be one of these or under one. */
export const reservedRoutePrefixes = ["/v1", "/docs", "/ui", "/healthz", "/readyz", "/metrics"] as const;

/** The reserved prefix a path starts with, if any (`/v1`, `/v1/x` and `/v1beta` alike: the text, not segments). */
export function reservedPrefixOf(path: string): string | undefined {
  return reservedRoutePrefixes.find((prefix) => path.startsWith(prefix));
}

export function checkRoutePath(check: DocumentCheck, path: unknown, at: JsonPath): void {
  if (typeof path !== "string" || !/^\/[a-z0-9/_-]*$/.test(path)) return; // the schema's pattern said why
  const reserved = reservedPrefixOf(path);
  if (reserved !== undefined)
    check.atValue(
      "InvalidRoute",
      at,
      `${check.where(at)}: ${quote(path)} starts with ${quote(reserved)}, which Baton serves itself; routes may not start with ${orList(reservedRoutePrefixes.map((prefix) => quote(prefix)))}`,
    );
}
