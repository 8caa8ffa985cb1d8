/**
 * The language's JSON Schema, as editors use it: it is itself a valid draft 2020-12 schema
 * (ajv compiles it in its default strict mode without a warning), it names the same step kinds and infra
 * events as the engine, and every example workflow in workflows/ passes it on its own — so an
 * editor driven by the schema agrees with the validator about the examples.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { describe, expect, it } from "vitest";
import { infraEventTypes, stepKinds } from "../../engine/workflow/definition.ts";
import { loadYaml } from "../../engine/workflow/load.ts";
import schema from "../../engine/workflow/schema/workflow.schema.json" with { type: "json" };

const examplesDirectory = join(import.meta.dirname, "../../workflows");

function compileSchema() {
  const warnings: unknown[] = [];
  const log = (...args: unknown[]) => warnings.push(args);
  const ajv = new Ajv2020({
    allErrors: true,
    allowUnionTypes: true,
    logger: { log, warn: log, error: log },
  });
  addFormats.default(ajv); // the draft 2020-12 meta-schema, which `input` refers to, uses formats
  return { validate: ajv.compile(schema), warnings };
}

describe("workflow.schema.json", () => {
  it("is a draft 2020-12 schema that ajv compiles in its default strict mode without a warning", () => {
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(schema.$id).toBe("https://baton.dev/schemas/workflow-v1.json");
    const { warnings } = compileSchema();
    expect(warnings).toEqual([]);
  });

  it("defines every step kind of the engine, and only those", () => {
    const defined = Object.keys(schema.$defs)
      .filter((name) => name.endsWith("Step") && name !== "step")
      .map((name) => name.slice(0, -"Step".length))
      .sort();
    expect(defined).toEqual([...stepKinds].sort());
  });

  it("lists the infra events of the engine", () => {
    expect(schema.$defs.infraTrigger.properties.infra.properties.events.items.enum).toEqual([
      ...infraEventTypes,
    ]);
  });

  it("refuses what the language refuses: an unknown field, a step with two kinds", () => {
    const { validate } = compileSchema();
    const base = { baton: "v1", name: "x", steps: [{ name: "a", call: "f" }] };
    expect(validate(base)).toBe(true);
    expect(validate({ ...base, stpes: [] })).toBe(false);
    expect(validate({ ...base, steps: [{ name: "a", call: "f", emit: { subject: "a" } }] })).toBe(false);
    expect(validate({ ...base, steps: [{ name: "a", call: "f", wiht: {} }] })).toBe(false);
  });
});

describe("example workflows pass the schema alone", () => {
  const files = readdirSync(examplesDirectory)
    .filter((file) => file.endsWith(".yaml"))
    .sort();

  const { validate } = compileSchema();

  it.skipIf(files.length === 0).each(files)("%s", (file) => {
    const { documents, problems } = loadYaml(readFileSync(join(examplesDirectory, file), "utf8"));
    expect(problems).toEqual([]);
    for (const document of documents) {
      const valid = validate(document.value);
      const errors = (validate.errors ?? []).map(
        (error) => `${error.instancePath || "/"} ${error.message ?? ""}`,
      );
      expect(errors, `${file}, the document at line ${document.start.line}`).toEqual([]);
      expect(valid).toBe(true);
    }
  });
});
