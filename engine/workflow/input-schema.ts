/**
 * The execution input check: a workflow's `input` (JSON Schema, draft 2020-12) is compiled once
 * per revision and applied at start, with its defaults filled in. A bad input is refused with
 * `InputInvalid` and every problem listed; no execution is created.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import type { Json, WorkflowDefinition } from "./definition.ts";

export interface InputProblem {
  /** JSON Pointer into the input (`/images/0`), `""` for the whole input. */
  path: string;
  message: string;
}

export type InputCheck = { ok: true; value: Json } | { ok: false; problems: InputProblem[] };

// Schemas are compiled per workflow revision and never looked up by `$id`: `addUsedSchema: false`
// lets two revisions carry the same `$id`.
const ajv = new Ajv2020({ allErrors: true, useDefaults: true, strict: false, addUsedSchema: false });
addFormats.default(ajv);

/** Compiles the workflow's input check; a workflow without `input` accepts anything. */
export function compileInputCheck(definition: WorkflowDefinition): (input: Json) => InputCheck {
  if (definition.input === undefined) return (input) => ({ ok: true, value: input });
  const validate: ValidateFunction = ajv.compile(definition.input);
  return (input) => {
    // Defaults are written into the value, so check a copy: the caller's input stays as sent.
    const value = structuredClone(input);
    if (validate(value)) return { ok: true, value };
    return { ok: false, problems: (validate.errors ?? []).map(describe) };
  };
}

function describe(error: ErrorObject): InputProblem {
  const missing =
    error.keyword === "required" ? (error.params as { missingProperty: string }).missingProperty : undefined;
  return {
    path: missing === undefined ? error.instancePath : `${error.instancePath}/${missing}`,
    message:
      missing === undefined
        ? `${error.instancePath || "input"} ${error.message ?? "is invalid"}`
        : `missing required field "${missing}"`,
  };
}
