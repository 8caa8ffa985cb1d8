/**
 * Coalesced socket writes. nats.js writes its outbound buffer to the socket at the end of every
 * microtask run that added to it (ProtocolHandler.flushPending, queued by sendCommand), so a busy
 * engine, API or worker, whose publishes and requests come from many separate I/O callbacks, makes
 * one write system call per message: a fifth of the engine's CPU in its profile of the steps
 * benchmark. Here a flush waits for the end of the event loop's current turn (setImmediate), so
 * the messages of a turn leave in one write (or one per nats.js's pendingLimit, 32 KiB, when a
 * turn sends more). The steps benchmark went from 1,006 to 1,442 steps/s, chain-10's latency
 * unchanged (bench/results/2026-12-07-ab-coalesce.md). Messages keep their order (the buffer is
 * drained whole, as before) and wait at most until the turn ends; a close writes what is pending
 * first.
 *
 * nats.js has no option for this, so the connection's protocol handler is adapted, after checking
 * that it has what this relies on (flushPending, _close, pendingLimit, outbound); when it does not
 * (another nats.js), writes stay as they were.
 */
import type { NatsConnection } from "nats";

interface ProtocolHandler {
  flushPending(): void;
  _close(error?: Error): Promise<void>;
  /** Bytes past which nats.js writes at once instead of at the end of the microtasks. */
  pendingLimit: number;
  outbound: { size(): number };
}

const coalesced = new WeakSet<object>();

/** Makes `nc` write at most once per event loop turn; `false` when its nats.js cannot be adapted. */
export function coalesceWrites(nc: NatsConnection): boolean {
  const protocol = (nc as unknown as { protocol?: Partial<ProtocolHandler> }).protocol;
  if (
    protocol === undefined ||
    typeof protocol.flushPending !== "function" ||
    typeof protocol._close !== "function" ||
    typeof protocol.pendingLimit !== "number" ||
    typeof protocol.outbound?.size !== "function"
  )
    return false;
  const adapted = protocol as ProtocolHandler;
  if (coalesced.has(protocol)) return true;
  coalesced.add(protocol);
  const flushNow = protocol.flushPending.bind(protocol);
  const close = protocol._close.bind(protocol);
  let scheduled = false;
  protocol.flushPending = () => {
    // A turn that sends a lot (an object store upload) still writes every pendingLimit bytes.
    if (adapted.outbound.size() >= adapted.pendingLimit) return flushNow();
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      flushNow();
    });
  };
  protocol._close = (error?: Error) => {
    flushNow();
    return close(error);
  };
  return true;
}
