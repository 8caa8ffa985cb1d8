/**
 * Which functions some live worker serves, from the workers' heartbeats (core NATS,
 * `baton.workers.heartbeat.<worker>`, every `heartbeatIntervalMs`; docs/protocol.md). The engine
 * asks it when an attempt times out: with nobody serving the function, the attempt fails
 * `FunctionUnavailable` instead of `Timeout`. Until it has listened for a worker's whole time to
 * live it knows nothing, and says no function is unserved.
 */
import type { NatsConnection, Subscription } from "nats";
import { subjects, workerTtlMs, type HeartbeatEnvelope } from "../../sdk/protocol.ts";

export class ServedFunctions {
  /** Function name → when a heartbeat last named it (epoch ms). */
  private readonly lastSeen = new Map<string, number>();
  private subscription: Subscription | undefined;
  private listeningSince = Infinity;

  constructor(private readonly nc: NatsConnection) {}

  start(): void {
    this.listeningSince = Date.now();
    this.subscription = this.nc.subscribe(subjects.allHeartbeats, {
      callback: (error, message) => {
        if (error) return;
        let beat: Partial<HeartbeatEnvelope>;
        try {
          beat = message.json<Partial<HeartbeatEnvelope>>();
        } catch {
          return;
        }
        if (!Array.isArray(beat.functions) || beat.leaving === true) return;
        const now = Date.now();
        for (const served of beat.functions)
          if (typeof served?.name === "string") this.lastSeen.set(served.name, now);
      },
    });
  }

  stop(): void {
    this.subscription?.unsubscribe();
  }

  /** True only when the engine has listened long enough to know that no live worker serves `fn`. */
  isUnserved(fn: string, now = Date.now()): boolean {
    if (now - this.listeningSince < workerTtlMs) return false;
    return now - (this.lastSeen.get(fn) ?? 0) > workerTtlMs;
  }
}
