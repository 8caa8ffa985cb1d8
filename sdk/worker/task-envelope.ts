// Reading a task message. A task that cannot be read is never run: it is terminated (so that
// JetStream stops redelivering it) and, when the attempt it belongs to can be told from its
// body or headers, answered with `TaskInvalid` so the execution does not wait for it.
import type { MsgHdrs } from "nats";
import { headers, protocolVersion, type Lane, type TaskEnvelope } from "../protocol.ts";

/** Which attempt a message is about: enough to report on it. */
export interface AttemptIdentity {
  readonly execution: string;
  readonly step: string;
  readonly run: number;
  readonly attempt: number;
  /** Where its report goes: the task's `reply` (or `Baton-Reply` header). */
  readonly reply: string;
}

export type ParsedTask =
  | { readonly ok: true; readonly task: TaskEnvelope }
  | {
      readonly ok: false;
      readonly problems: readonly string[];
      readonly identity: AttemptIdentity | undefined;
    };

/** An execution id is one subject token: results go to `baton.events.p.<partition>.<execution>.result`. */
const subjectTokenPattern = /^[^\s.*>]+$/;

/** A report subject the engine can have named for `execution` (a worker reports nowhere else). */
const isReplyFor = (reply: unknown, execution: string): reply is string =>
  typeof reply === "string" &&
  /^baton\.events\.p\.\d+\.[^\s.*>]+\.result$/.test(reply) &&
  reply.endsWith(`.${execution}.result`);

/** Parses and checks a task message pulled for `fn` on `lane`. */
export function parseTask(
  data: Uint8Array,
  messageHeaders: MsgHdrs | undefined,
  fn: string,
  lane: Lane,
): ParsedTask {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(data));
  } catch (error) {
    return invalid([`the body is not JSON (${(error as Error).message})`], undefined, messageHeaders);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return invalid(["the body is not a JSON object"], undefined, messageHeaders);
  }
  const task = body as Record<string, unknown>;
  const problems: string[] = [];
  const headerVersion = messageHeaders?.get(headers.protocol);
  if (task.v !== protocolVersion) {
    problems.push(
      `protocol version ${JSON.stringify(task.v)} is not one this worker speaks (${protocolVersion})`,
    );
  } else if (
    headerVersion !== undefined &&
    headerVersion !== "" &&
    headerVersion !== String(protocolVersion)
  ) {
    problems.push(`header ${headers.protocol} is ${headerVersion}, not ${protocolVersion}`);
  }
  if (typeof task.execution !== "string" || !subjectTokenPattern.test(task.execution)) {
    problems.push("execution must be a non-empty string without spaces, '.', '*' or '>'");
  }
  for (const field of ["workflow", "step"] as const) {
    if (typeof task[field] !== "string" || task[field] === "")
      problems.push(`${field} must be a non-empty string`);
  }
  if (!isWholeNumber(task.run, 0)) problems.push("run must be a whole number");
  if (!isWholeNumber(task.attempt, 1)) problems.push("attempt must be a whole number from 1");
  if (task.function !== fn) {
    problems.push(
      `function is ${JSON.stringify(task.function)}, but the task came in on the subject of "${fn}"`,
    );
  }
  if (!("input" in task)) problems.push("input is missing (send null for no input)");
  if (task.effect !== (lane === "effect")) {
    problems.push(`effect must be ${lane === "effect"} on the ${lane} lane`);
  }
  if (task.idempotencyKey !== undefined && typeof task.idempotencyKey !== "string") {
    problems.push("idempotencyKey must be a string");
  }
  if (typeof task.deadline !== "number" || !Number.isFinite(task.deadline)) {
    problems.push("deadline must be a number (epoch milliseconds)");
  }
  if (typeof task.execution === "string" && !isReplyFor(task.reply, task.execution)) {
    problems.push("reply must be baton.events.p.<partition>.<execution>.result for the task's execution");
  }
  if (problems.length > 0) return invalid(problems, identityOf(task), messageHeaders);
  return { ok: true, task: body as TaskEnvelope };
}

function invalid(
  problems: string[],
  fromBody: AttemptIdentity | undefined,
  messageHeaders: MsgHdrs | undefined,
): ParsedTask {
  return { ok: false, problems, identity: fromBody ?? identityOfHeaders(messageHeaders) };
}

function identityOf(fields: Record<string, unknown>): AttemptIdentity | undefined {
  const { execution, step, run, attempt, reply } = fields;
  if (typeof execution !== "string" || !subjectTokenPattern.test(execution)) return undefined;
  if (typeof step !== "string" || step === "" || !isWholeNumber(run, 0) || !isWholeNumber(attempt, 1)) {
    return undefined;
  }
  if (!isReplyFor(reply, execution)) return undefined;
  return { execution, step, run, attempt, reply };
}

function identityOfHeaders(messageHeaders: MsgHdrs | undefined): AttemptIdentity | undefined {
  if (messageHeaders === undefined) return undefined;
  const number = (name: string): number | undefined => {
    const text = messageHeaders.get(name);
    return /^\d+$/.test(text) ? Number(text) : undefined;
  };
  return identityOf({
    execution: messageHeaders.get(headers.execution),
    step: messageHeaders.get(headers.step),
    run: number(headers.run),
    attempt: number(headers.attempt),
    reply: messageHeaders.get(headers.reply),
  });
}

function isWholeNumber(value: unknown, min: number): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= min;
}
