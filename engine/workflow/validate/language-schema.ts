/**
 * The language schema as ajv sees it: `schema/workflow.schema.json` with the definitions checked
 * in code replaced, compiled one definition at a time, and what it says about fields.
 */
import { Ajv2020, type SchemaObject, type ValidateFunction } from "ajv/dist/2020.js";
import { stepKinds } from "../definition.ts";
import standalone from "ajv/dist/standalone/index.js";
import languageSchema from "../schema/workflow.schema.json" with { type: "json" };

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
/** The definitions of the shallow schema, by name. */
export const shallowDefs = shallowSchema.$defs as Record<string, SchemaObject>;

const languageAjvOptions = { allErrors: true, verbose: true, allowUnionTypes: true } as const;

/** An ajv holding the shallow language schema; `forSource` keeps the generated code for standalone output. */
function languageAjvOf(forSource = false): Ajv2020 {
  const ajv = new Ajv2020(
    forSource ? { ...languageAjvOptions, code: { source: true, esm: true } } : languageAjvOptions,
  );
  ajv.addSchema(shallowSchema);
  return ajv;
}

const refOf = (def: string) => (def === "" ? shallowSchemaId : `${shallowSchemaId}#/$defs/${def}`);
/** The export name of a definition's validator in the precompiled module; `""` is `document`. */
const exportOf = (def: string) => (def === "" ? "document" : def);

/**
 * The validators of the document and of every definition as one ES module of plain JavaScript
 * (ajv's standalone code): `npm run build` writes it beside the compiled validator, so that the
 * compiled `baton` does not compile the language schema at every start (about 150 ms of CPU).
 */
export function precompiledValidatorsSource(): string {
  const refs = Object.fromEntries(
    ["", ...Object.keys(shallowDefs)].map((def) => [exportOf(def), refOf(def)]),
  );
  return standalone.default(languageAjvOf(true), refs);
}

/** The file name of that module, beside this one in dist/. */
export const precompiledValidatorsFile = "language-validators.js";

/**
 * The precompiled validators when running the compiled code (dist/); when running the sources,
 * or when the module is missing, the schema is compiled on first use instead.
 */
const precompiled: Record<string, ValidateFunction> | undefined = import.meta.url.endsWith(".js")
  ? await import(new URL(precompiledValidatorsFile, import.meta.url).href).then(
      (module: Record<string, ValidateFunction>) => module,
      () => undefined,
    )
  : undefined;

let languageAjv: Ajv2020 | undefined;
const validators = new Map<string, ValidateFunction>();

/** The validator of one definition of the (shallow) language schema; `""` is the document itself. */
export function validatorFor(def: string): ValidateFunction {
  let validate = validators.get(def);
  if (!validate) {
    validate = precompiled?.[exportOf(def)] ?? (languageAjv ??= languageAjvOf()).getSchema(refOf(def));
    if (!validate) throw new Error(`no schema ${refOf(def)}`);
    validators.set(def, validate);
  }
  return validate;
}

/** Resolves `#/$defs/x` references inside the language schema. */
export function resolveLocal(schema: SchemaObject): SchemaObject | undefined {
  const ref: unknown = schema.$ref;
  if (typeof ref !== "string" || !ref.startsWith("#/$defs/")) return undefined;
  return shallowDefs[ref.slice("#/$defs/".length)];
}

/** The field names a closed mapping schema allows, following `$ref` and `allOf`. */
export function allowedFields(schema: SchemaObject | undefined): string[] {
  if (!schema) return [];
  const fields = Object.keys((schema.properties as object | undefined) ?? {});
  fields.push(...allowedFields(resolveLocal(schema)));
  for (const part of (schema.allOf as SchemaObject[] | undefined) ?? []) fields.push(...allowedFields(part));
  return [...new Set(fields)];
}

/** Each field → the owners (step kinds, trigger sources) whose body defines it, in `owners` order. */
export function fieldOwners<T extends string>(
  owners: readonly T[],
  fieldsOf: (owner: T) => Iterable<string>,
): Map<string, T[]> {
  const byField = new Map<string, T[]>();
  for (const owner of owners) {
    for (const field of fieldsOf(owner)) byField.set(field, [...(byField.get(field) ?? []), owner]);
  }
  return byField;
}

/** For "retry belongs to call steps": the step kinds that define each field. */
export const kindsByField = fieldOwners(stepKinds, (kind) =>
  Object.keys((shallowDefs[`${kind}Step`]?.properties as object | undefined) ?? {}).filter(
    (field) => field !== kind,
  ),
);

const commonStepFields = allowedFields(shallowDefs.stepCommon);
/** Every field some step may have: a step whose kind is unclear is checked against these. */
export const anyStepFields = [...commonStepFields, ...stepKinds, ...kindsByField.keys()];
