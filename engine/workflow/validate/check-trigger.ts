/** Triggers: one source each (github, schedule, queue, infra, http), checked against its definition. */
import type { SchemaObject } from "ajv/dist/2020.js";
import { formatPath, type JsonPath } from "../load.ts";
import { checkCondition, checkTemplate } from "./check-expressions.ts";
import { checkDuration } from "./check-duration.ts";
import { checkRoutePath } from "./check-route.ts";
import { checkCron, checkTimezone } from "./check-schedule.ts";
import { checkSubject } from "./check-subject.ts";
import { didYouMeanAnyOf } from "./did-you-mean.ts";
import type { DocumentCheck } from "./document-check.ts";
import { isRecord, keysAmong } from "./fields.ts";
import { allowedFields, fieldOwners, shallowDefs } from "./language-schema.ts";
import { validateNode, type CodeOverride } from "./schema-errors.ts";
import { describeValue, orList } from "./wording.ts";

const triggerSources = ["github", "schedule", "queue", "infra", "http"] as const;

/** For "cron belongs inside schedule": the sources whose body defines each field. */
const sourcesByField = fieldOwners(triggerSources, (source) => {
  const wrapper = shallowDefs[`${source}Trigger`]?.properties as Record<string, SchemaObject> | undefined;
  return allowedFields(wrapper?.[source]);
});

/** Event lists name what a source can produce: their mistakes are InvalidTrigger; a route's path is InvalidRoute. */
const eventsOverride: CodeOverride = (error, path) =>
  error.keyword === "type"
    ? undefined
    : path.includes("events")
      ? "InvalidTrigger"
      : path.at(-2) === "http" && path.at(-1) === "path"
        ? "InvalidRoute"
        : undefined;

export function checkTrigger(check: DocumentCheck, trigger: unknown, path: JsonPath): void {
  if (!isRecord(trigger)) {
    check.atValue(
      "WrongType",
      path,
      `a trigger must be a mapping with one source (${orList(triggerSources)}), not ${describeValue(trigger)}`,
    );
    return;
  }
  const sources = keysAmong(trigger, triggerSources);
  const [source, second] = sources;
  if (source === undefined) {
    check.atValue(
      "InvalidTrigger",
      path,
      `the trigger at ${formatPath(path)} names no source: use one of ${orList(triggerSources)}${didYouMeanAnyOf(Object.keys(trigger), triggerSources)}`,
    );
    for (const key of Object.keys(trigger)) {
      const owners = sourcesByField.get(key);
      const where = owners ? `: it belongs inside ${orList(owners.map((owner) => `"${owner}"`))}` : "";
      check.atKey(
        "UnknownField",
        [...path, key],
        `the trigger at ${formatPath(path)} has no field "${key}"${where}`,
      );
    }
    return;
  }
  if (second !== undefined) {
    check.atKey(
      "InvalidTrigger",
      [...path, second],
      `the trigger at ${formatPath(path)} names several sources (${sources.join(", ")}): write one list item per source`,
    );
    return;
  }
  check.label(path, `the ${source} trigger`);
  check.label([...path, source], `the ${source} trigger`);
  validateNode(check, `${source}Trigger`, trigger, path, eventsOverride);
  const body = trigger[source];
  if (!isRecord(body)) return;
  const at = [...path, source];
  if (source !== "http") checkCondition(check, body.when, [...at, "when"]);
  checkTemplate(check, body.input, [...at, "input"]);
  switch (source) {
    case "schedule":
      checkCron(check, body.cron, [...at, "cron"]);
      checkTimezone(check, body.timezone, [...at, "timezone"]);
      return;
    case "queue":
      checkSubject(check, body.subject, [...at, "subject"], { wildcards: true, expressions: false });
      return;
    case "http":
      checkRoutePath(check, body.path, [...at, "path"]);
      checkDuration(check, body.timeout, [...at, "timeout"], true);
      return;
    case "github":
    case "infra":
      return;
    default: {
      const unreachable: never = source;
      throw new Error(`unknown trigger source ${String(unreachable)}`);
    }
  }
}
