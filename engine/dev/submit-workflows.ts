/**
 * `baton dev` submits every workflow file of the workflows directory through the API, as
 * `baton apply -f workflows` would: a file that is refused is reported and the others go on.
 */
import { readFile } from "node:fs/promises";
import { BatonApiError, type BatonClient } from "../../sdk/index.ts";
import { formatProblemDetail } from "../cli/commands/api-client.ts";
import { UnreadableError, workflowFilesOf } from "../cli/commands/workflow-files.ts";

export interface Submitted {
  /** Names of the workflows stored. */
  readonly workflows: string[];
  /** Files refused or unreadable, with why. */
  readonly refused: { file: string; reason: string }[];
}

export async function submitWorkflows(client: BatonClient, dir: string): Promise<Submitted> {
  const submitted: Submitted = { workflows: [], refused: [] };
  let files: string[];
  try {
    files = await workflowFilesOf(dir);
  } catch (error) {
    if (error instanceof UnreadableError) return submitted; // No workflows directory: nothing to submit.
    throw error;
  }
  for (const file of files) {
    try {
      const applied = await client.workflows.apply(await readFile(file, "utf8"));
      submitted.workflows.push(...applied.map((workflow) => workflow.name));
    } catch (error) {
      // A refusal (invalid, too large) is the file's problem; an API that cannot be reached is ours.
      if (!(error instanceof BatonApiError)) throw error;
      const first = error.problems[0];
      const reason = first === undefined ? error.message : formatProblemDetail(first);
      const more = error.problems.length > 1 ? ` (and ${error.problems.length - 1} more)` : "";
      submitted.refused.push({ file, reason: `${reason}${more}` });
    }
  }
  return submitted;
}
