// The worker side of progress (sdk/progress.ts): `ctx.progress(fraction, message?)` calls arrive
// here from the isolate and leave as core NATS messages, at most `maxProgressPerSecond` per
// attempt: a call within the interval replaces the pending report, which goes out when the
// interval ends (or when the attempt ends, before its result). Nothing is stored, so a handler
// may call it as often as it likes.
import type { NatsConnection } from "nats";
import { maxProgressMessageLength, maxProgressPerSecond, type ProgressReport } from "../progress.ts";
import { subjects } from "../protocol.ts";

const intervalMs = 1_000 / maxProgressPerSecond;

export interface AttemptProgress {
  report(fraction: number, message: string | undefined): void;
  /** Sends a report still waiting for its interval, and stops. */
  close(): void;
}

export interface ProgressIdentity {
  execution: string;
  step: string;
  run: number;
  attempt: number;
  worker: string;
}

export function attemptProgress(nc: NatsConnection, identity: ProgressIdentity): AttemptProgress {
  let lastSent = 0;
  let pending: ProgressReport | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const send = () => {
    timer = undefined;
    if (pending === undefined || nc.isClosed()) return;
    nc.publish(subjects.progress(identity.execution), JSON.stringify(pending));
    pending = undefined;
    lastSent = Date.now();
  };
  return {
    report(fraction, message) {
      if (closed) return;
      pending = {
        v: 1,
        ...identity,
        fraction: Math.min(1, Math.max(0, fraction)),
        ...(message === undefined ? {} : { message: message.slice(0, maxProgressMessageLength) }),
        at: new Date().toISOString(),
      };
      const wait = lastSent + intervalMs - Date.now();
      if (wait <= 0) send();
      else timer ??= setTimeout(send, wait);
    },
    close() {
      closed = true;
      clearTimeout(timer);
      send();
    },
  };
}
