/**
 * docs/errors.md mirrors the catalogue in engine/errors.ts: every code, its category, its
 * sentence and (for step errors) its retryability. This test keeps the two in step, both ways.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { errorCatalogue, type ErrorCategory, type ErrorSpec } from "../../engine/errors.ts";

interface DocumentedCode {
  code: string;
  category: ErrorCategory;
  when: string;
  retryable?: boolean;
}

/** Which section of docs/errors.md holds which category, by the words of its `##` heading. */
const sectionCategories: [RegExp, ErrorCategory][] = [
  [/^validation/i, "validation"],
  [/^step/i, "step"],
  [/^api/i, "api"],
];

function cells(row: string): string[] {
  return row
    .trim()
    .replace(/^\|/, "")
    .replace(/\|$/, "")
    .split("|")
    .map((cell) => cell.trim());
}

/** Reads every table row of the form `| `Code` | when | [retryable] |` under a category heading. */
function parseErrorsDoc(markdown: string): DocumentedCode[] {
  const documented: DocumentedCode[] = [];
  let category: ErrorCategory | undefined;
  let columns: string[] = [];
  for (const line of markdown.split("\n")) {
    const heading = /^##\s+(.*)$/.exec(line);
    if (heading) {
      category = sectionCategories.find(([pattern]) => pattern.test(heading[1]!))?.[1];
      columns = [];
      continue;
    }
    if (!category || !line.trim().startsWith("|")) continue;
    const row = cells(line);
    if (row[0] === "code") {
      columns = row;
      continue;
    }
    const code = /^`(\w+)`$/.exec(row[0] ?? "")?.[1];
    if (!code) continue; // the separator row
    const entry: DocumentedCode = { code, category, when: row[columns.indexOf("when")] ?? "" };
    const retryableAt = columns.indexOf("retryable");
    if (retryableAt >= 0) {
      const text = row[retryableAt];
      if (text !== "yes" && text !== "no")
        throw new Error(`docs/errors.md: ${code}: retryable must be "yes" or "no", not "${text}"`);
      entry.retryable = text === "yes";
    }
    documented.push(entry);
  }
  return documented;
}

const documented = parseErrorsDoc(readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8"));
const catalogue = Object.entries(errorCatalogue) as [string, ErrorSpec][];
const byCode = new Map(documented.map((entry) => [entry.code, entry]));

describe("docs/errors.md mirrors engine/errors.ts", () => {
  it("finds the tables", () => {
    expect(documented.length).toBeGreaterThan(0);
  });

  it("documents each code once", () => {
    const seen = new Set<string>();
    for (const { code } of documented) {
      expect(seen.has(code), `${code} is documented twice in docs/errors.md`).toBe(false);
      seen.add(code);
    }
  });

  it.each(catalogue)("documents %s with its category, sentence and retryability", (code, spec) => {
    const entry = byCode.get(code);
    expect(entry, `${code} is in engine/errors.ts but not in docs/errors.md`).toBeDefined();
    expect(
      entry!.category,
      `${code} is a ${spec.category} code but docs/errors.md lists it under ${entry!.category}`,
    ).toBe(spec.category);
    expect(entry!.when, `${code}: docs/errors.md's sentence differs from engine/errors.ts's`).toBe(spec.when);
    if (spec.category === "step") {
      expect(entry!.retryable, `${code}: retryable is ${String(spec.retryable)} in engine/errors.ts`).toBe(
        spec.retryable,
      );
    } else {
      expect(entry!.retryable, `${code}: only step errors have a retryable column`).toBeUndefined();
    }
  });

  it("documents no code the catalogue lacks", () => {
    for (const { code } of documented) {
      expect(
        Object.hasOwn(errorCatalogue, code),
        `${code} is in docs/errors.md but not in engine/errors.ts`,
      ).toBe(true);
    }
  });
});
