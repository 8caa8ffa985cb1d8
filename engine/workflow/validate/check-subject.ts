/** NATS subjects: what emit and receive steps send and wait on, what queue triggers listen on. */
import { findSegments } from "../expressions.ts";
import type { JsonPath } from "../load.ts";
import { reservedPrefixOf } from "../subject-guard.ts";
import { checkExpressions } from "./check-expressions.ts";
import type { DocumentCheck } from "./document-check.ts";
import { quote } from "./wording.ts";

/**
 * A NATS subject: tokens separated by dots, no empty token, no whitespace. `*` (one token) and
 * `>` (the rest, last) only where `wildcards` is allowed. With `expressions`, `${ }` segments are
 * checked as expressions and each stands for one literal piece of a token.
 */
export function checkSubject(
  check: DocumentCheck,
  value: unknown,
  path: JsonPath,
  options: { wildcards: boolean; expressions: boolean },
): void {
  if (typeof value !== "string") return;
  const where = check.where(path);
  const invalid = (reason: string) =>
    check.atValue("InvalidSubject", path, `${where}: ${quote(value)} ${reason}`);
  let literal = value;
  if (value.includes("${")) {
    if (!options.expressions) return invalid("cannot hold expressions: a trigger listens on a fixed subject");
    if (!checkExpressions(check, value, path)) return;
    const { segments } = findSegments(value);
    literal = "";
    let at = 0;
    for (const segment of segments) {
      literal += `${value.slice(at, segment.start)}x`;
      at = segment.end;
    }
    literal += value.slice(at);
  }
  if (literal === "") return invalid("is empty: write tokens separated by dots (orders.created)");
  if (/\s/.test(literal)) return invalid("has whitespace: write tokens separated by dots, without spaces");
  const tokens = literal.split(".");
  if (tokens.some((token) => token === ""))
    return invalid("has an empty token: no leading, trailing or double dots");
  // Only a first token written out is known here; one an expression makes is guarded at run time.
  const reserved = reservedPrefixOf(value);
  if (reserved)
    return invalid(`is under "${reserved}", which is reserved for Baton and NATS: use a subject of your own`);
  const wildcardAt = tokens.findIndex((token) => token.includes("*") || token.includes(">"));
  if (wildcardAt < 0) return;
  if (!options.wildcards) {
    return invalid(
      "has a wildcard (* or >): only queue triggers listen on wildcards; name one concrete subject",
    );
  }
  for (const [index, token] of tokens.entries()) {
    if (!token.includes("*") && !token.includes(">")) continue;
    if (token !== "*" && token !== ">") return invalid(`has "${token}": * and > must be whole tokens`);
    if (token === ">" && index !== tokens.length - 1)
      return invalid('has ">" before the end: > matches the rest, so it comes last');
    if (index === 0)
      return invalid(
        "starts with a wildcard, so it would match the subjects reserved for Baton and NATS too",
      );
  }
}
