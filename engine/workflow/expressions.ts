/**
 * Expressions: `${ ... }` strings holding JSONata, and templates (JSON values whose strings may
 * hold expressions). Compiled once when a workflow is loaded, evaluated synchronously inside
 * xstate transitions, which must stay pure.
 *
 * Why jsonata 1.8: the 2.x line made `evaluate` asynchronous, and a transition cannot await.
 * 1.8.7 evaluates synchronously, carries the 2024 prototype-pollution fix, and is the same
 * language for the expressions users write. Nothing is ever evaluated as JavaScript.
 *
 * Determinism: `$now()` and `$millis()` answer the time of the event being applied, and
 * `$random()` draws from a generator seeded by the evaluation, so replaying an event gives the
 * same result.
 */
import jsonata from "jsonata";
import type { Json, Template } from "./definition.ts";

/** What an expression may see; every field is a `$binding` in JSONata. */
export interface Bindings {
  input?: Json;
  steps?: Record<string, StepRecord>;
  item?: Json;
  index?: number;
  event?: Json;
  trigger?: Json;
  result?: Json;
  vars?: Record<string, Json>;
  execution?: Json;
  /** Only for tests' function behaviours: the arguments of a call. */
  args?: Json;
}

export interface StepRecord {
  output: Json;
  error: Json;
  attempts: number;
}

/** Per-evaluation limits. Counting evaluation steps instead of milliseconds keeps evaluation deterministic. */
export interface Budget {
  maxSteps: number;
  maxDepth: number;
  /** Longest string or array any sub-expression may produce. */
  maxLength: number;
}

export const defaultBudget: Budget = { maxSteps: 200_000, maxDepth: 400, maxLength: 1_000_000 };

export interface EvaluationOptions {
  /** The logical time (epoch ms) of the event being applied. */
  now: number;
  /** Seeds `$random()`. */
  seed?: string;
  budget?: Budget;
}

/** Raised when an expression fails at run time; becomes the step error `ExpressionError`. */
export class ExpressionError extends Error {
  override name = "ExpressionError";
  constructor(
    message: string,
    readonly expression: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A syntax error found while compiling, with the offset of the offending character in the string. */
export interface ExpressionSyntaxProblem {
  message: string;
  /** 0-based offset into the template string where the problem is. */
  offset: number;
  expression: string;
}

/** One `${ ... }` occurrence inside a string. */
interface Segment {
  /** JSONata source, without the `${` and `}`. */
  source: string;
  /** 0-based offset of the source's first character in the whole string. */
  offset: number;
  start: number;
  end: number;
}

/**
 * Finds the `${ ... }` segments of a string, honouring JSONata's string literals and nested
 * braces so that `${ {"a": 1}.a }` is one segment. An unclosed `${` is reported as a problem.
 */
export function findSegments(text: string): { segments: Segment[]; unclosedAt?: number } {
  const segments: Segment[] = [];
  let i = 0;
  while (i < text.length) {
    const start = text.indexOf("${", i);
    if (start < 0) break;
    let depth = 1;
    let quote: string | undefined;
    let j = start + 2;
    for (; j < text.length && depth > 0; j++) {
      const ch = text[j];
      if (quote) {
        if (ch === "\\") j++;
        else if (ch === quote) quote = undefined;
      } else if (ch === '"' || ch === "'" || ch === "`") quote = ch;
      else if (ch === "{") depth++;
      else if (ch === "}") depth--;
    }
    if (depth > 0) return { segments, unclosedAt: start };
    segments.push({ source: text.slice(start + 2, j - 1), offset: start + 2, start, end: j });
    i = j;
  }
  return { segments };
}

/** Whether the whole string is one expression (its result replaces the string). */
export function isExpression(text: string): boolean {
  const { segments } = findSegments(text);
  return segments.length === 1 && segments[0]!.start === 0 && segments[0]!.end === text.length;
}

/** Whether a string holds any expression at all. */
export function hasExpression(text: string): boolean {
  return text.includes("${");
}

interface JsonataFailure {
  message: string;
  position?: number;
  code?: string;
}

function asJsonataFailure(error: unknown): JsonataFailure {
  if (typeof error === "object" && error !== null && "message" in error) return error as JsonataFailure;
  return { message: String(error) };
}

/** Checks every expression of one string; returns the syntax problems (none for a good string). */
export function checkExpressionSyntax(text: string): ExpressionSyntaxProblem[] {
  const { segments, unclosedAt } = findSegments(text);
  const problems: ExpressionSyntaxProblem[] = [];
  for (const segment of segments) {
    if (segment.source.trim() === "") {
      problems.push({ message: "empty expression", offset: segment.start, expression: segment.source });
      continue;
    }
    try {
      jsonata(segment.source);
    } catch (error) {
      const failure = asJsonataFailure(error);
      const position = Math.max(0, Math.min(segment.source.length, (failure.position ?? 1) - 1));
      problems.push({
        message: failure.message,
        offset: segment.offset + position,
        expression: segment.source.trim(),
      });
    }
  }
  if (unclosedAt !== undefined) {
    problems.push({ message: 'unclosed "${": add the closing "}"', offset: unclosedAt, expression: text });
  }
  return problems;
}

const compiledCache = new Map<string, jsonata.Expression>();

function compileSource(source: string): jsonata.Expression {
  let compiled = compiledCache.get(source);
  if (!compiled) {
    compiled = jsonata(source);
    compiledCache.set(source, compiled);
  }
  return compiled;
}

/** A small, seedable generator (mulberry32), so `$random()` replays identically. */
export function seededRandom(seed: string): () => number {
  let state = 0x9e3779b9;
  for (let i = 0; i < seed.length; i++) state = Math.imul(state ^ seed.charCodeAt(i), 0x85ebca6b);
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function budgetHooks(source: string, budget: Budget) {
  let steps = 0;
  let depth = 0;
  return {
    __evaluate_entry() {
      steps++;
      depth++;
      if (steps > budget.maxSteps) {
        throw new ExpressionError(`expression took more than ${budget.maxSteps} evaluation steps`, source);
      }
      if (depth > budget.maxDepth) {
        throw new ExpressionError(`expression nested deeper than ${budget.maxDepth} levels`, source);
      }
    },
    __evaluate_exit(_expr: unknown, _input: unknown, _env: unknown, result: unknown) {
      depth--;
      if ((typeof result === "string" || Array.isArray(result)) && result.length > budget.maxLength) {
        throw new ExpressionError(`expression produced a value longer than ${budget.maxLength}`, source);
      }
    },
  };
}

/** Turns JSONata's results into JSON: `undefined` (no match) becomes `null`, functions are refused. */
function toJson(value: unknown, source: string): Json {
  if (value === undefined) return null;
  if (typeof value === "function") {
    throw new ExpressionError("expression evaluated to a function, not a value", source);
  }
  if (Array.isArray(value)) {
    // JSONata marks sequences with extra properties; a plain copy keeps only the items.
    return value.map((item) => toJson(item, source));
  }
  if (value !== null && typeof value === "object") {
    const out: Record<string, Json> = {};
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined) out[key] = toJson(item, source);
    }
    return out;
  }
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new ExpressionError(`expression evaluated to ${value}, which JSON cannot hold`, source);
  }
  return value as Json;
}

/** Evaluates one JSONata source (without `${ }`). Throws {@link ExpressionError}. */
export function evaluateExpression(source: string, bindings: Bindings, options: EvaluationOptions): Json {
  const random = seededRandom(`${options.seed ?? ""}|${source}`);
  const scope: Record<string, unknown> = {
    ...bindings,
    ...budgetHooks(source, options.budget ?? defaultBudget),
    now: () => new Date(options.now).toISOString(),
    millis: () => options.now,
    random,
  };
  try {
    // `$` (the context item) is the execution input, so `${ $.repo }` reads like `${ $input.repo }`.
    return toJson(compileSource(source).evaluate(bindings.input ?? null, scope), source);
  } catch (error) {
    if (error instanceof ExpressionError) throw error;
    const failure = asJsonataFailure(error);
    throw new ExpressionError(`${source.trim()}: ${failure.message}`, source, { cause: error });
  }
}

/** A value as text: strings as they are, `null` as nothing, anything else as JSON. */
export function toText(value: Json): string {
  if (value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Evaluates a string: a whole expression gives its value, a string with embedded ones gives text. */
export function evaluateString(text: string, bindings: Bindings, options: EvaluationOptions): Json {
  const { segments } = findSegments(text);
  if (segments.length === 0) return text;
  const first = segments[0]!;
  if (segments.length === 1 && first.start === 0 && first.end === text.length) {
    return evaluateExpression(first.source, bindings, options);
  }
  let out = "";
  let at = 0;
  for (const segment of segments) {
    out += text.slice(at, segment.start) + toText(evaluateExpression(segment.source, bindings, options));
    at = segment.end;
  }
  return out + text.slice(at);
}

/** Walks a template, evaluating every string with an expression in it. */
export function evaluateTemplate(template: Template, bindings: Bindings, options: EvaluationOptions): Json {
  if (typeof template === "string")
    return hasExpression(template) ? evaluateString(template, bindings, options) : template;
  if (Array.isArray(template)) return template.map((item) => evaluateTemplate(item, bindings, options));
  if (template !== null && typeof template === "object") {
    const out: Record<string, Json> = {};
    for (const [key, value] of Object.entries(template))
      out[key] = evaluateTemplate(value, bindings, options);
    return out;
  }
  return template;
}

/** Evaluates a condition (`if`, `when`, `match`) with JSONata's truthiness. */
export function evaluateCondition(text: string, bindings: Bindings, options: EvaluationOptions): boolean {
  const value = evaluateString(text, bindings, options);
  if (Array.isArray(value)) return value.length > 0;
  if (value !== null && typeof value === "object") return Object.keys(value).length > 0;
  return Boolean(value);
}
