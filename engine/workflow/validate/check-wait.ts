/** A wait step's body: a duration, or `{ until }` a time or an expression giving one. */
import type { JsonPath } from "../load.ts";
import { checkDuration } from "./check-duration.ts";
import { checkExpressions } from "./check-expressions.ts";
import type { DocumentCheck } from "./document-check.ts";
import { isRecord } from "./fields.ts";
import { validateNode } from "./schema-errors.ts";
import { quote } from "./wording.ts";

export function checkWait(check: DocumentCheck, wait: unknown, path: JsonPath): void {
  if (!isRecord(wait)) {
    checkDuration(check, wait, path, false);
    return;
  }
  validateNode(check, "waitUntil", wait, path);
  const until = wait.until;
  if (typeof until !== "string") return;
  const at = [...path, "until"];
  if (until.includes("${")) {
    checkExpressions(check, until, at);
  } else if (!/^\d{4}-\d{2}-\d{2}T/.test(until) || Number.isNaN(Date.parse(until))) {
    check.atValue(
      "InvalidValue",
      at,
      `${check.where(at)} must be an ISO 8601 time (2026-01-01T09:00:00Z) or an expression giving one, not ${quote(until)}`,
    );
  }
}
