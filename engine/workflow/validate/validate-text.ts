/** Workflow text: one or several YAML documents, accepted or refused as a whole. */
import type { Problem } from "../../errors.ts";
import type { WorkflowDefinition } from "../definition.ts";
import { loadYaml } from "../load.ts";
import { isRecord } from "./fields.ts";
import { createProblem, finishProblems } from "./problems.ts";
import { validateWorkflowValue, type DocumentValidation } from "./validate-document.ts";

/** The outcome for a whole text (one or several documents). */
export interface TextValidation {
  /** Per non-empty document, in order. */
  documents: DocumentValidation[];
  /** Every document's definition, when the whole text has no problem; otherwise empty. */
  workflows: WorkflowDefinition[];
  /** Every problem of the text, sorted by line, then column. */
  problems: Problem[];
}

/**
 * Validates workflow text: YAML (or JSON) with one or several documents separated by `---`.
 * Reports every problem of every document at once, plus `DuplicateWorkflow` when two documents
 * share a name. `workflows` holds the definitions only when the whole text is valid: a file is
 * accepted or refused as a whole.
 */
export function validateWorkflowText(text: string): TextValidation {
  const loaded = loadYaml(text);
  const documents: DocumentValidation[] = [];
  const problems = [...loaded.problems];
  const names = new Map<string, number>();
  for (const document of loaded.documents) {
    if (document.problems.length > 0) {
      documents.push({ problems: document.problems });
      continue;
    }
    const result = validateWorkflowValue(document.value, document.positions);
    const name = isRecord(document.value) ? document.value.name : undefined;
    if (typeof name === "string") {
      const firstLine = names.get(name);
      if (firstLine === undefined) names.set(name, document.start.line);
      else {
        result.problems = finishProblems([
          ...result.problems,
          createProblem(
            "DuplicateWorkflow",
            ["name"],
            `workflow "${name}" is already defined by the document at line ${firstLine}: rename one of them`,
            document.positions.valueAt(["name"]),
          ),
        ]);
        delete result.definition;
      }
    }
    problems.push(...result.problems);
    documents.push(result);
  }
  if (loaded.documents.length === 0 && problems.length === 0) {
    problems.push(
      createProblem(
        "NotAMapping",
        [],
        "the text holds no workflow: write a mapping with baton, name and steps",
        { line: 1, column: 1 },
      ),
    );
  }
  const sorted = finishProblems(problems);
  const workflows = sorted.length === 0 ? documents.map((document) => document.definition!) : [];
  return { documents, workflows, problems: sorted };
}
