/** Values that are or hold `${ }` expressions: templates, conditions. */
import { checkExpressionSyntax, isExpression, type ExpressionSyntaxProblem } from "../expressions.ts";
import type { JsonPath } from "../load.ts";
import type { DocumentCheck } from "./document-check.ts";
import { isRecord } from "./fields.ts";
import { describeValue, quote } from "./wording.ts";

function syntaxMessage(problem: ExpressionSyntaxProblem, text: string): string {
  const reason = problem.message.replace(/^Syntax error: (.*)$/, "unexpected token $1");
  return `${reason.charAt(0).toLowerCase()}${reason.slice(1)} (character ${problem.offset + 1} of ${quote(text)})`;
}

/** Checks every `${ }` of one string; returns whether they all parse. */
export function checkExpressions(check: DocumentCheck, text: string, path: JsonPath): boolean {
  const problems = checkExpressionSyntax(text);
  for (const problem of problems)
    check.atChar("ExpressionSyntax", path, problem.offset, syntaxMessage(problem, text));
  return problems.length === 0;
}

/** A template: any JSON value whose strings may hold expressions, walked recursively. */
export function checkTemplate(check: DocumentCheck, value: unknown, path: JsonPath): void {
  if (typeof value === "string") {
    if (value.includes("${")) checkExpressions(check, value, path);
  } else if (typeof value === "number") {
    if (!Number.isFinite(value))
      check.atValue("InvalidValue", path, `${check.where(path)} is ${value}, which JSON cannot hold`);
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => checkTemplate(check, item, [...path, index]));
  } else if (isRecord(value)) {
    for (const [key, item] of Object.entries(value)) checkTemplate(check, item, [...path, key]);
  }
}

/** `if`, `when`, `match`: a whole `${ ... }` expression. */
export function checkCondition(check: DocumentCheck, value: unknown, path: JsonPath): void {
  if (value === undefined) return;
  const where = check.where(path);
  if (typeof value !== "string") {
    const example =
      typeof value === "boolean" || typeof value === "number" ? `"\${ ${value} }"` : `"\${ ... }"`;
    check.atValue(
      "ExpressionExpected",
      path,
      `${where} must be an expression written ${example}, not ${describeValue(value)}`,
    );
    return;
  }
  if (!checkExpressions(check, value, path) || isExpression(value)) return;
  const fix = value.includes("${") ? "one expression with nothing around it" : `"\${ ${value} }"`;
  check.atValue("ExpressionExpected", path, `${where} must be a whole expression: write ${fix}`);
}
