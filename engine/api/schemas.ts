/**
 * The JSON Schemas of the API: route parameters, bodies and answers. Fastify validates requests
 * against them, serializes answers with them, and @fastify/swagger turns them into the OpenAPI
 * description served at `/docs`. Shared shapes are registered once (`sharedSchemas`) and
 * referenced by `$id`.
 */
import { linksSchema } from "./execution-links.ts";
import { httpStatusOf } from "./problems.ts";
import { progressSchema } from "./progress-relay.ts";

const ref = (id: string) => ({ $ref: `${id}#` });

export const executionStatuses = [
  "running",
  "waiting",
  "succeeded",
  "failed",
  "cancelled",
  "timed_out",
] as const;

/** Generated execution ids are `x<ms36><random hex>`; item and child ids add `_`-separated parts. */
export const executionIdSchema = {
  type: "string",
  pattern: "^[A-Za-z0-9_-]{1,200}$",
  description: "An execution id: letters, digits, `_` and `-`, at most 200 characters.",
} as const;

/** The pattern of the workflow language (`workflowName` in the language's schema). */
export const workflowNameSchema = {
  type: "string",
  pattern: "^[a-z][a-z0-9-]{0,62}$",
  description:
    "A workflow name: a lowercase letter, then lowercase letters, digits or dashes; at most 63 characters.",
} as const;

/** The pattern of the workflow language (`signalName`). */
export const signalNameSchema = {
  type: "string",
  pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
  description:
    "A signal name: a letter or digit, then letters, digits, dots, underscores or dashes; at most 128 characters.",
} as const;

export const waitSchema = {
  type: "string",
  pattern: "^[0-9]{1,9}(ms|s|m|h)$",
  description:
    "How long to wait for the end: a whole number with a unit (`500ms`, `30s`, `2m`); cut to the server's maximum (`BATON_API_MAX_WAIT`).",
} as const;

const isoTime = { type: "string", format: "date-time" } as const;
const anyJson = { description: "Any JSON value." } as const;

const problemSchema = {
  $id: "Problem",
  type: "object",
  description: "An RFC 9457 problem document (`application/problem+json`).",
  required: ["type", "title", "status", "detail", "code"],
  properties: {
    type: { type: "string", description: "`urn:baton:error:<code>`." },
    title: { type: "string" },
    status: { type: "integer" },
    detail: { type: "string", description: "What went wrong, and how to put it right." },
    code: {
      type: "string",
      enum: Object.keys(httpStatusOf),
      description: "A stable Baton error code (docs/errors.md).",
    },
    errors: {
      type: "array",
      items: {
        type: "object",
        required: ["code", "message", "path"],
        properties: {
          code: { type: "string" },
          message: { type: "string" },
          path: { type: "string" },
          line: { type: "integer" },
          column: { type: "integer" },
        },
      },
    },
  },
} as const;

const stepErrorSchema = {
  $id: "StepError",
  type: "object",
  required: ["code", "message", "retryable"],
  additionalProperties: true,
  properties: {
    code: { type: "string" },
    message: { type: "string" },
    retryable: { type: "boolean" },
    details: anyJson,
  },
} as const;

const stepSchema = {
  $id: "Step",
  type: "object",
  description: "A step as the history tells it: its latest run.",
  required: ["name", "status", "attempts", "startedAt", "effect", "runs"],
  properties: {
    name: { type: "string" },
    status: {
      type: "string",
      enum: ["running", "waiting", "succeeded", "failed", "skipped", "cancelled", "timed_out"],
    },
    attempts: { type: "integer", description: "Attempts of the latest run (call steps; 0 for the others)." },
    startedAt: isoTime,
    endedAt: isoTime,
    effect: {
      type: "boolean",
      description: "Whether it is an effect step (run once, with an idempotency key).",
    },
    runs: {
      type: "integer",
      description: "How many times the step was entered (loops and retries enter it again).",
    },
    input: {
      ...anyJson,
      description: "The input of a `call` step while it runs, as its function received it.",
    },
    output: { ...anyJson, description: "The latest run's output, once it succeeded." },
    error: { ...anyJson, description: "Why the latest run failed." },
  },
} as const;

const parentSchema = {
  type: "object",
  properties: {
    execution: { type: "string" },
    step: { type: "string" },
    run: { type: "integer" },
    kind: { type: "string", enum: ["item", "child"] },
  },
} as const;

const executionSchema = {
  $id: "Execution",
  type: "object",
  required: ["id", "workflow", "revision", "status", "input", "startedAt", "traceId", "steps"],
  properties: {
    id: { type: "string" },
    workflow: { type: "string" },
    revision: { type: "integer" },
    status: { type: "string", enum: executionStatuses },
    input: anyJson,
    output: anyJson,
    error: ref("StepError"),
    startedAt: isoTime,
    endedAt: isoTime,
    parent: parentSchema,
    traceId: {
      type: ["string", "null"],
      description: "The W3C trace id of the execution's trace; null until the engine records one.",
    },
    steps: { type: "array", items: ref("Step") },
    progress: progressSchema,
  },
} as const;

const executionSummarySchema = {
  $id: "ExecutionSummary",
  type: "object",
  required: ["id", "workflow", "revision", "status", "startedAt"],
  properties: {
    id: { type: "string" },
    workflow: { type: "string" },
    revision: { type: "integer" },
    status: { type: "string", enum: executionStatuses },
    startedAt: isoTime,
    endedAt: isoTime,
  },
} as const;

const executionAcceptedSchema = {
  $id: "ExecutionAccepted",
  type: "object",
  required: ["id", "workflow", "revision", "status", "links"],
  properties: {
    id: { type: "string" },
    workflow: { type: "string" },
    revision: { type: "integer" },
    status: { type: "string", enum: executionStatuses },
    links: linksSchema,
  },
} as const;

const historyEventSchema = {
  $id: "HistoryEvent",
  type: "object",
  required: ["seq", "at", "type"],
  properties: {
    seq: { type: "integer", description: "From 1, without gaps." },
    at: isoTime,
    type: { type: "string", description: "ExecutionStarted, StepScheduled, AttemptStarted, ..." },
    step: { type: "string" },
    attempt: { type: "integer" },
    worker: { type: "string" },
    idempotencyKey: { type: "string" },
    data: anyJson,
  },
} as const;

const workflowSummarySchema = {
  $id: "WorkflowSummary",
  type: "object",
  required: ["name", "revision", "updatedAt"],
  properties: {
    name: { type: "string" },
    revision: { type: "integer" },
    description: { type: "string" },
    updatedAt: isoTime,
  },
} as const;

const workflowSchema = {
  $id: "Workflow",
  type: "object",
  required: ["name", "revision", "updatedAt", "source", "triggers"],
  properties: {
    name: { type: "string" },
    revision: { type: "integer" },
    description: { type: "string" },
    updatedAt: isoTime,
    source: { type: "string", description: "The document as submitted (YAML or JSON)." },
    triggers: { type: "array", items: { type: "object", additionalProperties: true } },
    nextFires: { type: "array", items: isoTime, description: "The next fire times of its schedules." },
  },
} as const;

const workflowSubmittedSchema = {
  $id: "WorkflowSubmitted",
  type: "object",
  required: ["name", "revision", "triggers"],
  properties: {
    name: { type: "string" },
    revision: { type: "integer" },
    triggers: { type: "array", items: { type: "object", additionalProperties: true } },
  },
} as const;

export const sharedSchemas = [
  problemSchema,
  stepErrorSchema,
  stepSchema,
  executionSchema,
  executionSummarySchema,
  executionAcceptedSchema,
  historyEventSchema,
  workflowSummarySchema,
  workflowSchema,
  workflowSubmittedSchema,
];

export const schemaRefs = {
  problem: ref("Problem"),
  execution: ref("Execution"),
  executionSummary: ref("ExecutionSummary"),
  executionAccepted: ref("ExecutionAccepted"),
  historyEvent: ref("HistoryEvent"),
  workflow: ref("Workflow"),
  workflowSummary: ref("WorkflowSummary"),
  workflowSubmitted: ref("WorkflowSubmitted"),
};

/** The answers every authenticated route may give besides its own. */
export function problemResponses(...statuses: number[]): Record<number, unknown> {
  const answers: Record<number, unknown> = {};
  for (const status of [...statuses, 401]) {
    answers[status] = {
      description: `A problem document (${status}).`,
      content: { "application/problem+json": { schema: schemaRefs.problem } },
    };
  }
  return answers;
}
