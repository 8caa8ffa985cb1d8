/**
 * Validation of workflow documents: every problem at once, each with a stable code, a path, and
 * the line and column where it was written. Pure: no I/O, the same text gives the same problems.
 *
 * How the work is split: the language's JSON Schema (`schema/workflow.schema.json`, the one
 * editors use) checks the closed shapes — fields, types, enums, ranges, name patterns. The
 * validator walks the document itself and hands ajv one node at a time: the document without
 * its steps and triggers, then each step against the definition of its own kind, each trigger
 * against its source's. A step never meets a `oneOf` over eleven kinds, so ajv's errors map to
 * one problem per mistake. Unions and everything JSON Schema cannot say (durations, expressions,
 * subjects, cron, step references, unique names, switch and receive rules) are checked here in
 * code; the definitions that code checks are replaced in the copy of the schema ajv sees.
 */
import { Ajv2020, type ErrorObject, type SchemaObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { Cron } from "croner";
import { distance } from "fastest-levenshtein";
import type { Problem, ValidationCode } from "../errors.ts";
import { stepKinds, type StepKind, type WorkflowDefinition } from "./definition.ts";
import { parseDuration } from "./duration.ts";
import {
  checkExpressionSyntax,
  findSegments,
  isExpression,
  type ExpressionSyntaxProblem,
} from "./expressions.ts";
import {
  formatPath,
  loadYaml,
  noPositions,
  type JsonPath,
  type PathSegment,
  type SourceMap,
} from "./load.ts";
import languageSchema from "./schema/workflow.schema.json" with { type: "json" };

/** The outcome for one document. */
export interface DocumentValidation {
  /** Present when the document has no problems. */
  definition?: WorkflowDefinition;
  /** Sorted by line, then column. */
  problems: Problem[];
}

/** The outcome for a whole text (one or several documents). */
export interface TextValidation {
  /** Per non-empty document, in order. */
  documents: DocumentValidation[];
  /** Every document's definition, when the whole text has no problem; otherwise empty. */
  workflows: WorkflowDefinition[];
  /** Every problem of the text, sorted by line, then column. */
  problems: Problem[];
}

// --- the schema, as ajv sees it -----------------------------------------------------------------

/**
 * Definitions of the language schema that the validator checks in code, each replaced by what
 * ajv should still check. Every one is a union, a rule JSON Schema cannot state, or a value with
 * a code of its own (InvalidDuration, InvalidSubject, ...).
 */
const checkedInCode: Record<string, SchemaObject> = {
  languageVersion: {}, // UnsupportedVersion
  step: {}, // dispatched on the kind key: StepKindMissing, StepKindConflict
  trigger: {}, // dispatched on the source key: InvalidTrigger
  duration: {}, // InvalidDuration
  positiveDuration: {},
  expression: {}, // ExpressionExpected, ExpressionSyntax
  wait: {}, // a duration or { until }
  switchBranchRules: {}, // InvalidSwitchBranch
  receiveRules: {}, // InvalidReceive
  subject: { type: "string" }, // InvalidSubject
  subjectFilter: { type: "string" },
  inputSchema: { type: ["object", "boolean"] }, // InvalidInputSchema
};

const shallowSchemaId = "https://baton.dev/schemas/workflow-v1.validator.json";

function buildShallowSchema(): SchemaObject {
  const copy = structuredClone(languageSchema) as SchemaObject;
  const defs = copy.$defs as Record<string, SchemaObject>;
  for (const [name, replacement] of Object.entries(checkedInCode)) {
    if (!(name in defs)) throw new Error(`workflow.schema.json has no $defs.${name}; update checkedInCode`);
    defs[name] = replacement;
  }
  copy.$id = shallowSchemaId;
  return copy;
}

const shallowSchema = buildShallowSchema();
const shallowDefs = shallowSchema.$defs as Record<string, SchemaObject>;

const languageAjv = new Ajv2020({ allErrors: true, verbose: true, allowUnionTypes: true });
languageAjv.addSchema(shallowSchema);

const validators = new Map<string, ValidateFunction>();

/** The validator of one definition of the (shallow) language schema; `""` is the document itself. */
function validatorFor(def: string): ValidateFunction {
  let validate = validators.get(def);
  if (!validate) {
    const ref = def === "" ? shallowSchemaId : `${shallowSchemaId}#/$defs/${def}`;
    validate = languageAjv.getSchema(ref);
    if (!validate) throw new Error(`no schema ${ref}`);
    validators.set(def, validate);
  }
  return validate;
}

/** For the workflow's own `input`, a user's schema: lenient about unknown keywords, like the engine at start. */
const inputSchemaAjv = new Ajv2020({ strict: false, allErrors: true, addUsedSchema: false, logger: false });
addFormats.default(inputSchemaAjv);
const draft202012 = "https://json-schema.org/draft/2020-12/schema";

// --- small helpers ------------------------------------------------------------------------------

type Fields = Record<string, unknown>;

function isRecord(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function has(value: Fields, key: string): boolean {
  return Object.hasOwn(value, key);
}

function quote(text: string, max = 60): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max - 1)}…` : text);
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return "empty (null)";
  if (typeof value === "string") return `a string (${quote(value, 40)})`;
  if (typeof value === "number") return `a number (${value})`;
  if (typeof value === "boolean") return `${value}`;
  if (Array.isArray(value)) return "a list";
  return "a mapping";
}

const typeNames: Record<string, string> = {
  string: "a string",
  integer: "a whole number",
  number: "a number",
  boolean: "true or false",
  array: "a list",
  object: "a mapping",
  null: "null",
};

function describeType(type: unknown): string {
  const types = Array.isArray(type) ? type : [type];
  return types.map((t) => typeNames[String(t)] ?? String(t)).join(" or ");
}

/** The candidate closest to `name`, when it is close enough to be what the user meant. */
function closest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    if (candidate === name) continue;
    if (candidate.toLowerCase() === name.toLowerCase()) return candidate;
    const d = distance(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  const limit = Math.min(3, Math.floor(name.length / 2));
  if (best !== undefined && bestDistance <= limit) return best;
  // An abbreviation ("expo" for "exponential") is a near miss too.
  return name.length >= 3 ? [...candidates].find((candidate) => candidate.startsWith(name)) : undefined;
}

function didYouMean(name: string, candidates: Iterable<string>): string {
  const suggestion = closest(name, candidates);
  return suggestion === undefined ? "" : ` (did you mean ${JSON.stringify(suggestion)}?)`;
}

function orList(names: readonly string[]): string {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
}

/** Turns ajv's JSON pointer into path segments, list indexes as numbers. */
function pointerToPath(pointer: string, value: unknown): PathSegment[] {
  if (pointer === "") return [];
  const path: PathSegment[] = [];
  let at = value;
  for (const raw of pointer.slice(1).split("/")) {
    const key = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (Array.isArray(at)) {
      const index = Number(key);
      path.push(index);
      at = at[index];
    } else {
      path.push(key);
      at = isRecord(at) ? at[key] : undefined;
    }
  }
  return path;
}

function valueAtPath(root: unknown, path: JsonPath): unknown {
  let at = root;
  for (const segment of path) {
    if (Array.isArray(at) && typeof segment === "number") at = at[segment];
    else if (isRecord(at) && typeof segment === "string") at = at[segment];
    else return undefined;
  }
  return at;
}

/** Resolves `#/$defs/x` references inside the language schema. */
function resolveLocal(schema: SchemaObject): SchemaObject | undefined {
  const ref: unknown = schema.$ref;
  if (typeof ref !== "string" || !ref.startsWith("#/$defs/")) return undefined;
  return shallowDefs[ref.slice("#/$defs/".length)];
}

/** The field names a closed mapping schema allows, following `$ref` and `allOf`. */
function allowedFields(schema: SchemaObject | undefined): string[] {
  if (!schema) return [];
  const fields = Object.keys((schema.properties as object | undefined) ?? {});
  fields.push(...allowedFields(resolveLocal(schema)));
  for (const part of (schema.allOf as SchemaObject[] | undefined) ?? []) fields.push(...allowedFields(part));
  return [...new Set(fields)];
}

/** For "retry belongs to call steps": the step kinds that define each field. */
const kindsByField = (() => {
  const owners = new Map<string, StepKind[]>();
  for (const kind of stepKinds) {
    for (const field of Object.keys((shallowDefs[`${kind}Step`]?.properties as object | undefined) ?? {})) {
      if (field !== kind) owners.set(field, [...(owners.get(field) ?? []), kind]);
    }
  }
  return owners;
})();

const commonStepFields = allowedFields(shallowDefs.stepCommon);
/** Every field some step may have: a step whose kind is unclear is checked against these. */
const anyStepFields = [...commonStepFields, ...stepKinds, ...kindsByField.keys()];

const triggerSources = ["github", "schedule", "queue", "infra"] as const;
type TriggerSource = (typeof triggerSources)[number];

/** For "cron belongs inside schedule": the sources whose body defines each field. */
const sourcesByField = (() => {
  const owners = new Map<string, TriggerSource[]>();
  for (const source of triggerSources) {
    const wrapper = shallowDefs[`${source}Trigger`]?.properties as Record<string, SchemaObject> | undefined;
    for (const field of allowedFields(wrapper?.[source]))
      owners.set(field, [...(owners.get(field) ?? []), source]);
  }
  return owners;
})();

// --- collecting problems ------------------------------------------------------------------------

/** A step list being walked: the names of its steps, the targets a `next` in it may name. */
interface StepList {
  names: Set<string>;
}

interface PendingTarget {
  target: string;
  path: JsonPath;
  list: StepList;
}

/** Everything one document's validation accumulates. */
class DocumentCheck {
  readonly problems: Problem[] = [];
  /** Paths of steps and triggers → how messages name them (`step "fetch"`). */
  private readonly labels = new Map<string, string>();
  /** Paths of steps, formatted. */
  readonly stepPaths = new Set<string>();
  /** Every step name seen so far → the path of its step. */
  readonly stepNames = new Map<string, JsonPath>();
  /** `next` targets, resolved once every step name is known. */
  readonly targets: PendingTarget[] = [];

  constructor(private readonly positions: SourceMap) {}

  label(path: JsonPath, label: string): void {
    this.labels.set(formatPath(path), label);
  }

  /** How a message names the node at `path`: `step "fetch"`, `"retry.attempts" in step "fetch"`. */
  where(path: JsonPath): string {
    for (let length = path.length; length > 0; length--) {
      const label = this.labels.get(formatPath(path.slice(0, length)));
      if (label === undefined) continue;
      if (length === path.length) return label;
      const rest = formatPath(path.slice(length)).replace(/^\./, "");
      return `"${rest}" in ${label}`;
    }
    return path.length === 0 ? "the workflow" : `"${formatPath(path)}"`;
  }

  atValue(code: ValidationCode, path: JsonPath, message: string): void {
    this.add(code, path, message, this.positions.valueAt(path));
  }

  atKey(code: ValidationCode, path: JsonPath, message: string): void {
    this.add(code, path, message, this.positions.keyAt(path));
  }

  atChar(code: ValidationCode, path: JsonPath, offset: number, message: string): void {
    this.add(code, path, message, this.positions.charAt(path, offset));
  }

  private add(
    code: ValidationCode,
    path: JsonPath,
    message: string,
    at: { line: number; column: number },
  ): void {
    this.problems.push({ code, message, path: formatPath(path), line: at.line, column: at.column });
  }
}

/** Sorted by line, then column; the same problem reported twice is kept once. */
function finish(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  const unique = problems.filter((problem) => {
    const key = JSON.stringify([problem.code, problem.path, problem.line, problem.column, problem.message]);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return unique.sort((a, b) => a.line - b.line || a.column - b.column);
}

// --- schema errors → problems -------------------------------------------------------------------

type CodeOverride = (error: ErrorObject, path: JsonPath) => ValidationCode | undefined;

const ignoredKeywords = new Set(["propertyNames", "if", "then", "else", "oneOf", "anyOf", "allOf", "not"]);

function valueMessage(check: DocumentCheck, error: ErrorObject, path: JsonPath): string {
  const where = check.where(path);
  const data: unknown = error.data;
  const parent = (error.parentSchema ?? {}) as SchemaObject;
  switch (error.keyword) {
    case "enum": {
      const allowed = (error.params as { allowedValues: unknown[] }).allowedValues.map(String);
      const hint = typeof data === "string" ? didYouMean(data, allowed) : "";
      return `${where} must be one of ${orList(allowed)}, not ${describeValue(data)}${hint}`;
    }
    case "const":
      return `${where} must be ${JSON.stringify((error.params as { allowedValue: unknown }).allowedValue)}, not ${describeValue(data)}`;
    case "pattern": {
      const title = typeof parent.title === "string" ? parent.title.toLowerCase() : "value";
      const rule =
        typeof parent.description === "string" ? parent.description : `it must match ${parent.pattern}`;
      return `${quote(String(data))} is not a valid ${title}: ${rule}`;
    }
    case "minimum":
    case "exclusiveMinimum":
    case "maximum":
    case "exclusiveMaximum": {
      const { comparison, limit } = error.params as { comparison: string; limit: number };
      const words: Record<string, string> = {
        ">=": "at least",
        ">": "more than",
        "<=": "at most",
        "<": "less than",
      };
      return `${where} must be ${words[comparison] ?? comparison} ${limit}, not ${String(data)}`;
    }
    case "minItems":
    case "minProperties": {
      const { limit } = error.params as { limit: number };
      return limit === 1 ? `${where} must not be empty` : `${where} must have at least ${limit} entries`;
    }
    default:
      return `${where} ${error.message ?? "is invalid"}`;
  }
}

/**
 * Says where an unknown field belongs, most specific first: a field of the mapping just inside
 * (mis-indented), a field of another step kind, a near miss of an allowed field.
 */
function unknownFieldMessage(
  check: DocumentCheck,
  error: ErrorObject,
  path: JsonPath,
  field: string,
): string {
  const parent = error.parentSchema as SchemaObject | undefined;
  const allowed = allowedFields(parent);
  const unknown = `${check.where(path)} has no field "${field}"`;
  const properties = (parent?.properties ?? {}) as Record<string, SchemaObject>;
  const home = allowed.find((name) => {
    const sub = properties[name];
    return sub !== undefined && allowedFields(resolveLocal(sub) ?? sub).includes(field);
  });
  if (home !== undefined) return `${unknown}: it belongs inside "${home}"; indent it under ${home}`;
  const owners = kindsByField.get(field);
  if (owners && check.stepPaths.has(formatPath(path)))
    return `${unknown}: it belongs to ${orList(owners)} steps`;
  const suggestion = closest(field, allowed);
  if (suggestion !== undefined) return `${unknown} (did you mean "${suggestion}"?)`;
  return `${unknown}; the fields allowed here are ${orList(allowed)}`;
}

/**
 * Turns ajv's errors for the node at `base` into problems: one per missing field, one per
 * unknown field, and one per value (the first of its errors, the type error when there is one).
 */
function reportSchemaErrors(
  check: DocumentCheck,
  errors: readonly ErrorObject[],
  base: JsonPath,
  value: unknown,
  override?: CodeOverride,
): void {
  const valueErrors = new Map<string, { error: ErrorObject; path: JsonPath }>();
  for (const error of errors) {
    if (ignoredKeywords.has(error.keyword)) continue;
    const path = [...base, ...pointerToPath(error.instancePath, value)];
    if (error.keyword === "required") {
      const field = (error.params as { missingProperty: string }).missingProperty;
      check.atValue(
        "MissingField",
        [...path, field],
        `${check.where(path)} is missing the required field "${field}"${missingHint(field)}`,
      );
      continue;
    }
    if (error.keyword === "additionalProperties" || error.keyword === "unevaluatedProperties") {
      const params = error.params as { additionalProperty?: string; unevaluatedProperty?: string };
      const field = params.additionalProperty ?? params.unevaluatedProperty ?? "";
      check.atKey("UnknownField", [...path, field], unknownFieldMessage(check, error, path, field));
      continue;
    }
    if (error.propertyName !== undefined) {
      // A mapping key that breaks its pattern (a branch or variable name): point at the key.
      const keyPath = [...path, error.propertyName];
      const key = `${formatPath(keyPath)}#key`;
      if (!valueErrors.has(key))
        valueErrors.set(key, { error: { ...error, data: error.propertyName }, path: keyPath });
      continue;
    }
    const key = formatPath(path);
    const known = valueErrors.get(key);
    if (!known || (error.keyword === "type" && known.error.keyword !== "type"))
      valueErrors.set(key, { error, path });
  }
  for (const [key, { error, path }] of valueErrors) {
    const code = override?.(error, path) ?? (error.keyword === "type" ? "WrongType" : "InvalidValue");
    const message =
      error.keyword === "type"
        ? `${check.where(path)} must be ${describeType((error.params as { type: unknown }).type)}, not ${describeValue(error.data)}`
        : valueMessage(check, error, path);
    if (key.endsWith("#key")) check.atKey(code, path, message);
    else check.atValue(code, path, message);
  }
}

function missingHint(field: string): string {
  const hints: Record<string, string> = {
    baton: ': add "baton: v1"',
    name: ": add name: <a-name> (lowercase letters, digits and dashes)",
    steps: ": add a list of steps",
    next: ": add next: <step-name>",
  };
  return hints[field] ?? "";
}

function validateNode(
  check: DocumentCheck,
  def: string,
  value: unknown,
  path: JsonPath,
  override?: CodeOverride,
): void {
  const validate = validatorFor(def);
  if (!validate(value)) reportSchemaErrors(check, validate.errors ?? [], path, value, override);
}

// --- values checked in code ---------------------------------------------------------------------

function syntaxMessage(problem: ExpressionSyntaxProblem, text: string): string {
  const reason = problem.message.replace(/^Syntax error: (.*)$/, "unexpected token $1");
  return `${reason.charAt(0).toLowerCase()}${reason.slice(1)} (character ${problem.offset + 1} of ${quote(text)})`;
}

/** Checks every `${ }` of one string; returns whether they all parse. */
function checkExpressions(check: DocumentCheck, text: string, path: JsonPath): boolean {
  const problems = checkExpressionSyntax(text);
  for (const problem of problems)
    check.atChar("ExpressionSyntax", path, problem.offset, syntaxMessage(problem, text));
  return problems.length === 0;
}

/** A template: any JSON value whose strings may hold expressions, walked recursively. */
function checkTemplate(check: DocumentCheck, value: unknown, path: JsonPath): void {
  if (typeof value === "string") {
    if (value.includes("${")) checkExpressions(check, value, path);
  } else if (typeof value === "number") {
    if (!Number.isFinite(value))
      check.atValue("InvalidValue", path, `${check.where(path)} is ${value}, which JSON cannot hold`);
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => checkTemplate(check, item, [...path, index]));
  } else if (isRecord(value)) {
    for (const [key, item] of Object.entries(value)) checkTemplate(check, item, [...path, key]);
  }
}

/** `if`, `when`, `match`: a whole `${ ... }` expression. */
function checkCondition(check: DocumentCheck, value: unknown, path: JsonPath): void {
  if (value === undefined) return;
  const where = check.where(path);
  if (typeof value !== "string") {
    const example =
      typeof value === "boolean" || typeof value === "number" ? `"\${ ${value} }"` : `"\${ ... }"`;
    check.atValue(
      "ExpressionExpected",
      path,
      `${where} must be an expression written ${example}, not ${describeValue(value)}`,
    );
    return;
  }
  if (!checkExpressions(check, value, path) || isExpression(value)) return;
  const fix = value.includes("${") ? "one expression with nothing around it" : `"\${ ${value} }"`;
  check.atValue("ExpressionExpected", path, `${where} must be a whole expression: write ${fix}`);
}

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

function checkDuration(check: DocumentCheck, value: unknown, path: JsonPath, positive: boolean): void {
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

function checkRetry(check: DocumentCheck, retry: unknown, path: JsonPath): void {
  if (!isRecord(retry)) return;
  checkDuration(check, retry.delay, [...path, "delay"], false);
  checkDuration(check, retry.maxDelay, [...path, "maxDelay"], true);
}

/**
 * A NATS subject: tokens separated by dots, no empty token, no whitespace. `*` (one token) and
 * `>` (the rest, last) only where `wildcards` is allowed. With `expressions`, `${ }` segments are
 * checked as expressions and each stands for one literal piece of a token.
 */
function checkSubject(
  check: DocumentCheck,
  value: unknown,
  path: JsonPath,
  options: { wildcards: boolean; expressions: boolean },
): void {
  if (typeof value !== "string") return;
  const where = check.where(path);
  const invalid = (reason: string) =>
    check.atValue("InvalidSubject", path, `${where}: ${quote(value)} ${reason}`);
  let literal = value;
  if (value.includes("${")) {
    if (!options.expressions) return invalid("cannot hold expressions: a trigger listens on a fixed subject");
    if (!checkExpressions(check, value, path)) return;
    const { segments } = findSegments(value);
    literal = "";
    let at = 0;
    for (const segment of segments) {
      literal += `${value.slice(at, segment.start)}x`;
      at = segment.end;
    }
    literal += value.slice(at);
  }
  if (literal === "") return invalid("is empty: write tokens separated by dots (orders.created)");
  if (/\s/.test(literal)) return invalid("has whitespace: write tokens separated by dots, without spaces");
  const tokens = literal.split(".");
  if (tokens.some((token) => token === ""))
    return invalid("has an empty token: no leading, trailing or double dots");
  const wildcardAt = tokens.findIndex((token) => token.includes("*") || token.includes(">"));
  if (wildcardAt < 0) return;
  if (!options.wildcards) {
    return invalid(
      "has a wildcard (* or >): only queue triggers listen on wildcards; name one concrete subject",
    );
  }
  for (const [index, token] of tokens.entries()) {
    if (!token.includes("*") && !token.includes(">")) continue;
    if (token !== "*" && token !== ">") return invalid(`has "${token}": * and > must be whole tokens`);
    if (token === ">" && index !== tokens.length - 1)
      return invalid('has ">" before the end: > matches the rest, so it comes last');
  }
}

function checkCron(check: DocumentCheck, cron: unknown, path: JsonPath): void {
  if (typeof cron !== "string") return;
  const invalid = (reason: string) =>
    check.atValue("InvalidCron", path, `${check.where(path)}: ${quote(cron)} ${reason}`);
  const fix = "write 5 fields (minute hour day month weekday), or 6 with seconds first";
  const fields = cron.trim().split(/\s+/).length;
  if (!cron.trim().startsWith("@") && fields !== 5 && fields !== 6)
    return invalid(`has ${fields} fields: ${fix}`);
  let job: Cron | undefined;
  try {
    job = new Cron(cron, { paused: true, mode: "5-or-6-parts" });
    // A fixed start keeps this pure: a pattern with no next time from 2000 never fires at all.
    if (job.nextRun(new Date(Date.UTC(2000, 0, 1))) === null) invalid("never fires: no date matches it");
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).replace(/^CronPattern: /, "");
    invalid(`is not a valid cron expression (${reason.charAt(0).toLowerCase()}${reason.slice(1)}); ${fix}`);
  } finally {
    job?.stop();
  }
}

function checkTimezone(check: DocumentCheck, timezone: unknown, path: JsonPath): void {
  if (typeof timezone !== "string") return;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
  } catch {
    check.atValue(
      "InvalidTimezone",
      path,
      `${check.where(path)}: ${quote(timezone)} is not an IANA time zone; write a name like Europe/Berlin or UTC`,
    );
  }
}

function checkInputSchema(check: DocumentCheck, input: unknown, path: JsonPath): void {
  if (typeof input === "boolean" || !isRecord(input)) return;
  const $schema = input.$schema;
  if ($schema !== undefined && $schema !== draft202012 && $schema !== `${draft202012}#`) {
    check.atValue(
      "InvalidInputSchema",
      [...path, "$schema"],
      `input is written for ${typeof $schema === "string" ? quote($schema) : describeValue($schema)}, but Baton reads JSON Schema draft 2020-12: remove "$schema" or set it to ${draft202012}`,
    );
    return;
  }
  if (!inputSchemaAjv.validateSchema(input)) {
    // The meta-schema reports a bad keyword through several alternatives; keep one error per place.
    const byPlace = new Map<string, ErrorObject>();
    for (const error of inputSchemaAjv.errors ?? []) {
      if (ignoredKeywords.has(error.keyword)) continue;
      const known = byPlace.get(error.instancePath);
      if (!known || (error.keyword === "enum" && known.keyword !== "enum"))
        byPlace.set(error.instancePath, error);
    }
    for (const [pointer, error] of byPlace) {
      const inSchema = pointerToPath(pointer, input);
      const at = [...path, ...inSchema];
      let reason = error.message ?? "is invalid";
      if (error.keyword === "type")
        reason = `must be ${describeType((error.params as { type: unknown }).type)}`;
      if (error.keyword === "enum") {
        const allowed = (error.params as { allowedValues: unknown[] }).allowedValues.map(String);
        const data = valueAtPath(input, inSchema);
        reason = `must be one of ${orList(allowed)}${typeof data === "string" ? didYouMean(data, allowed) : ""}`;
      }
      const where = inSchema.length === 0 ? "the schema" : `"${formatPath(inSchema)}"`;
      check.atValue("InvalidInputSchema", at, `input is not a valid JSON Schema: ${where} ${reason}`);
    }
    return;
  }
  try {
    inputSchemaAjv.compile(input);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    check.atValue("InvalidInputSchema", path, `input is not a usable JSON Schema: ${reason}`);
  } finally {
    inputSchemaAjv.removeSchema(input);
  }
}

// --- steps --------------------------------------------------------------------------------------

function stepLabel(step: Fields, path: JsonPath): string {
  return typeof step.name === "string" ? `step "${step.name}"` : `the step at ${formatPath(path)}`;
}

function checkStepList(check: DocumentCheck, steps: unknown, path: JsonPath): void {
  if (!Array.isArray(steps)) return;
  const names = new Set<string>();
  for (const step of steps) if (isRecord(step) && typeof step.name === "string") names.add(step.name);
  const scope: StepList = { names };
  steps.forEach((step, index) => checkStep(check, step, [...path, index], scope));
}

function checkTarget(check: DocumentCheck, target: unknown, path: JsonPath, list: StepList): void {
  if (typeof target === "string" && !list.names.has(target)) check.targets.push({ target, path, list });
}

function reportTargets(check: DocumentCheck): void {
  for (const { target, path, list } of check.targets) {
    const elsewhere = check.stepNames.get(target);
    const hint =
      elsewhere !== undefined
        ? `: "${target}" is at ${formatPath(elsewhere)}, and a jump stays in its own list`
        : didYouMean(target, list.names);
    check.atValue("UnknownStep", path, `no step named "${target}" in this list${hint}`);
  }
}

function checkStep(check: DocumentCheck, step: unknown, path: JsonPath, list: StepList): void {
  if (!isRecord(step)) {
    check.atValue(
      "WrongType",
      path,
      `a step must be a mapping with a name and one kind (call, switch, ...), not ${describeValue(step)}`,
    );
    return;
  }
  const label = stepLabel(step, path);
  check.label(path, label);
  check.stepPaths.add(formatPath(path));
  if (typeof step.name === "string") {
    const first = check.stepNames.get(step.name);
    if (first === undefined) check.stepNames.set(step.name, path);
    else {
      check.atValue(
        "DuplicateStep",
        [...path, "name"],
        `step name "${step.name}" is already used at ${formatPath(first)}; names are unique in the whole workflow, nested lists included: rename one`,
      );
    }
  }

  const kinds = Object.keys(step).filter((key): key is StepKind =>
    (stepKinds as readonly string[]).includes(key),
  );
  const [kind, second] = kinds;
  if (kind === undefined || second !== undefined) {
    if (kind === undefined) {
      const guess = Object.keys(step)
        .map((key) => closest(key, stepKinds))
        .find((k) => k !== undefined);
      const hint = guess === undefined ? "" : ` (did you mean "${guess}"?)`;
      check.atValue(
        "StepKindMissing",
        path,
        `${label} does not say what it does: add one of ${orList(stepKinds)}${hint}`,
      );
    } else {
      check.atKey(
        "StepKindConflict",
        [...path, second!],
        `${label} has several kinds (${kinds.join(", ")}): a step does one thing; split it into one step per kind`,
      );
    }
    // Without one kind the step's own fields are unclear; still check the common ones, and
    // report the fields no step kind has (a typo stays a typo).
    validateNode(check, "stepCommon", step, path);
    for (const key of Object.keys(step)) {
      if (!anyStepFields.includes(key)) {
        check.atKey(
          "UnknownField",
          [...path, key],
          `${label} has no field "${key}"${didYouMean(key, anyStepFields)}`,
        );
      }
    }
  } else {
    validateNode(check, `${kind}Step`, step, path);
  }

  checkCondition(check, step.if, [...path, "if"]);
  checkDuration(check, step.timeout, [...path, "timeout"], true);
  checkTemplate(check, step.output, [...path, "output"]);
  checkTarget(check, step.next, [...path, "next"], list);
  if (Array.isArray(step.catch)) {
    step.catch.forEach((clause, index) => {
      if (isRecord(clause)) checkTarget(check, clause.next, [...path, "catch", index, "next"], list);
    });
  }
  if (kind !== undefined && second === undefined) checkStepKind(check, kind, step, path, list);
}

function checkStepKind(
  check: DocumentCheck,
  kind: StepKind,
  step: Fields,
  path: JsonPath,
  list: StepList,
): void {
  const body = step[kind];
  const at = [...path, kind];
  switch (kind) {
    case "call":
      checkTemplate(check, step.with, [...path, "with"]);
      checkRetry(check, step.retry, [...path, "retry"]);
      return;
    case "workflow":
      checkTemplate(check, step.with, [...path, "with"]);
      return;
    case "switch":
      if (Array.isArray(body))
        body.forEach((branch, index) => checkBranch(check, branch, [...at, index], body.length, list));
      return;
    case "parallel":
      if (isRecord(body) && isRecord(body.branches)) {
        for (const [name, steps] of Object.entries(body.branches))
          checkStepList(check, steps, [...at, "branches", name]);
      }
      return;
    case "map":
      if (!isRecord(body)) return;
      if (typeof body.items === "string") {
        if (checkExpressions(check, body.items, [...at, "items"]) && !isExpression(body.items)) {
          check.atValue(
            "ExpressionExpected",
            [...at, "items"],
            `${check.where([...at, "items"])} must be an expression giving a list ("\${ $input.images }") or a literal list`,
          );
        }
      } else checkTemplate(check, body.items, [...at, "items"]);
      checkStepList(check, body.steps, [...at, "steps"]);
      return;
    case "wait":
      checkWait(check, body, at);
      return;
    case "receive":
      if (!isRecord(body)) return;
      checkExclusive(
        check,
        body,
        at,
        ["signal", "subject"],
        "InvalidReceive",
        "a receive waits for either a signal or a subject",
      );
      checkSubject(check, body.subject, [...at, "subject"], { wildcards: false, expressions: true });
      checkCondition(check, body.match, [...at, "match"]);
      checkDuration(check, body.timeout, [...at, "timeout"], true);
      return;
    case "emit":
      if (!isRecord(body)) return;
      checkSubject(check, body.subject, [...at, "subject"], { wildcards: false, expressions: true });
      checkTemplate(check, body.data, [...at, "data"]);
      return;
    case "set":
    case "return":
      checkTemplate(check, body, at);
      return;
    case "fail":
      if (isRecord(body)) checkTemplate(check, body.message, [...at, "message"]);
      return;
    default: {
      const unreachable: never = kind;
      throw new Error(`unknown step kind ${String(unreachable)}`);
    }
  }
}

/**
 * Reports when a mapping has both of two keys (at the later one) or neither (at the mapping).
 * Returns the message for "neither" instead of reporting it when `collectNeither` is set.
 */
function checkExclusive(
  check: DocumentCheck,
  body: Fields,
  path: JsonPath,
  [a, b]: [string, string],
  code: ValidationCode,
  rule: string,
  collectNeither = false,
): string | undefined {
  const present = Object.keys(body).filter((key) => key === a || key === b);
  if (present.length === 2)
    check.atKey(code, [...path, present[1]!], `${rule}, not both: remove "${a}" or "${b}"`);
  if (present.length > 0) return undefined;
  const neither = `${rule}: add "${a}" or "${b}"`;
  if (!collectNeither) check.atValue(code, path, `${check.where(path)}: ${neither}`);
  return neither;
}

function checkBranch(
  check: DocumentCheck,
  branch: unknown,
  path: JsonPath,
  count: number,
  list: StepList,
): void {
  if (!isRecord(branch)) return; // the schema reported it
  const rules = [
    checkExclusive(
      check,
      branch,
      path,
      ["when", "default"],
      "InvalidSwitchBranch",
      "a branch is taken on a condition or by default",
      true,
    ),
    checkExclusive(
      check,
      branch,
      path,
      ["next", "steps"],
      "InvalidSwitchBranch",
      "a branch jumps or runs steps",
      true,
    ),
  ].filter((rule) => rule !== undefined);
  // An empty branch is one mistake: say everything it lacks at once.
  if (rules.length > 0)
    check.atValue("InvalidSwitchBranch", path, `${check.where(path)}: ${rules.join("; ")}`);
  // A branch with both `when` and `default` was reported above; "not last" would be the same mistake.
  if (has(branch, "default") && !has(branch, "when") && path.at(-1) !== count - 1) {
    check.atKey(
      "InvalidSwitchBranch",
      [...path, "default"],
      `only the last branch may be the default: move this branch to the end`,
    );
  }
  checkCondition(check, branch.when, [...path, "when"]);
  checkTarget(check, branch.next, [...path, "next"], list);
  checkStepList(check, branch.steps, [...path, "steps"]);
}

function checkWait(check: DocumentCheck, wait: unknown, path: JsonPath): void {
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

// --- triggers -----------------------------------------------------------------------------------

/** Event lists name what a source can produce: their mistakes are InvalidTrigger. */
const eventsOverride: CodeOverride = (error, path) =>
  path.includes("events") && error.keyword !== "type" ? "InvalidTrigger" : undefined;

function checkTrigger(check: DocumentCheck, trigger: unknown, path: JsonPath): void {
  if (!isRecord(trigger)) {
    check.atValue(
      "WrongType",
      path,
      `a trigger must be a mapping with one source (${orList(triggerSources)}), not ${describeValue(trigger)}`,
    );
    return;
  }
  const sources = Object.keys(trigger).filter((key): key is TriggerSource =>
    (triggerSources as readonly string[]).includes(key),
  );
  const [source, second] = sources;
  if (source === undefined) {
    const guess = Object.keys(trigger)
      .map((key) => closest(key, triggerSources))
      .find((s) => s !== undefined);
    const hint = guess === undefined ? "" : ` (did you mean "${guess}"?)`;
    check.atValue(
      "InvalidTrigger",
      path,
      `the trigger at ${formatPath(path)} names no source: use one of ${orList(triggerSources)}${hint}`,
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
  checkCondition(check, body.when, [...at, "when"]);
  checkTemplate(check, body.input, [...at, "input"]);
  switch (source) {
    case "schedule":
      checkCron(check, body.cron, [...at, "cron"]);
      checkTimezone(check, body.timezone, [...at, "timezone"]);
      return;
    case "queue":
      checkSubject(check, body.subject, [...at, "subject"], { wildcards: true, expressions: false });
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

// --- documents ----------------------------------------------------------------------------------

/**
 * Validates one workflow document given as a value (parsed JSON, or a document from
 * {@link loadYaml} with its source map). Without positions every line and column is 0.
 */
export function validateWorkflowValue(
  value: unknown,
  positions: SourceMap = noPositions,
): DocumentValidation {
  const check = new DocumentCheck(positions);
  if (!isRecord(value)) {
    check.atValue(
      "NotAMapping",
      [],
      `a workflow document is a mapping with baton, name and steps (and more), not ${describeValue(value)}`,
    );
    return { problems: check.problems };
  }
  if (has(value, "baton") && value.baton !== "v1") {
    const version = typeof value.baton === "string" ? quote(value.baton) : describeValue(value.baton);
    check.atValue(
      "UnsupportedVersion",
      ["baton"],
      `${version} is not a language version this engine knows: write "baton: v1", the only version`,
    );
  }
  validateNode(check, "", value, []);
  checkInputSchema(check, value.input, ["input"]);
  checkTemplate(check, value.output, ["output"]);
  checkDuration(check, value.timeout, ["timeout"], true);
  checkRetry(check, value.retry, ["retry"]);
  if (Array.isArray(value.triggers))
    value.triggers.forEach((trigger, index) => checkTrigger(check, trigger, ["triggers", index]));
  checkStepList(check, value.steps, ["steps"]);
  reportTargets(check);
  const problems = finish(check.problems);
  return problems.length === 0
    ? { definition: value as unknown as WorkflowDefinition, problems }
    : { problems };
}

/**
 * Validates workflow text: YAML (or JSON) with one or several documents separated by `---`.
 * Reports every problem of every document at once, plus `DuplicateWorkflow` when two documents
 * share a name. `workflows` holds the definitions only when the whole text is valid: a file is
 * accepted or refused as a whole.
 */
export function validateWorkflowText(text: string): TextValidation {
  const loaded = loadYaml(text);
  const documents: DocumentValidation[] = [];
  const problems = [...loaded.problems];
  const names = new Map<string, number>();
  for (const document of loaded.documents) {
    if (document.problems.length > 0) {
      documents.push({ problems: document.problems });
      continue;
    }
    const result = validateWorkflowValue(document.value, document.positions);
    const name = isRecord(document.value) ? document.value.name : undefined;
    if (typeof name === "string") {
      const firstLine = names.get(name);
      if (firstLine === undefined) names.set(name, document.start.line);
      else {
        const at = document.positions.valueAt(["name"]);
        result.problems = finish([
          ...result.problems,
          {
            code: "DuplicateWorkflow",
            message: `workflow "${name}" is already defined by the document at line ${firstLine}: rename one of them`,
            path: "name",
            line: at.line,
            column: at.column,
          },
        ]);
        delete result.definition;
      }
    }
    problems.push(...result.problems);
    documents.push(result);
  }
  if (loaded.documents.length === 0 && problems.length === 0) {
    problems.push({
      code: "NotAMapping",
      message: "the text holds no workflow: write a mapping with baton, name and steps",
      path: formatPath([]),
      line: 1,
      column: 1,
    });
  }
  const sorted = finish(problems);
  const workflows = sorted.length === 0 ? documents.map((document) => document.definition!) : [];
  return { documents, workflows, problems: sorted };
}
