/** Durations (`250ms`, `5s`, `10m`, `2h`, `7d`), with a hint for the usual near misses. */
import { parseDuration } from "../duration.ts";
import type { JsonPath } from "../load.ts";
import type { DocumentCheck } from "./document-check.ts";
import { isRecord } from "./fields.ts";
import { describeValue } from "./wording.ts";

const durationPattern = /^\d+(ms|s|m|h|d)$/;
const unitWords: [RegExp, string][] = [
  [/^(milliseconds?|millis|msecs?)$/i, "ms"],
  [/^(seconds?|secs?|sec)$/i, "s"],
  [/^(minutes?|mins?)$/i, "m"],
  [/^(hours?|hrs?)$/i, "h"],
  [/^(days?)$/i, "d"],
];

function durationHint(value: unknown): string {
  if (typeof value === "number" && Number.isInteger(value)) return ` (add a unit: "${value}s"?)`;
  if (typeof value !== "string") return "";
  const match = /^\s*(\d+)\s*([A-Za-z]*)\s*$/.exec(value);
  if (!match) return "";
  const [, amount, unit = ""] = match;
  if (unit === "") return ` (add a unit: "${amount}s"?)`;
  const known = ["ms", "s", "m", "h", "d"].find((u) => u === unit.toLowerCase());
  const word = known ?? unitWords.find(([pattern]) => pattern.test(unit))?.[1];
  return word === undefined ? "" : ` (did you mean "${amount}${word}"?)`;
}

export function checkDuration(check: DocumentCheck, value: unknown, path: JsonPath, positive: boolean): void {
  if (value === undefined) return;
  const where = check.where(path);
  if (typeof value !== "string" || !durationPattern.test(value)) {
    check.atValue(
      "InvalidDuration",
      path,
      `${where} must be a duration, a whole number with a unit (250ms, 5s, 10m, 2h, 7d), not ${describeValue(value)}${durationHint(value)}`,
    );
  } else if (positive && parseDuration(value) === 0) {
    check.atValue("InvalidDuration", path, `${where} must be longer than zero, not "${value}"`);
  }
}

/** A retry policy: the schema checks its numbers and enums; its durations are checked here. */
export function checkRetry(check: DocumentCheck, retry: unknown, path: JsonPath): void {
  if (!isRecord(retry)) return;
  checkDuration(check, retry.delay, [...path, "delay"], false);
  checkDuration(check, retry.maxDelay, [...path, "maxDelay"], true);
}
