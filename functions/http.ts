// The built-in `http` function: call any HTTP endpoint (a Fission router, an OpenFaaS gateway, a
// Knative service, a plain API) from a workflow.
//
//   with: { method, url, headers, body, timeout }  →  output: { status, headers, body }
//
// Hosts must be allowed by BATON_HTTP_ALLOW (comma-separated `host`, `host:port`, `*.domain`, or
// `*` for any); with it empty or unset, every request is refused. Redirects are followed by hand
// (at most 5) so that a redirect cannot lead to a host the list does not allow.
//
// Errors: 4xx → `HttpError` (not retryable), 5xx → `HttpError` (retryable), a connection that
// fails → `NetworkError` (retryable), past `timeout` → `Timeout` (retryable), a host not allowed
// → `HostNotAllowed`, a response larger than 8 MiB → `ResponseTooLarge` (neither retryable).
import { BatonError, defineFunction } from "../sdk/index.ts";

export interface HttpInput {
  readonly method?: string;
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** A string is sent as is; anything else as JSON (with `content-type: application/json` unless set). */
  readonly body?: unknown;
  /** Milliseconds for the whole exchange; default: the attempt's deadline. */
  readonly timeout?: number;
}

export interface HttpOutput {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** Parsed JSON when the response says it is JSON; text for text types; base64 otherwise; `null` when empty. */
  readonly body: unknown;
  readonly bodyEncoding?: "base64";
}

const maxRedirects = 5;
const maxBodyBytes = 8 * 1024 * 1024;
const textTypes = /^(text\/|application\/(xml|javascript|x-www-form-urlencoded)|[^;]*\+xml)/i;
const jsonTypes = /^(application\/json|[^;]*\+json)/i;

export const http = defineFunction({
  name: "http",
  input: {
    type: "object",
    required: ["url"],
    properties: {
      method: { type: "string", pattern: "^[A-Za-z]+$", default: "GET" },
      url: { type: "string", minLength: 1 },
      headers: { type: "object", additionalProperties: { type: "string" } },
      body: true,
      timeout: { type: "number", exclusiveMinimum: 0 },
    },
    additionalProperties: false,
  },
  async handler(input: HttpInput, ctx): Promise<HttpOutput> {
    const allow = parseAllowList(process.env.BATON_HTTP_ALLOW);
    const timeoutMs = Math.max(Math.min(input.timeout ?? Infinity, ctx.deadline - Date.now()), 1);
    const timeout = AbortSignal.timeout(Math.min(timeoutMs, 2 ** 31 - 1));
    const signal = AbortSignal.any([ctx.signal, timeout]);

    let method = (input.method ?? "GET").toUpperCase();
    let url = parseUrl(input.url);
    let body = requestBody(method, input);
    const headers = new Headers(input.headers);
    if (body !== undefined && typeof input.body !== "string" && !headers.has("content-type")) {
      headers.set("content-type", "application/json");
    }
    for (let redirects = 0; ; redirects++) {
      checkAllowed(url, allow);
      let response: Response;
      try {
        response = await fetch(url, { method, headers, body, redirect: "manual", signal });
      } catch (error) {
        throw requestFailure(error, { ctxSignal: ctx.signal, timeout, timeoutMs, url });
      }
      const location = response.headers.get("location");
      if (response.status >= 300 && response.status < 400 && location !== null) {
        await response.body?.cancel();
        if (redirects >= maxRedirects) {
          throw new BatonError("HttpError", `more than ${maxRedirects} redirects, the last to ${location}`, {
            details: { status: response.status },
          });
        }
        url = new URL(location, url);
        // 303, and 301/302 after anything but GET or HEAD, turn the request into a GET without a body.
        if (
          response.status === 303 ||
          ((response.status === 301 || response.status === 302) && method !== "HEAD")
        ) {
          if (method !== "GET") headers.delete("content-type");
          method = method === "HEAD" ? "HEAD" : "GET";
          body = undefined;
        }
        continue;
      }
      const output = await readResponse(response, signal);
      if (response.status >= 400) {
        throw new BatonError(
          "HttpError",
          `${method} ${url.href} answered ${response.status} ${response.statusText}`,
          {
            retryable: response.status >= 500,
            details: { ...output },
          },
        );
      }
      return output;
    }
  },
});

export default http;

/** The parsed allow-list: `"*"`, or host patterns with an optional port. */
export type AllowList = "*" | readonly { host: string; port: string | undefined }[];

export function parseAllowList(text: string | undefined): AllowList {
  const entries = (text ?? "")
    .split(",")
    .map((entry) => entry.trim().toLowerCase())
    .filter((entry) => entry !== "");
  if (entries.includes("*")) return "*";
  return entries.map((entry) => {
    const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(entry);
    return { host: match?.[1] ?? entry, port: match?.[2] };
  });
}

/** Whether `url` may be called under `allow`. */
export function isAllowed(url: URL, allow: AllowList): boolean {
  if (allow === "*") return true;
  const host = url.hostname.toLowerCase();
  const port = url.port !== "" ? url.port : url.protocol === "https:" ? "443" : "80";
  return allow.some(
    (entry) =>
      (entry.port === undefined || entry.port === port) &&
      (entry.host === host || (entry.host.startsWith("*.") && host.endsWith(entry.host.slice(1)))),
  );
}

function checkAllowed(url: URL, allow: AllowList): void {
  if (isAllowed(url, allow)) return;
  const message =
    allow !== "*" && allow.length === 0
      ? `BATON_HTTP_ALLOW is empty, so the http function refuses every host (asked for ${url.host}); set it to a comma-separated list of hosts (host or host:port, *.domain, or * for any)`
      : `host ${url.host} is not allowed; add it to BATON_HTTP_ALLOW (now: ${process.env.BATON_HTTP_ALLOW ?? ""})`;
  throw new BatonError("HostNotAllowed", message, { details: { host: url.host } });
}

function parseUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BatonError("InputInvalid", `url ${JSON.stringify(text)} is not an absolute URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new BatonError("InputInvalid", `url ${JSON.stringify(text)} is not http or https`);
  }
  return url;
}

function requestBody(method: string, input: HttpInput): string | undefined {
  if (input.body === undefined || input.body === null) return undefined;
  if (method === "GET" || method === "HEAD") {
    throw new BatonError("InputInvalid", `a ${method} request cannot have a body`);
  }
  return typeof input.body === "string" ? input.body : JSON.stringify(input.body);
}

function requestFailure(
  error: unknown,
  context: { ctxSignal: AbortSignal; timeout: AbortSignal; timeoutMs: number; url: URL },
): unknown {
  // Cancelled or past the attempt's deadline: the worker reports that, whatever is thrown here.
  if (context.ctxSignal.aborted) return context.ctxSignal.reason;
  if (context.timeout.aborted) {
    return new BatonError("Timeout", `no answer from ${context.url.host} within ${context.timeoutMs} ms`, {
      retryable: true,
    });
  }
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  const reason =
    typeof cause?.code === "string"
      ? cause.code
      : typeof cause?.message === "string"
        ? cause.message
        : (error as Error).message;
  return new BatonError("NetworkError", `could not reach ${context.url.host}: ${reason}`, {
    retryable: true,
    cause: error,
  });
}

async function readResponse(response: Response, signal: AbortSignal): Promise<HttpOutput> {
  const bytes = await readLimited(response, signal);
  const headers = Object.fromEntries(response.headers);
  const type = response.headers.get("content-type") ?? "";
  if (bytes.length === 0) return { status: response.status, headers, body: null };
  if (jsonTypes.test(type)) {
    const text = new TextDecoder().decode(bytes);
    try {
      return { status: response.status, headers, body: JSON.parse(text) as unknown };
    } catch {
      return { status: response.status, headers, body: text };
    }
  }
  if (type === "" || textTypes.test(type)) {
    return { status: response.status, headers, body: new TextDecoder().decode(bytes) };
  }
  return {
    status: response.status,
    headers,
    body: Buffer.from(bytes).toString("base64"),
    bodyEncoding: "base64",
  };
}

async function readLimited(response: Response, signal: AbortSignal): Promise<Uint8Array> {
  if (response.body === null) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body.getReader();
  for (;;) {
    if (signal.aborted) {
      await reader.cancel();
      throw signal.reason;
    }
    // The DOM stream types are not in this project's lib: say what the reader yields.
    const { done, value } = (await reader.read()) as { done: boolean; value?: Uint8Array };
    if (done || value === undefined) break;
    size += value.length;
    if (size > maxBodyBytes) {
      await reader.cancel();
      throw new BatonError(
        "ResponseTooLarge",
        `the response from ${response.url} is larger than ${maxBodyBytes} bytes`,
      );
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}
