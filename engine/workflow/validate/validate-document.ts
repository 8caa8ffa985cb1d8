/** One workflow document, given as a value: every problem, or its definition. */
import type { Problem } from "../../errors.ts";
import type { WorkflowDefinition } from "../definition.ts";
import { noPositions, type SourceMap } from "../load.ts";
import { checkDuration, checkRetry } from "./check-duration.ts";
import { checkTemplate } from "./check-expressions.ts";
import { checkInputSchema } from "./check-input-schema.ts";
import { checkStepList } from "./check-steps.ts";
import { checkTrigger } from "./check-trigger.ts";
import { DocumentCheck } from "./document-check.ts";
import { has, isRecord } from "./fields.ts";
import { finishProblems } from "./problems.ts";
import { validateNode } from "./schema-errors.ts";
import { reportTargets } from "./step-targets.ts";
import { describeValue, quote } from "./wording.ts";

/** The outcome for one document. */
export interface DocumentValidation {
  /** Present when the document has no problems. */
  definition?: WorkflowDefinition;
  /** Sorted by line, then column. */
  problems: Problem[];
}

/**
 * Validates one workflow document given as a value (parsed JSON, or a document from
 * `loadYaml` with its source map). Without positions every line and column is 0.
 */
export function validateWorkflowValue(
  value: unknown,
  positions: SourceMap = noPositions,
): DocumentValidation {
  const check = new DocumentCheck(positions);
  if (!isRecord(value)) {
    check.atValue(
      "NotAMapping",
      [],
      `a workflow document is a mapping with baton, name and steps (and more), not ${describeValue(value)}`,
    );
    return { problems: check.problems };
  }
  if (has(value, "baton") && value.baton !== "v1") {
    const version = typeof value.baton === "string" ? quote(value.baton) : describeValue(value.baton);
    check.atValue(
      "UnsupportedVersion",
      ["baton"],
      `${version} is not a language version this engine knows: write "baton: v1", the only version`,
    );
  }
  validateNode(check, "", value, []);
  checkInputSchema(check, value.input, ["input"]);
  checkTemplate(check, value.output, ["output"]);
  checkDuration(check, value.timeout, ["timeout"], true);
  checkRetry(check, value.retry, ["retry"]);
  if (Array.isArray(value.triggers))
    value.triggers.forEach((trigger, index) => checkTrigger(check, trigger, ["triggers", index]));
  checkStepList(check, value.steps, ["steps"]);
  reportTargets(check);
  const problems = finishProblems(check.problems);
  return problems.length === 0
    ? { definition: value as unknown as WorkflowDefinition, problems }
    : { problems };
}
