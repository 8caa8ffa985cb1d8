// A function's declared input schema, compiled once when the worker starts; a task's input is
// checked in the worker before any isolate sees it, and defaults from the schema are filled in.
import { Ajv2020, type ErrorObject } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import type { JsonSchema } from "./define-function.ts";

/** One way an input fails its schema: a JSON Pointer into the input, and what is wrong there. */
export interface InputProblem {
  readonly path: string;
  readonly message: string;
}

/** Checks (and fills in defaults of) an input; returns its problems, or `undefined` when it is valid. */
export type InputValidator = (input: unknown) => InputProblem[] | undefined;

const ajv = new Ajv2020({ allErrors: true, useDefaults: true, strict: false });
addFormats.default(ajv);

/** Compiles `schema`; throws with the function's name when the schema itself is not valid. */
export function compileInputSchema(fn: string, schema: JsonSchema): InputValidator {
  let validate: ReturnType<typeof ajv.compile>;
  try {
    validate = ajv.compile(schema);
  } catch (error) {
    throw new TypeError(
      `function "${fn}": its input schema is not a valid JSON Schema: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  return (input) => (validate(input) ? undefined : (validate.errors ?? []).map(toProblem));
}

function toProblem(error: ErrorObject): InputProblem {
  const missing = (error.params as { missingProperty?: unknown }).missingProperty;
  const path =
    error.keyword === "required" && typeof missing === "string"
      ? `${error.instancePath}/${missing}`
      : error.instancePath;
  return { path, message: error.message ?? error.keyword };
}
