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
import { afterAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
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
