/**
 * `baton validate` as users run it: the real CLI in a child process (`node bin/baton.mjs`), no
 * mocks. Every invalid example prints exactly its expected problems and exits 1; every valid
 * example exits 0; usage errors exit 2. Each directory is validated in one run to keep this fast.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const cli = join(root, "bin", "baton.mjs");

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runBaton(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [cli, ...args], { cwd: root, timeout: 30_000 }, (error, stdout, stderr) => {
      // A number is the exit code; anything else (a failure to spawn, a timeout) is the test's problem.
      if (error !== null && typeof error.code !== "number") {
        reject(new Error(`could not run baton ${args.join(" ")}`, { cause: error }));
        return;
      }
      resolve({ code: typeof error?.code === "number" ? error.code : 0, stdout, stderr });
    });
  });
}

interface ExpectedProblem {
  code: string;
  path: string;
  line: number;
  column: number;
}

/** One problem line: `file:line:col CODE path: message`. */
const problemLine =
  /^(?<file>[^:]+):(?<line>\d+):(?<column>\d+) (?<code>[A-Za-z]+) (?<path>.+?): (?<message>.+)$/;

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

const invalidDirectory = "workflows/invalid";
const invalidExamples = readdirSync(join(root, invalidDirectory))
  .filter((file) => file.endsWith(".yaml"))
  .sort()
  .map((file) => {
    const expected = JSON.parse(
      readFileSync(join(root, invalidDirectory, file.replace(/\.yaml$/, ".expected.json")), "utf8"),
    ) as { problems: ExpectedProblem[] };
    return { file: `${invalidDirectory}/${file}`, problems: expected.problems };
  });

const validFiles = readdirSync(join(root, "workflows"))
  .filter((file) => /\.ya?ml$/.test(file))
  .sort();

describe("baton validate on workflows/invalid", () => {
  let result: CliResult;
  beforeAll(async () => {
    result = await runBaton(["validate", invalidDirectory]);
  });

  it("exits 1, with a summary on stderr that counts the lines of stdout", () => {
    expect(result.code).toBe(1);
    const printed = lines(result.stdout);
    const files = new Set(printed.map((line) => problemLine.exec(line)?.groups?.file));
    expect(result.stderr).toBe(
      `${printed.length} problems in ${files.size} of ${invalidExamples.length} files\n`,
    );
    expect(files.size).toBe(invalidExamples.length);
  });

  it("prints every line as file:line:col CODE path: message, sorted by file then line", () => {
    const printed = lines(result.stdout);
    expect(printed.length).toBeGreaterThan(0);
    const keys: [string, number, number][] = [];
    for (const line of printed) {
      const match = problemLine.exec(line);
      expect(match, `not a problem line: ${line}`).not.toBeNull();
      keys.push([match!.groups!.file!, Number(match!.groups!.line), Number(match!.groups!.column)]);
    }
    const sorted = [...keys].sort(([fa, la, ca], [fb, lb, cb]) =>
      fa < fb ? -1 : fa > fb ? 1 : la - lb || ca - cb,
    );
    expect(keys).toEqual(sorted);
  });

  it.each(invalidExamples.map((example) => [example.file, example] as const))(
    "%s: prints exactly the expected problems",
    (file, example) => {
      const printed = lines(result.stdout)
        .filter((line) => line.startsWith(`${file}:`))
        .map((line) => {
          const groups = problemLine.exec(line)?.groups ?? {};
          return `${groups.file}:${groups.line}:${groups.column} ${groups.code} ${groups.path}`;
        })
        .sort();
      const expected = example.problems
        .map((problem) => `${file}:${problem.line}:${problem.column} ${problem.code} ${problem.path}`)
        .sort();
      expect(printed).toEqual(expected);
    },
  );
});

describe("baton validate on the valid examples", () => {
  it.skipIf(validFiles.length === 0)(
    "accepts every workflows/*.yaml in one run: exit 0, nothing on stdout",
    async () => {
      const result = await runBaton(["validate", ...validFiles.map((file) => `workflows/${file}`)]);
      expect(result.stdout).toBe("");
      expect(result.stderr.trim()).toBe(
        `${validFiles.length} file${validFiles.length === 1 ? "" : "s"} valid`,
      );
      expect(result.code).toBe(0);
    },
  );
});

describe("baton validate: files, directories and usage", () => {
  let scratch: string;
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "baton-cli-validate-"));
    await writeFile(
      join(scratch, "hello.yml"),
      "baton: v1\nname: hello\nsteps:\n  - name: greet\n    return: hello\n",
    );
    await writeFile(join(scratch, "notes.txt"), "not a workflow, and not a .yaml file\n");
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it("validates the *.yml files of a directory and ignores other files", async () => {
    const result = await runBaton(["validate", scratch]);
    expect(result).toEqual({ code: 0, stdout: "", stderr: "1 file valid\n" });
  });

  it("counts the files with problems among all the files", async () => {
    const result = await runBaton([
      "validate",
      join(scratch, "hello.yml"),
      "workflows/invalid/version-v2.yaml",
    ]);
    expect(result.code).toBe(1);
    expect(lines(result.stdout)).toHaveLength(1);
    expect(result.stdout).toMatch(/^workflows\/invalid\/version-v2\.yaml:1:8 UnsupportedVersion baton: /);
    expect(result.stderr).toBe("1 problem in 1 of 2 files\n");
  });

  it("exits 2 naming a file it cannot read", async () => {
    const result = await runBaton(["validate", "workflows/no-such-workflow.yaml"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("workflows/no-such-workflow.yaml");
  });

  it("exits 2 without files, and on an unknown option", async () => {
    const [noFiles, badOption] = await Promise.all([
      runBaton(["validate"]),
      runBaton(["validate", "--strict-mode", "workflows/invalid/version-v2.yaml"]),
    ]);
    expect(noFiles.code).toBe(2);
    expect(noFiles.stderr).toContain("baton help validate");
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toContain("--strict-mode");
  });

  it("exits 2 on an unknown command, and lists the commands on --help", async () => {
    const [unknown, help, helpValidate] = await Promise.all([
      runBaton(["valdate", "x.yaml"]),
      runBaton(["--help"]),
      runBaton(["help", "validate"]),
    ]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "valdate"');
    expect(unknown.stderr).toContain('did you mean "validate"');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^\s+validate\s/m);
    expect(help.stdout).toMatch(/^\s+help\s/m);
    expect(helpValidate.code).toBe(0);
    expect(helpValidate.stdout).toContain("Usage: baton validate");
  });
});
