/**
 * Step lists, walked recursively: each step's name (unique in the whole workflow), its one kind,
 * its fields against that kind's definition, its jumps, and the rules of each kind — switch
 * branches, parallel branches and map bodies are step lists of their own.
 */
import { stepKinds, type StepKind } from "../definition.ts";
import { isExpression } from "../expressions.ts";
import { formatPath, type JsonPath } from "../load.ts";
import { checkDuration, checkRetry } from "./check-duration.ts";
import { checkExclusive } from "./check-exclusive.ts";
import { checkCondition, checkExpressions, checkTemplate } from "./check-expressions.ts";
import { checkSubject } from "./check-subject.ts";
import { checkWait } from "./check-wait.ts";
import { didYouMean, didYouMeanAnyOf } from "./did-you-mean.ts";
import type { DocumentCheck, StepList } from "./document-check.ts";
import { has, isRecord, keysAmong, type Fields } from "./fields.ts";
import { anyStepFields } from "./language-schema.ts";
import { validateNode } from "./schema-errors.ts";
import { checkTarget } from "./step-targets.ts";
import { describeValue, orList } from "./wording.ts";

function stepLabel(step: Fields, path: JsonPath): string {
  return typeof step.name === "string" ? `step "${step.name}"` : `the step at ${formatPath(path)}`;
}

export function checkStepList(check: DocumentCheck, steps: unknown, path: JsonPath): void {
  if (!Array.isArray(steps)) return;
  const names = new Set<string>();
  for (const step of steps) if (isRecord(step) && typeof step.name === "string") names.add(step.name);
  const scope: StepList = { names };
  steps.forEach((step, index) => checkStep(check, step, [...path, index], scope));
}

function checkStep(check: DocumentCheck, step: unknown, path: JsonPath, list: StepList): void {
  if (!isRecord(step)) {
    check.atValue(
      "WrongType",
      path,
      `a step must be a mapping with a name and one kind (call, switch, ...), not ${describeValue(step)}`,
    );
    return;
  }
  const label = stepLabel(step, path);
  check.label(path, label);
  check.stepPaths.add(formatPath(path));
  if (typeof step.name === "string") {
    const first = check.stepNames.get(step.name);
    if (first === undefined) check.stepNames.set(step.name, path);
    else {
      check.atValue(
        "DuplicateStep",
        [...path, "name"],
        `step name "${step.name}" is already used at ${formatPath(first)}; names are unique in the whole workflow, nested lists included: rename one`,
      );
    }
  }

  const kinds = keysAmong(step, stepKinds);
  const [kind, second] = kinds;
  if (kind === undefined || second !== undefined) {
    if (kind === undefined) {
      check.atValue(
        "StepKindMissing",
        path,
        `${label} does not say what it does: add one of ${orList(stepKinds)}${didYouMeanAnyOf(Object.keys(step), stepKinds)}`,
      );
    } else {
      check.atKey(
        "StepKindConflict",
        [...path, second!],
        `${label} has several kinds (${kinds.join(", ")}): a step does one thing; split it into one step per kind`,
      );
    }
    // Without one kind the step's own fields are unclear; still check the common ones, and
    // report the fields no step kind has (a typo stays a typo).
    validateNode(check, "stepCommon", step, path);
    for (const key of Object.keys(step)) {
      if (!anyStepFields.includes(key)) {
        check.atKey(
          "UnknownField",
          [...path, key],
          `${label} has no field "${key}"${didYouMean(key, anyStepFields)}`,
        );
      }
    }
  } else {
    validateNode(check, `${kind}Step`, step, path);
  }

  checkCondition(check, step.if, [...path, "if"]);
  checkDuration(check, step.timeout, [...path, "timeout"], true);
  checkTemplate(check, step.output, [...path, "output"]);
  checkTarget(check, step.next, [...path, "next"], list);
  if (Array.isArray(step.catch)) {
    step.catch.forEach((clause, index) => {
      if (isRecord(clause)) checkTarget(check, clause.next, [...path, "catch", index, "next"], list);
    });
  }
  if (kind !== undefined && second === undefined) checkStepKind(check, kind, step, path, list);
}

function checkStepKind(
  check: DocumentCheck,
  kind: StepKind,
  step: Fields,
  path: JsonPath,
  list: StepList,
): void {
  const body = step[kind];
  const at = [...path, kind];
  switch (kind) {
    case "call":
      checkTemplate(check, step.with, [...path, "with"]);
      checkRetry(check, step.retry, [...path, "retry"]);
      return;
    case "workflow":
      checkTemplate(check, step.with, [...path, "with"]);
      return;
    case "switch":
      if (Array.isArray(body))
        body.forEach((branch, index) => checkBranch(check, branch, [...at, index], body.length, list));
      return;
    case "parallel":
      if (isRecord(body) && isRecord(body.branches)) {
        for (const [name, steps] of Object.entries(body.branches))
          checkStepList(check, steps, [...at, "branches", name]);
      }
      return;
    case "map":
      if (!isRecord(body)) return;
      if (typeof body.items === "string") {
        if (checkExpressions(check, body.items, [...at, "items"]) && !isExpression(body.items)) {
          check.atValue(
            "ExpressionExpected",
            [...at, "items"],
            `${check.where([...at, "items"])} must be an expression giving a list ("\${ $input.images }") or a literal list`,
          );
        }
      } else checkTemplate(check, body.items, [...at, "items"]);
      checkStepList(check, body.steps, [...at, "steps"]);
      return;
    case "wait":
      checkWait(check, body, at);
      return;
    case "receive":
      if (!isRecord(body)) return;
      checkExclusive(
        check,
        body,
        at,
        ["signal", "subject"],
        "InvalidReceive",
        "a receive waits for either a signal or a subject",
      );
      checkSubject(check, body.subject, [...at, "subject"], { wildcards: false, expressions: true });
      checkCondition(check, body.match, [...at, "match"]);
      checkDuration(check, body.timeout, [...at, "timeout"], true);
      return;
    case "emit":
      if (!isRecord(body)) return;
      checkSubject(check, body.subject, [...at, "subject"], { wildcards: false, expressions: true });
      checkTemplate(check, body.data, [...at, "data"]);
      return;
    case "set":
    case "return":
      checkTemplate(check, body, at);
      return;
    case "fail":
      if (isRecord(body)) checkTemplate(check, body.message, [...at, "message"]);
      return;
    default: {
      const unreachable: never = kind;
      throw new Error(`unknown step kind ${String(unreachable)}`);
    }
  }
}

function checkBranch(
  check: DocumentCheck,
  branch: unknown,
  path: JsonPath,
  count: number,
  list: StepList,
): void {
  if (!isRecord(branch)) return; // the schema reported it
  const rules = [
    checkExclusive(
      check,
      branch,
      path,
      ["when", "default"],
      "InvalidSwitchBranch",
      "a branch is taken on a condition or by default",
      true,
    ),
    checkExclusive(
      check,
      branch,
      path,
      ["next", "steps"],
      "InvalidSwitchBranch",
      "a branch jumps or runs steps",
      true,
    ),
  ].filter((rule) => rule !== undefined);
  // An empty branch is one mistake: say everything it lacks at once.
  if (rules.length > 0)
    check.atValue("InvalidSwitchBranch", path, `${check.where(path)}: ${rules.join("; ")}`);
  // A branch with both `when` and `default` was reported above; "not last" would be the same mistake.
  if (has(branch, "default") && !has(branch, "when") && path.at(-1) !== count - 1) {
    check.atKey(
      "InvalidSwitchBranch",
      [...path, "default"],
      `only the last branch may be the default: move this branch to the end`,
    );
  }
  checkCondition(check, branch.when, [...path, "when"]);
  checkTarget(check, branch.next, [...path, "next"], list);
  checkStepList(check, branch.steps, [...path, "steps"]);
}
