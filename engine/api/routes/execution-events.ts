/**
 * `GET /v1/executions/{id}/events` (websocket): the execution's history events, one JSON event
 * per message, from the first (or after `?after=seq`) and then live as the engine writes them;
 * the server closes the socket (1000) after the final event. A plain GET gets 426.
 *
 * The history is read with an ordered consumer on the execution's subject of BATON_HISTORY
 * (Executions.followHistory), so the stored events and the live ones come through one ordered
 * stream, with no gap and no duplicate between them. "Final" is checked against the record: an
 * `ExecutionFailed` that a retry has since followed is not the end.
 */
import type { FastifyPluginCallback } from "fastify";
import type { WebSocket } from "ws";
import { isEnded } from "../../orchestrator/execution-record.ts";
import type { HistoryEntry } from "../../orchestrator/history.ts";
import type { ApiContext } from "../context.ts";
import { ApiError } from "../problems.ts";
import type { AttemptProgressEvent } from "../progress-relay.ts";
import { problemResponses } from "../schemas.ts";
import { findOr404, idParams } from "./executions.ts";

const finalTypes = new Set([
  "ExecutionSucceeded",
  "ExecutionFailed",
  "ExecutionCancelled",
  "ExecutionTimedOut",
]);

/** Close codes (RFC 6455). */
const closeCodes = { ended: 1000, goingAway: 1001, internalError: 1011 } as const;

interface Route {
  Params: { id: string };
  Querystring: { after?: number };
}

export function executionEventRoutes(context: ApiContext): FastifyPluginCallback {
  const { executions, closing } = context;

  const stream = async (socket: WebSocket, id: string, after: number): Promise<void> => {
    const stop = new AbortController();
    const abort = () => stop.abort();
    socket.on("close", abort);
    closing.addEventListener("abort", abort, { once: true });
    // Clients have nothing to say on this socket; what they send is ignored.
    socket.on("message", () => undefined);
    // Progress is not history: relayed as it comes (no `seq`), starting with the last one seen.
    const relay = (event: AttemptProgressEvent) => {
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(event));
    };
    const unfollow = context.progress.follow(id, relay);
    const last = context.progress.lastOf(id);
    if (last) relay(last);
    const hasEnded = async (entry: HistoryEntry): Promise<boolean> => {
      if (!finalTypes.has(entry.type)) return false;
      const record = await executions.get(id);
      // No record any more: retention removed it, and nothing will follow.
      return !record || (isEnded(record.status) && record.historySeq <= entry.seq);
    };
    try {
      for await (const entries of executions.followHistory(id, stop.signal)) {
        for (const entry of entries) {
          if (entry.seq > after) await send(socket, JSON.stringify(entry));
          if (await hasEnded(entry)) {
            socket.close(closeCodes.ended, "execution ended");
            return;
          }
        }
      }
      if (socket.readyState === socket.OPEN) socket.close(closeCodes.goingAway, "server closing");
    } catch (error) {
      if (stop.signal.aborted) return; // The client went away first.
      if (socket.readyState === socket.OPEN) socket.close(closeCodes.internalError, "internal error");
      throw error;
    } finally {
      closing.removeEventListener("abort", abort);
      unfollow();
      stop.abort();
    }
  };

  return (app, _options, done) => {
    app.route<Route>({
      method: "GET",
      url: "/v1/executions/:id/events",
      schema: {
        tags: ["executions"],
        summary: "Websocket: the execution's events live, one JSON history event per message",
        description:
          "Connect with `Upgrade: websocket`. Events come from the first (or after `?after=seq`), then live; the server closes the socket with code 1000 after the final event. A plain GET answers 426.",
        params: idParams,
        querystring: { type: "object", properties: { after: { type: "integer", minimum: 0 } } },
        response: problemResponses(400, 404, 426),
      },
      // Before the upgrade: an unknown execution gets a plain 404, not a socket.
      preHandler: async (request) => {
        await findOr404(context, request.params.id);
      },
      handler: () => {
        throw new ApiError(
          "WebsocketRequired",
          "this route streams events over a websocket: connect with Upgrade: websocket (GET .../history has them as one JSON answer)",
        );
      },
      wsHandler: (socket, request) => {
        stream(socket, request.params.id, request.query.after ?? 0).catch((error: unknown) =>
          request.log.error({ err: error }, "event stream failed"),
        );
      },
    });
    done();
  };
}

function send(socket: WebSocket, text: string): Promise<void> {
  return new Promise((resolve, reject) => socket.send(text, (error) => (error ? reject(error) : resolve())));
}
