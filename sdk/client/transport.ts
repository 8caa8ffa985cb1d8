// HTTP to the Baton API: the base URL, the bearer token, deadlines, JSON in and out, and the
// translation of failures into the client's errors (errors.ts). Every call of the client goes
// through `request`, so there is one place that decides what an answer means.
import {
  request as httpRequest,
  type IncomingHttpHeaders,
  type RequestOptions as HttpOptions,
} from "node:http";
import { BatonConnectionError, errorFromResponse } from "./errors.ts";

export interface RequestOptions {
  readonly query?: Readonly<Record<string, string | number | undefined>>;
  /** A JSON value to send (serialised here), or raw text or bytes with `contentType`. */
  readonly json?: unknown;
  readonly text?: string;
  readonly bytes?: Uint8Array;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** How much longer than the usual deadline the server may take (a long poll's wait). */
  readonly extraTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** The headers of an answer, by lower-case name. */
export interface AnswerHeaders {
  get(name: string): string | null;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: AnswerHeaders;
  /** The parsed JSON body; `undefined` when empty. */
  readonly body: unknown;
}

export class Transport {
  readonly baseUrl: URL;

  constructor(
    url: string,
    private readonly token: string | undefined,
    readonly requestTimeoutMs: number,
  ) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (error) {
      throw new TypeError(`"${url}" is not a URL; give the API's base URL, e.g. http://127.0.0.1:8080`, {
        cause: error,
      });
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
      throw new TypeError(`"${url}" is not an http:// or https:// URL`);
    // Resolve paths against the base's own path: "http://host/baton" + "v1/..." → "/baton/v1/...".
    if (!parsed.pathname.endsWith("/")) parsed.pathname += "/";
    this.baseUrl = parsed;
  }

  /** The absolute URL of an API path (`/v1/...`), with the query's defined parameters. */
  url(path: string, query: RequestOptions["query"] = {}): URL {
    const url = new URL(path.replace(/^\//, ""), this.baseUrl);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url;
  }

  /** The headers that authenticate a request (none without a token). */
  authHeaders(): Record<string, string> {
    return this.token === undefined || this.token === "" ? {} : { authorization: `Bearer ${this.token}` };
  }

  /**
   * Sends a request and resolves with a 2xx answer; throws `BatonApiError` for an error status,
   * `BatonConnectionError` when the server cannot be reached or does not answer in time, and the
   * abort reason when `signal` aborts.
   */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<HttpAnswer> {
    const url = this.url(path, options.query);
    const headers: Record<string, string> = {
      accept: "application/json, application/problem+json",
      ...this.authHeaders(),
      ...options.headers,
    };
    let body: string | Uint8Array | undefined;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers["content-type"] = "application/json";
    } else if (options.text !== undefined) {
      body = options.text;
      headers["content-type"] = options.contentType ?? "text/plain";
    } else if (options.bytes !== undefined) {
      body = options.bytes;
      headers["content-type"] = options.contentType ?? "application/octet-stream";
    }
    if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
    const timeoutMs = this.requestTimeoutMs + (options.extraTimeoutMs ?? 0);
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = options.signal === undefined ? deadline : AbortSignal.any([deadline, options.signal]);

    let response: { status: number; headers: AnswerHeaders; text: string };
    try {
      response = await send(url, { method, headers, signal }, body);
    } catch (error) {
      if (options.signal?.aborted === true) throw options.signal.reason;
      // The deadline's own reason (a TimeoutError), not the socket's "aborted".
      throw connectionError(url, deadline.aborted ? deadline.reason : error, timeoutMs);
    }
    // The API never redirects: a redirect comes from something in front of it (an ingress sending
    // http to https, a moved host). Followed, it would turn a POST into a GET and answer another
    // question; so it is an error that names where it points.
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get("location") ?? "nowhere";
      throw new BatonConnectionError(
        url.href,
        "Redirected",
        `${url.origin} answered ${response.status}, a redirect to ${location}: point BATON_URL (or the client's url) at the Baton API itself`,
      );
    }
    const parsed = parseBody(response.headers.get("content-type"), response.text);
    if (response.status >= 400) throw errorFromResponse(response.status, parsed, response.text);
    return { status: response.status, headers: response.headers, body: parsed };
  }
}

/**
 * One request with Node's own HTTP client (node:http, node:https loaded only for an https URL):
 * `fetch` would do, but loading it (undici) costs a command-line call of `baton` more time than
 * the rest of its start.
 */
async function send(
  url: URL,
  options: HttpOptions & { signal: AbortSignal },
  body: string | Uint8Array | undefined,
): Promise<{ status: number; headers: AnswerHeaders; text: string }> {
  const request = url.protocol === "https:" ? (await import("node:https")).request : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = request(url, options, (incoming) => {
      const chunks: Buffer[] = [];
      incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
      incoming.on("error", reject);
      incoming.on("end", () =>
        resolve({
          status: incoming.statusCode ?? 0,
          headers: answerHeaders(incoming.headers),
          text: Buffer.concat(chunks).toString("utf8"),
        }),
      );
    });
    outgoing.on("error", reject);
    outgoing.end(body);
  });
}

function answerHeaders(headers: IncomingHttpHeaders): AnswerHeaders {
  return {
    get: (name) => {
      const value = headers[name.toLowerCase()];
      return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
    },
  };
}

function parseBody(contentType: string | null, text: string): unknown {
  if (text === "") return undefined;
  if (contentType !== null && !/json/i.test(contentType)) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

const reasons: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "the connection was reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "the connection timed out",
  UND_ERR_CONNECT_TIMEOUT: "the connection timed out",
  UND_ERR_SOCKET: "the connection was closed",
};

/** The client's error for a request that got no HTTP answer (fetch's `TypeError: fetch failed`, or Node's socket errors). */
export function connectionError(url: URL, error: unknown, timeoutMs: number): BatonConnectionError {
  const where = `the Baton API at ${url.origin}`;
  if (error instanceof Error && error.name === "TimeoutError") {
    return new BatonConnectionError(
      url.href,
      "RequestTimeout",
      `no answer from ${where} within ${timeoutMs} ms (${url.pathname})`,
      { cause: error },
    );
  }
  const code = systemErrorCode(error);
  const reason = reasons[code] ?? innermostMessage(error);
  return new BatonConnectionError(url.href, code, `cannot reach ${where}: ${reason}`, { cause: error });
}

/** The message of the innermost cause: fetch's own is only "fetch failed". */
function innermostMessage(error: unknown): string {
  let message = String(error);
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    message = current.message;
    current = current.cause;
  }
  return message;
}

/** The system error code under fetch's wrapping (`cause`, or the first of an AggregateError's). */
function systemErrorCode(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && typeof current === "object" && current !== null; depth++) {
    const { code, errors, cause } = current as { code?: unknown; errors?: unknown; cause?: unknown };
    if (typeof code === "string" && code !== "") return code;
    current = Array.isArray(errors) && errors.length > 0 ? errors[0] : cause;
  }
  return "NetworkError";
}
