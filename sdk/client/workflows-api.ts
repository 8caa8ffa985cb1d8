// `baton.workflows`: submit, validate, read, list and delete workflow definitions.
import { WorkflowInvalidError, type BatonApiError, type ProblemDetail } from "./errors.ts";
import type { Transport } from "./transport.ts";
import type { AppliedWorkflow, StoredWorkflow, WorkflowSummary } from "./types.ts";
import { splitWorkflowDocuments, type WorkflowDocument } from "./workflow-documents.ts";

const yamlType = "application/yaml";

/** The outcome of `validate`: `valid`, and every problem when it is not. */
export interface ValidationResult {
  readonly valid: boolean;
  readonly problems: readonly ProblemDetail[];
}

/** The workflow definitions on the server (`baton.workflows`). */
export class WorkflowsApi {
  readonly #transport: Transport;

  /** @internal Use `baton.workflows`. */
  constructor(transport: Transport) {
    this.#transport = transport;
  }

  /**
   * Submits every workflow of a YAML text (one `PUT /v1/workflows/{name}` per `---` document):
   * creates it, or stores a new revision when it changed (an identical document keeps its
   * revision). A text with several documents is validated as a whole first, so that nothing is
   * stored when any of them is invalid.
   *
   * @param yamlText - one or more workflow documents
   * @returns what the server stored for each document, in order
   * @throws `WorkflowInvalidError` with every problem (code, message, path, line, column; lines
   *   count from the start of `yamlText`)
   *
   * @example
   * ```ts
   * const [hello] = await baton.workflows.apply(await readFile("workflows/hello.yaml", "utf8"));
   * console.log(hello.name, "revision", hello.revision);
   * ```
   */
  async apply(yamlText: string): Promise<AppliedWorkflow[]> {
    const documents = await splitWorkflowDocuments(yamlText);
    const isNamed = documents !== undefined && documents.length > 0 && documents.every((d) => d.name);
    if (!isNamed || documents.length > 1) {
      const { valid, problems } = await this.validate(yamlText);
      if (!valid) throw invalid(problems);
      if (!isNamed) {
        // The server accepts what we cannot split by name; let it say so rather than guess.
        throw invalid([{ code: "WorkflowInvalid", message: "every document needs a name", path: "name" }]);
      }
    }
    const applied: AppliedWorkflow[] = [];
    for (const document of documents) applied.push(await this.put(document));
    return applied;
  }

  /**
   * Validates a YAML text without storing anything (`POST /v1/workflows:validate`).
   *
   * @returns `{ valid: true, problems: [] }`, or `valid: false` with every problem
   */
  async validate(yamlText: string): Promise<ValidationResult> {
    try {
      await this.#transport.request("POST", "/v1/workflows:validate", {
        text: yamlText,
        contentType: yamlType,
      });
      return { valid: true, problems: [] };
    } catch (error) {
      if (error instanceof WorkflowInvalidError) return { valid: false, problems: error.problems };
      throw error;
    }
  }

  /**
   * One workflow with its source YAML: the latest revision, or `revision` when given. Throws
   * `BatonApiError` with code `WorkflowNotFound` (404) when there is none.
   */
  async get(name: string, options: { revision?: number } = {}): Promise<StoredWorkflow> {
    const answer = await this.#transport.request("GET", `/v1/workflows/${encodeURIComponent(name)}`, {
      query: { revision: options.revision },
    });
    return answer.body as StoredWorkflow;
  }

  /** Every workflow: name, latest revision, description, when it was last updated. */
  async list(): Promise<WorkflowSummary[]> {
    const answer = await this.#transport.request("GET", "/v1/workflows");
    return [...(answer.body as { items: WorkflowSummary[] }).items];
  }

  /** Removes a workflow and its triggers; its running executions finish. */
  async delete(name: string): Promise<void> {
    await this.#transport.request("DELETE", `/v1/workflows/${encodeURIComponent(name)}`);
  }

  private async put(document: WorkflowDocument): Promise<AppliedWorkflow> {
    const name = document.name ?? "";
    try {
      const answer = await this.#transport.request("PUT", `/v1/workflows/${encodeURIComponent(name)}`, {
        text: document.text,
        contentType: yamlType,
      });
      const body = answer.body as Omit<AppliedWorkflow, "created">;
      return { ...body, created: answer.status === 201 };
    } catch (error) {
      if (error instanceof WorkflowInvalidError && document.lineOffset > 0) throw shiftLines(error, document);
      throw error;
    }
  }
}

function invalid(problems: readonly ProblemDetail[]): WorkflowInvalidError {
  const count = `${problems.length} problem${problems.length === 1 ? "" : "s"}`;
  return new WorkflowInvalidError({
    status: 400,
    code: "WorkflowInvalid",
    title: "The workflow is not valid",
    detail: `the workflow is not valid: ${count}`,
    errors: problems,
  });
}

/** The same error with lines counted from the start of the whole text, not of the document. */
function shiftLines(error: BatonApiError, document: WorkflowDocument): WorkflowInvalidError {
  const errors = error.problems.map((problem) =>
    problem.line === undefined ? problem : { ...problem, line: problem.line + document.lineOffset },
  );
  return new WorkflowInvalidError({ ...error.problem, errors }, { cause: error });
}
