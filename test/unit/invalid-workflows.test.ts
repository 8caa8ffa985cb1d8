/**
 * workflows/invalid/: every broken example gives exactly the problems its `.expected.json` lists
 * (code, path, line and column; no more, no fewer), and together the examples cover every
 * validation code of the catalogue.
 */
import { readFileSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { errorCatalogue } from "../../engine/errors.ts";
import { validateWorkflowText } from "../../engine/workflow/validate.ts";

interface ExpectedProblem {
  code: string;
  path: string;
  line: number;
  column: number;
}

interface InvalidExample {
  name: string;
  text: string;
  description: string;
  problems: ExpectedProblem[];
}

const directory = new URL("../../workflows/invalid/", import.meta.url);

function loadExamples(): InvalidExample[] {
  const files = readdirSync(directory);
  return files
    .filter((file) => file.endsWith(".yaml"))
    .sort()
    .map((file) => {
      const name = file.slice(0, -".yaml".length);
      const expected = JSON.parse(readFileSync(new URL(`${name}.expected.json`, directory), "utf8")) as {
        description: string;
        problems: ExpectedProblem[];
      };
      return { name, text: readFileSync(new URL(file, directory), "utf8"), ...expected };
    });
}

function byPosition(a: ExpectedProblem, b: ExpectedProblem): number {
  return (
    a.line - b.line || a.column - b.column || a.code.localeCompare(b.code) || a.path.localeCompare(b.path)
  );
}

const examples = loadExamples();
const validationCodes = Object.entries(errorCatalogue)
  .filter(([, spec]) => spec.category === "validation")
  .map(([code]) => code)
  .sort();

describe("workflows/invalid", () => {
  it("has at least 30 examples, each with a description and at least one problem", () => {
    expect(examples.length).toBeGreaterThanOrEqual(30);
    for (const example of examples) {
      expect(example.description, `${example.name}.expected.json: description`).not.toBe("");
      expect(example.problems.length, `${example.name}.expected.json lists no problem`).toBeGreaterThan(0);
    }
  });

  it("has a .yaml for every .expected.json", () => {
    const names = new Set(examples.map((example) => example.name));
    for (const file of readdirSync(directory).filter((entry) => entry.endsWith(".expected.json"))) {
      expect(names.has(file.slice(0, -".expected.json".length)), `${file} has no .yaml beside it`).toBe(true);
    }
  });

  it.each(examples.map((example) => [example.name, example] as const))("%s", (_name, example) => {
    const { problems } = validateWorkflowText(example.text);
    for (const problem of problems) {
      expect(problem.message, `${problem.code} at ${problem.path} has no message`).not.toBe("");
    }
    const actual = problems
      .map(({ code, path, line, column }) => ({ code, path, line, column }))
      .sort(byPosition);
    expect(actual).toEqual([...example.problems].sort(byPosition));
  });

  it("covers every validation code of the catalogue, and no other code", () => {
    const covered = [
      ...new Set(examples.flatMap((example) => example.problems.map((problem) => problem.code))),
    ].sort();
    const missing = validationCodes.filter((code) => !covered.includes(code));
    const unknown = covered.filter((code) => !validationCodes.includes(code));
    expect(missing, "validation codes no invalid example produces").toEqual([]);
    expect(unknown, "codes in .expected.json files that are not validation codes").toEqual([]);
  });
});
