/** One of two keys, not both and not neither: a switch branch's rules, a receive's. */
import type { ValidationCode } from "../../errors.ts";
import type { JsonPath } from "../load.ts";
import type { DocumentCheck } from "./document-check.ts";
import type { Fields } from "./fields.ts";

/**
 * Reports when a mapping has both of two keys (at the later one) or neither (at the mapping).
 * Returns the message for "neither" instead of reporting it when `collectNeither` is set.
 */
export function checkExclusive(
  check: DocumentCheck,
  body: Fields,
  path: JsonPath,
  [a, b]: [string, string],
  code: ValidationCode,
  rule: string,
  collectNeither = false,
): string | undefined {
  const present = Object.keys(body).filter((key) => key === a || key === b);
  if (present.length === 2)
    check.atKey(code, [...path, present[1]!], `${rule}, not both: remove "${a}" or "${b}"`);
  if (present.length > 0) return undefined;
  const neither = `${rule}: add "${a}" or "${b}"`;
  if (!collectNeither) check.atValue(code, path, `${check.where(path)}: ${neither}`);
  return neither;
}
