/** The workflow's own `input`: a user's JSON Schema (draft 2020-12) that must compile. */
import { Ajv2020, type ErrorObject } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { formatPath, type JsonPath } from "../load.ts";
import { didYouMean } from "./did-you-mean.ts";
import type { DocumentCheck } from "./document-check.ts";
import { isRecord } from "./fields.ts";
import { pointerToPath, valueAtPath } from "./json-pointer.ts";
import { allowedValuesOf, expectedTypeOf, ignoredKeywords } from "./schema-errors.ts";
import { describeValue, orList, quote } from "./wording.ts";

/** For the workflow's own `input`, a user's schema: lenient about unknown keywords, like the engine at start. */
const inputSchemaAjv = new Ajv2020({ strict: false, allErrors: true, addUsedSchema: false, logger: false });
addFormats.default(inputSchemaAjv);
const draft202012 = "https://json-schema.org/draft/2020-12/schema";

export function checkInputSchema(check: DocumentCheck, input: unknown, path: JsonPath): void {
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
      if (error.keyword === "type") reason = `must be ${expectedTypeOf(error)}`;
      if (error.keyword === "enum") {
        const allowed = allowedValuesOf(error);
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
