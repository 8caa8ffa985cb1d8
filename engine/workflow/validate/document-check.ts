/** What one document's validation accumulates while it walks the document. */
import type { Problem, ValidationCode } from "../../errors.ts";
import { formatPath, type JsonPath, type SourceMap } from "../load.ts";
import { createProblem } from "./problems.ts";

/** A step list being walked: the names of its steps, the targets a `next` in it may name. */
export interface StepList {
  names: Set<string>;
}

export interface PendingTarget {
  target: string;
  path: JsonPath;
  list: StepList;
}

/** Everything one document's validation accumulates. */
export class DocumentCheck {
  readonly problems: Problem[] = [];
  /** Paths of steps and triggers → how messages name them (`step "fetch"`). */
  private readonly labels = new Map<string, string>();
  /** Paths of steps, formatted. */
  readonly stepPaths = new Set<string>();
  /** Every step name seen so far → the path of its step. */
  readonly stepNames = new Map<string, JsonPath>();
  /** `next` targets, resolved once every step name is known. */
  readonly targets: PendingTarget[] = [];

  constructor(private readonly positions: SourceMap) {}

  label(path: JsonPath, label: string): void {
    this.labels.set(formatPath(path), label);
  }

  /** How a message names the node at `path`: `step "fetch"`, `"retry.attempts" in step "fetch"`. */
  where(path: JsonPath): string {
    for (let length = path.length; length > 0; length--) {
      const label = this.labels.get(formatPath(path.slice(0, length)));
      if (label === undefined) continue;
      if (length === path.length) return label;
      const rest = formatPath(path.slice(length)).replace(/^\./, "");
      return `"${rest}" in ${label}`;
    }
    return path.length === 0 ? "the workflow" : `"${formatPath(path)}"`;
  }

  atValue(code: ValidationCode, path: JsonPath, message: string): void {
    this.problems.push(createProblem(code, path, message, this.positions.valueAt(path)));
  }

  atKey(code: ValidationCode, path: JsonPath, message: string): void {
    this.problems.push(createProblem(code, path, message, this.positions.keyAt(path)));
  }

  atChar(code: ValidationCode, path: JsonPath, offset: number, message: string): void {
    this.problems.push(createProblem(code, path, message, this.positions.charAt(path, offset)));
  }
}
