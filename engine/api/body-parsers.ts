/**
 * How request bodies are read. Every body is bounded by the server's `bodyLimit` (413
 * `BodyTooLarge`, nothing read past it). JSON bodies are parsed with fastify's parser (which
 * refuses `__proto__` and `constructor.prototype` keys), after a scan that refuses nesting
 * deeper than `maxJsonDepth`: such a value would overflow the stack of whatever walks it next.
 * Workflow routes take their document as text, YAML or JSON, exactly as written, so that the
 * line and column of every problem point into what the client sent.
 */
import type { FastifyInstance } from "fastify";
import { ApiError } from "./problems.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** Size of the request body in bytes, as received (0 without a body). */
    bodyBytes: number;
  }
}

export const yamlContentTypes = ["application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"];

/** Deeper JSON is refused; no workflow input needs more. */
export const maxJsonDepth = 128;

/** Installs the JSON parser of the whole server. */
export function useJsonBodies(app: FastifyInstance): void {
  app.decorateRequest("bodyBytes", 0);
  const parse = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = body as string;
    request.bodyBytes = Buffer.byteLength(text);
    if (isNestedDeeper(text, maxJsonDepth)) {
      done(
        new ApiError("RequestInvalid", `the JSON body is nested deeper than ${maxJsonDepth} levels`, [
          { code: "RequestInvalid", message: `nested deeper than ${maxJsonDepth} levels`, path: "body" },
        ]),
        undefined,
      );
      return;
    }
    void parse(request, text, (error, value) => {
      // `1e999` is valid JSON but no number: it would become `null` on its way on.
      if (!error && hasNonFiniteNumber(value)) {
        done(
          new ApiError("RequestInvalid", "a number in the JSON body is too large to represent", [
            { code: "RequestInvalid", message: "a number is out of range", path: "body" },
          ]),
          undefined,
        );
        return;
      }
      done(error, value);
    });
  });
}

/** Whether a parsed JSON value holds an infinite number. Recursion is bounded by `maxJsonDepth`. */
function hasNonFiniteNumber(value: unknown): boolean {
  if (typeof value === "number") return !Number.isFinite(value);
  if (typeof value !== "object" || value === null) return false;
  return Object.values(value).some(hasNonFiniteNumber);
}

/** Installs, in the calling plugin only, parsers that hand workflow documents over as text. */
export function useWorkflowTextBodies(app: FastifyInstance): void {
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser(
    ["application/json", ...yamlContentTypes],
    { parseAs: "string" },
    (request, body, done) => {
      request.bodyBytes = Buffer.byteLength(body);
      done(null, body);
    },
  );
}

/** Whether JSON text opens more than `max` arrays and objects inside one another. */
export function isNestedDeeper(text: string, max: number): boolean {
  let depth = 0;
  let isInString = false;
  for (let index = 0; index < text.length; index++) {
    const char = text.charCodeAt(index);
    if (isInString) {
      if (char === 0x5c)
        index++; // backslash: the next character is escaped
      else if (char === 0x22) isInString = false;
    } else if (char === 0x22) isInString = true;
    else if (char === 0x5b || char === 0x7b) {
      if (++depth > max) return true;
    } else if (char === 0x5d || char === 0x7d) depth--;
  }
  return false;
}
