/** The workflow's own `input`: a user's JSON Schema (draft 2020-12) that must compile. */
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import standalone from "ajv/dist/standalone/index.js";
import { formatPath, type JsonPath } from "../load.ts";
import { didYouMean } from "./did-you-mean.ts";
import type { DocumentCheck } from "./document-check.ts";
import { isRecord } from "./fields.ts";
import { pointerToPath, valueAtPath } from "./json-pointer.ts";
import { allowedValuesOf, expectedTypeOf, ignoredKeywords } from "./schema-errors.ts";
import { describeValue, orList, quote } from "./wording.ts";

const draft202012 = "https://json-schema.org/draft/2020-12/schema";

/**
 * For the workflow's own `input`, a user's schema: lenient about unknown keywords, like the engine
 * at start. The schema is checked against the meta-schema first (below), so compiling it does not
 * check it again.
 */
function inputSchemaAjvOf(forSource = false): Ajv2020 {
  const ajv = new Ajv2020({
    strict: false,
    allErrors: true,
    addUsedSchema: false,
    logger: false,
    validateSchema: false,
    ...(forSource ? { code: { source: true, esm: true } } : {}),
  });
  addFormats.default(ajv);
  return ajv;
}
const inputSchemaAjv = inputSchemaAjvOf();

/**
 * The draft 2020-12 meta-schema's validator as one ES module of plain JavaScript (ajv's standalone
 * code). Compiling the meta-schema is most of a `baton validate` (about 65 ms of its 170), so
 * `npm run build` writes this beside the compiled module, as for the language schema's validators.
 */
export function precompiledMetaValidatorSource(): string {
  const ajv = inputSchemaAjvOf(true);
  ajv.getSchema(draft202012);
  // The code calls ajv's runtime helpers (deep equality) through `require`, which an ES module lacks.
  return (
    'import { createRequire } from "node:module"; const require = createRequire(import.meta.url);\n' +
    standalone.default(ajv, { meta: draft202012 })
  );
}

/** The file name of that module, beside this one in dist/ (and the command line's bundle). */
export const precompiledMetaValidatorFile = "input-schema-meta-validator.js";

/** Running the compiled code, the precompiled meta-schema validator; otherwise ajv compiles it on first use. */
const precompiledMeta: ValidateFunction | undefined = import.meta.url.endsWith(".js")
  ? await import(new URL(precompiledMetaValidatorFile, import.meta.url).href).then(
      (module: { meta?: ValidateFunction }) => module.meta,
      () => undefined,
    )
  : undefined;

/** The problems the draft 2020-12 meta-schema finds in `schema`, or `undefined` when it is a valid schema. */
export function metaSchemaErrors(schema: unknown): ErrorObject[] | undefined {
  if (precompiledMeta) return precompiledMeta(schema) ? undefined : (precompiledMeta.errors ?? []);
  return inputSchemaAjv.validateSchema(schema as object) ? undefined : (inputSchemaAjv.errors ?? []);
}

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
  const metaErrors = metaSchemaErrors(input);
  if (metaErrors !== undefined) {
    // The meta-schema reports a bad keyword through several alternatives; keep one error per place.
    const byPlace = new Map<string, ErrorObject>();
    for (const error of metaErrors) {
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
