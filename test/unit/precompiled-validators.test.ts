/**
 * The compiled `baton` validates workflows with the language schema's validators precompiled at
 * build time (ajv's standalone code, engine/workflow/validate/language-schema.ts). They must judge
 * every document exactly as the validators compiled at run time do: the same errors, with the
 * same schema context (the validator's messages read `parentSchema` and `data`).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { ValidateFunction } from "ajv";
import { afterAll, describe, expect, it, onTestFinished } from "vitest";
import { parseAllDocuments } from "yaml";
import { Ajv2020 } from "ajv/dist/2020.js";
import { precompiledMetaValidatorSource } from "../../engine/workflow/validate/check-input-schema.ts";
import {
  precompiledValidatorsSource,
  shallowDefs,
  validatorFor,
} from "../../engine/workflow/validate/language-schema.ts";

const root = join(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "baton-validators-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function documents(): { file: string; value: unknown }[] {
  const found = [];
  for (const folder of ["workflows", "workflows/invalid", "workflows/examples"]) {
    let files: string[];
    try {
      files = readdirSync(join(root, folder));
    } catch {
      continue;
    }
    for (const file of files.filter((name) => name.endsWith(".yaml")).sort())
      for (const document of parseAllDocuments(readFileSync(join(root, folder, file), "utf8")))
        found.push({ file: `${folder}/${file}`, value: document.toJS() as unknown });
  }
  return found;
}

const judged = (validate: ValidateFunction, value: unknown) => ({
  valid: validate(value),
  errors: structuredClone(validate.errors ?? []),
});

describe("precompiled language validators", () => {
  it("give the same verdicts and errors as the validators compiled at run time, on every example", async () => {
    const file = join(dir, "language-validators.mjs");
    writeFileSync(file, precompiledValidatorsSource());
    const precompiled = (await import(pathToFileURL(file).href)) as Record<string, ValidateFunction>;
    const all = documents();
    expect(all.length).toBeGreaterThan(40);
    let invalid = 0;
    for (const { file: name, value } of all) {
      const expected = judged(validatorFor(""), value);
      if (!expected.valid) invalid += 1;
      expect({ name, ...judged(precompiled.document!, value) }).toEqual({ name, ...expected });
      // Every definition the validator may ask for one at a time, on each step of the document.
      const steps = (value as { steps?: unknown[] } | null)?.steps ?? [];
      for (const def of Object.keys(shallowDefs))
        for (const step of Array.isArray(steps) ? steps : [])
          expect({ name, def, ...judged(precompiled[def]!, step) }).toEqual({
            name,
            def,
            ...judged(validatorFor(def), step),
          });
    }
    // The examples must exercise the error path, not only valid documents.
    expect(invalid).toBeGreaterThan(5);
  });
});

describe("precompiled meta-schema validator", () => {
  it("judges every example's input schema, and broken ones, as ajv's own meta-schema check does", async () => {
    // Inside the repo, as dist/cli is: the module requires ajv's runtime helpers from node_modules.
    const near = mkdtempSync(join(root, "node_modules", ".baton-meta-"));
    onTestFinished(() => rmSync(near, { recursive: true, force: true }));
    const file = join(near, "input-schema-meta-validator.mjs");
    writeFileSync(file, precompiledMetaValidatorSource());
    // Imported as the compiled `baton` imports it: an ES module beside the bundle.
    const { meta } = (await import(pathToFileURL(file).href)) as { meta: ValidateFunction };
    const ajv = new Ajv2020({ strict: false, allErrors: true, addUsedSchema: false, logger: false });
    const reference = (schema: unknown) => ({
      valid: ajv.validateSchema(schema as object),
      errors: structuredClone(ajv.errors ?? []),
    });
    const schemas: unknown[] = documents()
      .map(({ value }) => (value as { input?: unknown } | null)?.input)
      .filter((input) => input !== undefined);
    expect(schemas.length).toBeGreaterThan(10);
    schemas.push(
      { type: "strin" },
      { type: "object", properties: { a: { minLength: -1 } } },
      { required: "a" },
      { enum: [] },
      { items: [{ type: "string" }] },
      { type: "object", properties: { n: { type: "number", multipleOf: 0 } }, $defs: { x: { const: 1 } } },
      { anyOf: [], allOf: [{ uniqueItems: "yes" }] },
    );
    let invalid = 0;
    for (const schema of schemas) {
      const expected = reference(schema);
      if (!expected.valid) invalid += 1;
      expect({ schema, valid: meta(schema), errors: structuredClone(meta.errors ?? []) }).toEqual({
        schema,
        ...expected,
      });
    }
    expect(invalid).toBeGreaterThanOrEqual(6);
  });
});
