// A YAML text may hold several workflows (`---`); the API takes one per `PUT /v1/workflows/{name}`.
// This finds each document's name and its own text, keeping track of where it starts so that
// problems the server reports for one document point at the right line of the whole text.

import { commonJsExports } from "../cjs-interop.ts";

export interface WorkflowDocument {
  /** The document's `name`, when it has a string one. */
  readonly name: string | undefined;
  /** The document's text, comments and `---` marker included. */
  readonly text: string;
  /** How many lines of the whole text come before this document's text. */
  readonly lineOffset: number;
}

/**
 * The non-empty documents of `text`, in order, or `undefined` when the text is not readable YAML
 * (the server's validation then says why, with lines and columns).
 */
export async function splitWorkflowDocuments(text: string): Promise<WorkflowDocument[] | undefined> {
  // Loaded on first use: every function isolate imports the SDK, and none of them submits YAML.
  const { parseAllDocuments } = commonJsExports(await import("yaml"));
  const parsed = parseAllDocuments(text);
  if (!Array.isArray(parsed)) return []; // an empty stream: no document at all
  const documents: WorkflowDocument[] = [];
  let start = 0;
  for (const document of parsed) {
    if (document.errors.length > 0) return undefined;
    const end = document.range[2];
    const slice = text.slice(start, end);
    const lineOffset = countLines(text, start);
    start = end;
    if (document.contents === null || document.toJS() == null) continue;
    const name: unknown = document.get("name");
    documents.push({ name: typeof name === "string" ? name : undefined, text: slice, lineOffset });
  }
  return documents;
}

function countLines(text: string, end: number): number {
  let lines = 0;
  for (let index = text.indexOf("\n"); index !== -1 && index < end; index = text.indexOf("\n", index + 1))
    lines++;
  return lines;
}
