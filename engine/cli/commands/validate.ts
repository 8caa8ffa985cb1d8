/**
 * `baton validate FILE...`: offline validation, the same checks a submission runs. One line per
 * problem on stdout (`file:line:col CODE path: message`, the shape editors and CI annotate from),
 * a summary on stderr; exit 1 when there is any problem.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import type { Problem } from "../../errors.ts";
import { validateWorkflowText } from "../../workflow/validate.ts";
import { UsageError, exitCodes, type Command, type Io } from "../command.ts";
import { UnreadableError, unreadable, workflowFilesOf } from "./workflow-files.ts";

const usage = `Usage: baton validate FILE_OR_DIR...

Validates workflow files without a running engine: YAML syntax, the language's schema, step
names and \`next\` targets, expressions, durations, cron, subjects, triggers and the input schema.
A directory stands for every *.yaml and *.yml file directly inside it.

Prints one line per problem to stdout:  file:line:col CODE path: message
and a summary to stderr.

Exit codes: 0 every file is valid, 1 some file has problems, 2 usage error or unreadable file.
`;

export function formatProblem(file: string, problem: Problem): string {
  const where = problem.path === "" ? "" : `${problem.path}: `;
  return `${file}:${problem.line}:${problem.column} ${problem.code} ${where}${problem.message}`;
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function summarize(problemCount: number, filesWithProblems: number, fileCount: number): string {
  if (problemCount === 0) return `${plural(fileCount, "file")} valid`;
  return `${plural(problemCount, "problem")} in ${filesWithProblems} of ${plural(fileCount, "file")}`;
}

function byPosition(a: Problem, b: Problem): number {
  return a.line - b.line || a.column - b.column;
}

async function run(args: string[], io: Io): Promise<number> {
  const { positionals } = parseArgs({ args, options: {}, allowPositionals: true, strict: true });
  if (positionals.length === 0) throw new UsageError("name at least one workflow file or directory");

  const failures: string[] = [];
  const files = new Set<string>();
  for (const argument of positionals) {
    try {
      for (const file of await workflowFilesOf(argument)) files.add(file);
    } catch (error) {
      if (!(error instanceof UnreadableError)) throw error;
      failures.push(error.message);
    }
  }

  const results: { file: string; problems: Problem[] }[] = [];
  for (const file of [...files].sort()) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      failures.push(unreadable(file, error).message);
      continue;
    }
    results.push({ file, problems: [...validateWorkflowText(text).problems].sort(byPosition) });
  }

  for (const { file, problems } of results) {
    for (const problem of problems) io.stdout(`${formatProblem(file, problem)}\n`);
  }
  for (const failure of failures) io.stderr(`baton validate: ${failure}\n`);
  const problemCount = results.reduce((sum, result) => sum + result.problems.length, 0);
  const filesWithProblems = results.filter((result) => result.problems.length > 0).length;
  if (results.length > 0) io.stderr(`${summarize(problemCount, filesWithProblems, results.length)}\n`);

  if (failures.length > 0) return exitCodes.usage;
  return problemCount > 0 ? exitCodes.failure : exitCodes.ok;
}

export const validateCommand: Command = {
  name: "validate",
  summary: "Check workflow files offline: every problem with its line, column and code",
  usage,
  run,
};
