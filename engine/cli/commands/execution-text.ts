/**
 * How executions and their history read in a terminal: one line per history event
 * (`baton logs`, `baton run --wait`), a summary of one execution (`baton get`), a table of
 * executions (`baton ls`).
 */
import type { Execution, ExecutionSummary, HistoryEvent, StepError } from "../../../sdk/client/types.ts";

const longestValue = 120;

/** `12:00:01.234  #5  AttemptFailed       greet  attempt 1 on w-1  Unavailable: try later` */
export function formatEvent(event: HistoryEvent): string {
  const parts = [clock(event.at), `#${event.seq}`.padStart(4), event.type.padEnd(19), event.step ?? ""];
  if (event.attempt !== undefined) parts.push(`attempt ${event.attempt}`);
  if (event.worker !== undefined) parts.push(`on ${event.worker}`);
  const details = describeData(event.data);
  if (details !== "") parts.push(details);
  return parts
    .filter((part) => part !== "")
    .join("  ")
    .trimEnd();
}

/**
 * What an event's data says, briefly: its error as `CODE: message`, a timer's due time (the
 * timer's own id is the engine's business), or the data as short JSON.
 */
function describeData(data: unknown): string {
  if (data === undefined || data === null) return "";
  if (typeof data === "object" && !Array.isArray(data)) {
    const { error, due, timer, ...rest } = data as { error?: unknown; due?: unknown; timer?: unknown };
    if (isStepError(error)) return formatStepError(error);
    if (typeof due === "string" && typeof timer === "string" && Object.keys(rest).length === 0)
      return `due ${due}`;
    if (Object.keys(data).length === 0) return "";
  }
  return shorten(JSON.stringify(data));
}

export function formatStepError(error: StepError): string {
  return `${error.code}: ${error.message}`;
}

function isStepError(value: unknown): value is StepError {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { code?: unknown }).code === "string" &&
    typeof (value as { message?: unknown }).message === "string"
  );
}

/** A summary of one execution for `baton get`. */
export function formatExecution(execution: Execution): string {
  const lines = [
    `id:        ${execution.id}`,
    `workflow:  ${execution.workflow} (revision ${execution.revision})`,
    `status:    ${execution.status}`,
    `started:   ${execution.startedAt}`,
  ];
  if (execution.endedAt !== undefined)
    lines.push(`ended:     ${execution.endedAt} (${elapsed(execution.startedAt, execution.endedAt)})`);
  lines.push(`input:     ${shorten(JSON.stringify(execution.input))}`);
  if (execution.output !== undefined) lines.push(`output:    ${shorten(JSON.stringify(execution.output))}`);
  if (execution.error) lines.push(`error:     ${formatStepError(execution.error)}`);
  if (execution.parent !== undefined) lines.push(`parent:    ${JSON.stringify(execution.parent)}`);
  if (execution.steps.length > 0) {
    lines.push("steps:");
    const width = Math.max(...execution.steps.map((step) => step.name.length));
    for (const step of execution.steps) {
      const attempts = `${step.attempts} attempt${step.attempts === 1 ? "" : "s"}`;
      const took =
        step.startedAt !== undefined && step.endedAt !== undefined
          ? `  ${elapsed(step.startedAt, step.endedAt)}`
          : "";
      const effect = step.effect === true ? "  (effect)" : "";
      lines.push(`  ${step.name.padEnd(width)}  ${step.status.padEnd(9)}  ${attempts}${took}${effect}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** A table of executions for `baton ls`. */
export function formatExecutionTable(items: readonly ExecutionSummary[]): string {
  const rows = [
    ["ID", "WORKFLOW", "STATUS", "STARTED", "ENDED"],
    ...items.map((item) => [item.id, item.workflow, item.status, item.startedAt, item.endedAt ?? ""]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join("  ")
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join("");
}

/** `HH:MM:SS.mmm` in local time; the text itself when it is not a time. */
function clock(at: string): string {
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) return at;
  const two = (n: number): string => String(n).padStart(2, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

function elapsed(from: string, to: string): string {
  const ms = new Date(to).getTime() - new Date(from).getTime();
  if (Number.isNaN(ms)) return "?";
  return ms < 1_000 ? `${ms} ms` : `${(ms / 1_000).toFixed(ms < 60_000 ? 2 : 0)} s`;
}

function shorten(text: string): string {
  return text.length <= longestValue ? text : `${text.slice(0, longestValue - 1)}…`;
}
