/**
 * The project file's JSON Schema (engine/functions/project.schema.json): the repository's own
 * baton.yaml follows it, every module it names exists, and mistakes are refused.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import projectSchema from "../../engine/functions/project.schema.json" with { type: "json" };

const root = join(import.meta.dirname, "../..");
const validate = new Ajv2020({ allErrors: true, strict: false }).compile(projectSchema);

describe("baton.yaml", () => {
  it("declares the repository's functions and workflows, and follows the schema", () => {
    const project = parse(readFileSync(join(root, "baton.yaml"), "utf8")) as {
      functions: { module: string }[];
      workflows: string[];
    };
    expect(validate(project), JSON.stringify(validate.errors)).toBe(true);
    expect(project.functions.length).toBeGreaterThan(0);
    for (const { module } of project.functions) expect(existsSync(join(root, module)), module).toBe(true);
    expect(project.workflows).toEqual(["workflows/"]);
  });

  it.each([
    ["an unknown field", { baton: "project/v1", functoins: [] }],
    ["another version", { baton: "project/v2" }],
    ["a function without a module", { baton: "project/v1", functions: [{ name: "add" }] }],
    ["a bad function name", { baton: "project/v1", functions: [{ module: "a.ts", name: "Add" }] }],
    [
      "an unknown environment",
      { baton: "project/v1", functions: [{ module: "a.ts", environment: "python3" }] },
    ],
    [
      "an idle that is no duration",
      { baton: "project/v1", functions: [{ module: "a.ts", scale: { idle: "soon" } }] },
    ],
    ["a maxScale of 0", { baton: "project/v1", functions: [{ module: "a.ts", scale: { maxScale: 0 } }] }],
  ])("refuses %s", (_what, document) => {
    expect(validate(document)).toBe(false);
  });
});
