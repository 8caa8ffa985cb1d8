/**
 * ajv's errors → problems: the node is checked against one definition of the language schema,
 * and its errors become one problem per missing field, per unknown field, and per value.
 */
import type { ErrorObject, SchemaObject } from "ajv/dist/2020.js";
import type { ValidationCode } from "../../errors.ts";
import { formatPath, type JsonPath } from "../load.ts";
import { didYouMean } from "./did-you-mean.ts";
import type { DocumentCheck } from "./document-check.ts";
import { pointerToPath } from "./json-pointer.ts";
import { allowedFields, kindsByField, resolveLocal, validatorFor } from "./language-schema.ts";
import { describeType, describeValue, orList, quote } from "./wording.ts";

/** Gives some errors a code of their own instead of WrongType or InvalidValue. */
export type CodeOverride = (error: ErrorObject, path: JsonPath) => ValidationCode | undefined;

/** Keywords whose errors only repeat, less precisely, what another error of the same node says. */
export const ignoredKeywords = new Set([
  "propertyNames",
  "if",
  "then",
  "else",
  "oneOf",
  "anyOf",
  "allOf",
  "not",
]);

/** The values an `enum` error allows, as text. */
export function allowedValuesOf(error: ErrorObject): string[] {
  return (error.params as { allowedValues: unknown[] }).allowedValues.map(String);
}

/** The type a `type` error asks for, in words. */
export function expectedTypeOf(error: ErrorObject): string {
  return describeType((error.params as { type: unknown }).type);
}

function valueMessage(check: DocumentCheck, error: ErrorObject, path: JsonPath): string {
  const where = check.where(path);
  const data: unknown = error.data;
  const parent = (error.parentSchema ?? {}) as SchemaObject;
  switch (error.keyword) {
    case "enum": {
      const allowed = allowedValuesOf(error);
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
  const hint = didYouMean(field, allowed);
  if (hint !== "") return `${unknown}${hint}`;
  return `${unknown}; the fields allowed here are ${orList(allowed)}`;
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
        ? `${check.where(path)} must be ${expectedTypeOf(error)}, not ${describeValue(error.data)}`
        : valueMessage(check, error, path);
    if (key.endsWith("#key")) check.atKey(code, path, message);
    else check.atValue(code, path, message);
  }
}

/** Checks the node at `path` against definition `def` of the language schema (`""`: the document). */
export function validateNode(
  check: DocumentCheck,
  def: string,
  value: unknown,
  path: JsonPath,
  override?: CodeOverride,
): void {
  const validate = validatorFor(def);
  if (!validate(value)) reportSchemaErrors(check, validate.errors ?? [], path, value, override);
}
