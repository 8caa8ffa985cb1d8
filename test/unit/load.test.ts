/**
 * The loader: YAML text → plain values with a source map (lines and columns of values, keys and
 * single characters), several documents per text, and YAML mistakes as `YamlSyntax` problems.
 */
import { describe, expect, it } from "vitest";
import { formatPath, loadYaml, noPositions, type JsonPath } from "../../engine/workflow/load.ts";

/** Text written indented inside the test, without its common indentation and first newline. */
function text(source: string): string {
  const lines = source.replace(/^\n/, "").split("\n");
  const indent = Math.min(
    ...lines.filter((line) => line.trim() !== "").map((line) => /^ */.exec(line)![0].length),
  );
  return lines.map((line) => line.slice(indent)).join("\n");
}

function single(source: string) {
  const { documents, problems } = loadYaml(source);
  expect(problems).toEqual([]);
  expect(documents).toHaveLength(1);
  return documents[0]!;
}

describe("formatPath", () => {
  it.each<[JsonPath, string]>([
    [[], "(document)"],
    [["name"], "name"],
    [["steps", 3, "catch", 0, "next"], "steps[3].catch[0].next"],
    [["steps", 0, "with", "Content-Type"], "steps[0].with.Content-Type"],
    [["steps", 0, "with", "a b"], 'steps[0].with["a b"]'],
    [["steps", 0, "parallel", "branches", "left", 1], "steps[0].parallel.branches.left[1]"],
    [[0], "[0]"],
  ])("%j → %s", (path, expected) => {
    expect(formatPath(path)).toBe(expected);
  });
});

describe("loadYaml: values", () => {
  it("gives plain JavaScript values", () => {
    const document = single("a: 1\nb: [x, 'y', true, null]\nc: { d: 2.5 }\n");
    expect(document.value).toEqual({ a: 1, b: ["x", "y", true, null], c: { d: 2.5 } });
    expect(document.problems).toEqual([]);
  });

  it("reads JSON, which is YAML", () => {
    const document = single('{ "baton": "v1", "steps": [ { "name": "a" } ] }');
    expect(document.value).toEqual({ baton: "v1", steps: [{ name: "a" }] });
    expect(document.positions.valueAt(["steps", 0, "name"])).toEqual({ line: 1, column: 39 });
  });

  it("splits documents on --- and leaves empty ones out", () => {
    const { documents, problems } = loadYaml(
      text(`
        name: one
        ---
        # only a comment
        ---
        name: two
        ---
      `),
    );
    expect(problems).toEqual([]);
    expect(documents.map((document) => document.value)).toEqual([{ name: "one" }, { name: "two" }]);
    expect(documents.map((document) => document.start)).toEqual([
      { line: 1, column: 1 },
      { line: 5, column: 1 },
    ]);
  });

  it("gives no document for an empty text", () => {
    expect(loadYaml("")).toEqual({ documents: [], problems: [] });
    expect(loadYaml("# nothing\n").documents).toEqual([]);
  });

  it("keeps an explicit null document (it is not empty)", () => {
    expect(loadYaml("~\n").documents.map((document) => document.value)).toEqual([null]);
  });
});

describe("loadYaml: positions", () => {
  const source = text(`
    baton: v1
    steps:
      - name: fetch
        with:
          plain: \${ $input.x }
          double: "say \\"hi\\" \${ 1 + }"
          single: 'it''s \${ 2 }'
          block: |
            \${ 3 }
          folded: plain text
            on two lines
        empty:
    flow: { a: [1, 2] }
  `);
  const { positions } = single(source);

  it.each<[string, JsonPath, { line: number; column: number }]>([
    ["the root mapping", [], { line: 1, column: 1 }],
    ["a root value", ["baton"], { line: 1, column: 8 }],
    ["a list item (a mapping)", ["steps", 0], { line: 3, column: 5 }],
    ["a nested value", ["steps", 0, "name"], { line: 3, column: 11 }],
    ["a quoted value (its opening quote)", ["steps", 0, "with", "double"], { line: 6, column: 15 }],
    ["a block scalar (its indicator)", ["steps", 0, "with", "block"], { line: 8, column: 14 }],
    ["an empty value (its key)", ["steps", 0, "empty"], { line: 12, column: 5 }],
    ["a flow list item", ["flow", "a", 1], { line: 13, column: 16 }],
    ["an unknown path (nearest enclosing node)", ["steps", 0, "with", "missing", 3], { line: 5, column: 7 }],
  ])("valueAt: %s", (_what, path, expected) => {
    expect(positions.valueAt(path)).toEqual(expected);
  });

  it.each<[string, JsonPath, { line: number; column: number }]>([
    ["a root key", ["steps"], { line: 2, column: 1 }],
    ["a nested key", ["steps", 0, "with", "plain"], { line: 5, column: 7 }],
    ["a flow key", ["flow", "a"], { line: 13, column: 9 }],
    ["a list item (no key: its value)", ["steps", 0], { line: 3, column: 5 }],
  ])("keyAt: %s", (_what, path, expected) => {
    expect(positions.keyAt(path)).toEqual(expected);
  });

  it.each<[string, JsonPath, number, { line: number; column: number }]>([
    ["plain scalar", ["steps", 0, "with", "plain"], 3, { line: 5, column: 17 }],
    ["double-quoted, after escapes", ["steps", 0, "with", "double"], 14, { line: 6, column: 32 }],
    ["single-quoted, after ''", ["steps", 0, "with", "single"], 8, { line: 7, column: 25 }],
    ["block scalar: the node's start", ["steps", 0, "with", "block"], 3, { line: 8, column: 14 }],
    [
      "multi-line plain scalar: the node's start",
      ["steps", 0, "with", "folded"],
      6,
      { line: 10, column: 15 },
    ],
  ])("charAt: %s", (_what, path, offset, expected) => {
    expect(positions.charAt(path, offset)).toEqual(expected);
  });

  it("points charAt at the very character", () => {
    const lines = source.split("\n");
    const at = positions.charAt(["steps", 0, "with", "double"], 14);
    expect(lines[at.line - 1]![at.column - 1]).toBe("+");
    const quoted = positions.charAt(["steps", 0, "with", "single"], 8);
    expect(lines[quoted.line - 1]![quoted.column - 1]).toBe("2");
  });

  it("counts lines across documents", () => {
    const { documents } = loadYaml("a: 1\n---\nb: 2\n---\nc:\n  d: 3\n");
    expect(documents[2]!.positions.valueAt(["c", "d"])).toEqual({ line: 6, column: 6 });
  });

  it("points into an alias at the alias", () => {
    const { positions, value } = single("x: &shared\n  y: 1\nz: *shared\n");
    expect(value).toEqual({ x: { y: 1 }, z: { y: 1 } });
    expect(positions.valueAt(["z", "y"])).toEqual({ line: 3, column: 4 });
  });

  it("has a source map for values without text: every position is 0, 0", () => {
    expect(noPositions.valueAt(["a"])).toEqual({ line: 0, column: 0 });
    expect(noPositions.keyAt(["a"])).toEqual({ line: 0, column: 0 });
    expect(noPositions.charAt(["a"], 4)).toEqual({ line: 0, column: 0 });
  });
});

describe("loadYaml: problems", () => {
  it.each<[string, string, { line: number; column: number; message: RegExp }]>([
    // One mistake, one problem: what the parser reports after it follows from it.
    ["a bad indentation", "a:\n  - 1\n - 2\n", { line: 3, column: 1, message: /./ }],
    ["an unclosed flow list", "a: [1, 2\nb: 3\n", { line: 2, column: 1, message: /]/ }],
    ["an unclosed quote", 'a: "open\nb: 2\n', { line: 3, column: 1, message: /quote/ }],
    ["a duplicate key", "a: 1\nb: 2\na: 3\n", { line: 3, column: 1, message: /duplicate key "a"/ }],
    ["a tag that is not plain JSON", "a: !!binary aGk=\n", { line: 1, column: 4, message: /"!!binary"/ }],
    ["a custom tag", "a: !thing x\n", { line: 1, column: 4, message: /"!thing"/ }],
  ])("reports %s as YamlSyntax", (_what, source, expected) => {
    const { problems, documents } = loadYaml(source);
    expect(problems).toHaveLength(1);
    const [problem] = problems;
    expect(problem).toMatchObject({
      code: "YamlSyntax",
      path: "(document)",
      line: expected.line,
      column: expected.column,
    });
    expect(problem!.message).toMatch(expected.message);
    expect(problem!.message).not.toContain("\n");
    expect(documents[0]?.problems).toEqual(problems);
  });

  it("reports every duplicate key, each at the later key", () => {
    const { problems } = loadYaml("a: 1\na: 2\nb:\n  c: 1\n  c: 2\n");
    expect(problems.map(({ line, column }) => [line, column])).toEqual([
      [2, 1],
      [5, 3],
    ]);
  });

  it("attaches each problem to its own document", () => {
    const { documents, problems } = loadYaml("a: 1\n---\nb: [1\n---\nc: 3\n");
    expect(problems).toHaveLength(1);
    expect(documents.map((document) => document.problems.length)).toEqual([0, 1, 0]);
  });

  it("refuses a document that expands into too many aliases", () => {
    const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let level = 1; level < 9; level++) {
      const previous = level === 1 ? "a" : "b".repeat(level - 1);
      lines.push(
        `${"b".repeat(level)}: &${"b".repeat(level)} [${Array(10).fill(`*${previous}`).join(", ")}]`,
      );
    }
    const { problems } = loadYaml(lines.join("\n"));
    expect(problems).toMatchObject([{ code: "YamlSyntax", line: 1, column: 1 }]);
  });
});
