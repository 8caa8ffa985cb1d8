/** Building problems and putting them in the order they are reported. */
import type { Problem, ValidationCode } from "../../errors.ts";
import { formatPath, type JsonPath, type Position } from "../load.ts";

export function createProblem(code: ValidationCode, path: JsonPath, message: string, at: Position): Problem {
  return { code, message, path: formatPath(path), line: at.line, column: at.column };
}

/** Sorted by line, then column; the same problem reported twice is kept once. */
export function finishProblems(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  const unique = problems.filter((problem) => {
    const key = JSON.stringify([problem.code, problem.path, problem.line, problem.column, problem.message]);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return unique.sort((a, b) => a.line - b.line || a.column - b.column);
}
