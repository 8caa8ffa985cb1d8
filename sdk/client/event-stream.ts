// An execution's events over the websocket `GET /v1/executions/{id}/events`, as an async
// iterator: one JSON history event per message, from the start or after `?after=seq`; the server
// closes after the final event, which ends the iteration. Node 20 has no global WebSocket, so
// this uses `ws`.
import type { RawData } from "ws";
import { BatonConnectionError, errorFromResponse } from "./errors.ts";
import { connectionError, type Transport } from "./transport.ts";
import { finalEventTypes, type HistoryEvent } from "./types.ts";

export interface EventStreamOptions {
  /** Only events with a `seq` above this one (resume where a previous stream stopped). Default: from the start. */
  readonly after?: number;
  /** Abort to stop the stream; the iterator then throws the abort reason. */
  readonly signal?: AbortSignal;
}

// Flow control: stop reading the socket while this many events wait for the consumer, and read
// again once it has caught up, so a slow consumer of a long history does not fill memory.
const highWater = 1_000;
const lowWater = 100;

/** The events of execution `id`, as they happen; see `ExecutionHandle.events`. */
export async function* streamEvents(
  transport: Transport,
  id: string,
  options: EventStreamOptions = {},
): AsyncGenerator<HistoryEvent, void, undefined> {
  options.signal?.throwIfAborted();
  const url = transport.url(`/v1/executions/${encodeURIComponent(id)}/events`, { after: options.after });
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const inbox = new Inbox<HistoryEvent>();
  let last: HistoryEvent | undefined;
  let isPaused = false;

  // Loaded on first use: every function isolate imports the SDK, and few of them stream events.
  const { WebSocket } = await import("ws");
  const socket = new WebSocket(url, {
    headers: transport.authHeaders(),
    handshakeTimeout: transport.requestTimeoutMs,
  });
  socket.on("message", (data) => {
    let event: HistoryEvent;
    try {
      event = JSON.parse(rawText(data)) as HistoryEvent;
    } catch (error) {
      inbox.fail(new Error(`the event stream of ${id} sent a message that is not JSON`, { cause: error }));
      socket.terminate();
      return;
    }
    last = event;
    inbox.push(event);
    if (inbox.size >= highWater && !isPaused) {
      isPaused = true;
      socket.pause();
    }
  });
  // The server refused the upgrade with an HTTP answer (401, 404, ...): read its problem document.
  socket.on("unexpected-response", (request, response) => {
    // The connection is ours to end: a refused upgrade leaves it open otherwise, which keeps
    // the server from closing.
    const connection = response.socket;
    const chunks: Buffer[] = [];
    response.on("data", (chunk: Buffer) => chunks.push(chunk));
    response.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      inbox.fail(errorFromResponse(response.statusCode ?? 500, parseJson(text), text));
      request.destroy();
      connection.destroy();
    });
  });
  socket.on("error", (error) => {
    inbox.fail(connectionError(url, error, transport.requestTimeoutMs));
  });
  socket.on("close", (code, reason) => {
    const hasEnded = last !== undefined && finalEventTypes.has(last.type);
    if (code === 1000 || code === 1005 || hasEnded) return inbox.end();
    inbox.fail(closeError(url, code, reason.toString("utf8")));
  });
  const onAbort = (): void => {
    inbox.fail(options.signal?.reason);
    socket.terminate();
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });

  try {
    for (;;) {
      const next = await inbox.next();
      if (next.done) return;
      if (isPaused && inbox.size <= lowWater) {
        isPaused = false;
        socket.resume();
      }
      yield next.value;
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    if (socket.readyState !== WebSocket.CLOSED) socket.terminate();
  }
}

/**
 * A close that is not the normal end: codes 4000-4999 carry an HTTP status (4000 + status) and a
 * problem document or an error code as the reason; anything else means the stream broke.
 */
function closeError(url: URL, code: number, reason: string): Error {
  if (code >= 4000 && code < 5000) {
    const problem = parseJson(reason);
    const status = code - 4000 >= 400 ? code - 4000 : 500;
    if (typeof problem === "object" && problem !== null) return errorFromResponse(status, problem, reason);
    const errorCode = /^[A-Za-z][A-Za-z0-9]*$/.test(reason) ? reason : undefined;
    return errorFromResponse(
      status,
      errorCode === undefined ? undefined : { code: errorCode, status },
      reason,
    );
  }
  return new BatonConnectionError(
    url.href,
    "StreamClosed",
    `the event stream from ${url.origin} closed before the execution ended (websocket code ${code}${reason === "" ? "" : `: ${reason}`}); resume it with events({ after: <last seq> })`,
  );
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A queue between socket callbacks and the iterator: items in order, then an end or an error. */
class Inbox<T> {
  private readonly items: T[] = [];
  private outcome: { error: unknown } | "ended" | undefined;
  private wake: (() => void) | undefined;

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.outcome !== undefined) return;
    this.items.push(item);
    this.notify();
  }

  end(): void {
    this.outcome ??= "ended";
    this.notify();
  }

  /** The first outcome wins: a close that follows an error does not hide it. */
  fail(error: unknown): void {
    this.outcome ??= { error };
    this.notify();
  }

  async next(): Promise<IteratorResult<T, undefined>> {
    for (;;) {
      if (this.items.length > 0) return { done: false, value: this.items.shift() as T };
      if (this.outcome === "ended") return { done: true, value: undefined };
      if (this.outcome !== undefined) throw this.outcome.error;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
