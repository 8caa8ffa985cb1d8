/**
 * The shape of a workflow document once it has passed validation: the YAML of
 * docs/workflow-language.md, typed. Field names are the language's own; durations and
 * expressions stay as the user wrote them (`"5s"`, `"${ $input.x }"`) and are parsed by
 * `duration.ts` and `expressions.ts`, so a definition can always be printed back as written.
 */

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A JSON value in which strings may hold `${ ... }` expressions; walked recursively. */
export type Template = Json;

/** A duration as written: a number with a unit (`250ms`, `5s`, `10m`, `2h`, `7d`). */
export type DurationText = string;

/** A string that is a whole `${ ... }` JSONata expression. */
export type ExpressionText = string;

export const backoffKinds = ["constant", "linear", "exponential"] as const;
export type Backoff = (typeof backoffKinds)[number];

export interface RetryPolicy {
  /** All attempts, the first included (1 = no retry). */
  attempts?: number;
  delay?: DurationText;
  backoff?: Backoff;
  maxDelay?: DurationText;
  jitter?: boolean;
  /** Only these error codes are retried. */
  on?: string[];
}

export interface CatchClause {
  /** Error codes this clause handles; omitted: any error. */
  errors?: string[];
  next: string;
}

/** Fields every step may have. */
export interface StepCommon {
  name: string;
  if?: ExpressionText;
  next?: string;
  output?: Template;
  timeout?: DurationText;
  catch?: CatchClause[];
}

export interface CallStep extends StepCommon {
  call: string;
  with?: Template;
  effect?: boolean;
  retry?: RetryPolicy;
}

export type SwitchBranch =
  | { when: ExpressionText; next: string; steps?: undefined; default?: undefined }
  | { when: ExpressionText; steps: Step[]; next?: undefined; default?: undefined }
  | { default: true; next: string; steps?: undefined; when?: undefined }
  | { default: true; steps: Step[]; next?: undefined; when?: undefined };

export interface SwitchStep extends StepCommon {
  switch: SwitchBranch[];
}

export interface ParallelStep extends StepCommon {
  parallel: { branches: Record<string, Step[]>; failFast?: boolean };
}

export interface MapStep extends StepCommon {
  map: { items: ExpressionText | Json[]; concurrency?: number; tolerate?: number; steps: Step[] };
}

export interface WaitStep extends StepCommon {
  /** A duration, or `until`: an expression or a literal ISO 8601 time. */
  wait: DurationText | { until: string };
}

export interface ReceiveStep extends StepCommon {
  receive: { signal?: string; subject?: string; match?: ExpressionText; timeout?: DurationText };
}

export interface EmitStep extends StepCommon {
  emit: { subject: string; data?: Template };
}

export interface WorkflowStep extends StepCommon {
  workflow: string;
  with?: Template;
}

export interface SetStep extends StepCommon {
  set: Record<string, Template>;
}

export interface ReturnStep extends StepCommon {
  return: Template;
}

export interface FailStep extends StepCommon {
  fail: { error: string; message?: string };
}

export type Step =
  | CallStep
  | SwitchStep
  | ParallelStep
  | MapStep
  | WaitStep
  | ReceiveStep
  | EmitStep
  | WorkflowStep
  | SetStep
  | ReturnStep
  | FailStep;

/** The step kinds, by the key that names them in YAML. */
export const stepKinds = [
  "call",
  "switch",
  "parallel",
  "map",
  "wait",
  "receive",
  "emit",
  "workflow",
  "set",
  "return",
  "fail",
] as const;
export type StepKind = (typeof stepKinds)[number];

/** Which kind a step is: exactly one of the kind keys is present in a valid step. */
export function stepKindOf(step: Step): StepKind {
  for (const kind of stepKinds) if (kind in step) return kind;
  throw new Error(`step "${step.name}" has no kind; validation should have refused it`);
}

export interface GithubTrigger {
  github: { events: string[]; repository?: string; when?: ExpressionText; input?: Template };
}
export interface ScheduleTrigger {
  schedule: {
    cron: string;
    timezone?: string;
    catchUp?: "none" | "latest" | "all";
    when?: ExpressionText;
    input?: Template;
  };
}
export interface QueueTrigger {
  queue: { subject: string; when?: ExpressionText; input?: Template };
}
export const infraEventTypes = [
  "node.joined",
  "node.left",
  "function.available",
  "function.unavailable",
] as const;
export interface InfraTrigger {
  infra: { events: string[]; when?: ExpressionText; input?: Template };
}
export const httpMethods = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;
export type HttpMethod = (typeof httpMethods)[number];
/** A route the API serves (docs/triggers.md): `$event` is `{ method, path, query, headers, body }`. */
export interface HttpTrigger {
  http: {
    path: string;
    /** Default POST. */
    method?: HttpMethod;
    /** Default async. */
    respond?: "async" | "sync";
    /** sync only: how long to wait for the end (default 10s). */
    timeout?: DurationText;
    /** Default none. */
    auth?: "none" | "token";
    /** `<n>/s`, `<n>/m`, `<n>/h`; default 20/s. */
    rate?: string;
    input?: Template;
  };
}
export type Trigger = GithubTrigger | ScheduleTrigger | QueueTrigger | InfraTrigger | HttpTrigger;

export interface WorkflowDefinition {
  baton: "v1";
  name: string;
  description?: string;
  /** JSON Schema (draft 2020-12) of the execution input. */
  input?: Record<string, Json> | boolean;
  output?: Template;
  timeout?: DurationText;
  retry?: RetryPolicy;
  triggers?: Trigger[];
  steps: Step[];
}
