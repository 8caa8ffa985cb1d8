/** `next` targets: a jump names a step of its own list, resolved once every step name is known. */
import { formatPath, type JsonPath } from "../load.ts";
import { didYouMean } from "./did-you-mean.ts";
import type { DocumentCheck, StepList } from "./document-check.ts";

/** Notes a `next` that names no step of `list` (yet): reported by {@link reportTargets}. */
export function checkTarget(check: DocumentCheck, target: unknown, path: JsonPath, list: StepList): void {
  if (typeof target === "string" && !list.names.has(target)) check.targets.push({ target, path, list });
}

/** Reports every noted target, saying where the step is when it is in another list. */
export function reportTargets(check: DocumentCheck): void {
  for (const { target, path, list } of check.targets) {
    const elsewhere = check.stepNames.get(target);
    const hint =
      elsewhere !== undefined
        ? `: "${target}" is at ${formatPath(elsewhere)}, and a jump stays in its own list`
        : didYouMean(target, list.names);
    check.atValue("UnknownStep", path, `no step named "${target}" in this list${hint}`);
  }
}
