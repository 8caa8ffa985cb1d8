/**
 * Readiness (`GET /readyz`): the NATS connection is up and the streams and buckets the API
 * reads and writes exist. The connection's state is followed from its status events, so a
 * readiness probe does not hang on a connection that is down; the streams are asked for on
 * every probe, with a short timeout.
 */
import { Events, type JetStreamManager, type NatsConnection, type Status } from "nats";
import { buckets, streams } from "../../sdk/protocol.ts";
import { executionIndexBucket } from "../nats/execution-index.ts";
import { receivesBucket } from "../nats/topology.ts";

export interface ReadinessReport {
  isReady: boolean;
  nats: "connected" | "disconnected" | "closed";
  /** The streams that could not be found, or why they could not be asked for. */
  problems: string[];
}

const requiredStreams = [
  ...Object.values(streams),
  // Every bucket a route reads: the workers' too (GET /v1/workers), which the engine creates.
  ...[
    buckets.executions,
    buckets.workflows,
    buckets.effects,
    buckets.workers,
    receivesBucket,
    executionIndexBucket,
  ].map((bucket) => `KV_${bucket}`),
];

/** How long a probe waits for JetStream to answer. */
const probeTimeoutMs = 2_000;

export class Readiness {
  private isConnected = true;
  private jsm: JetStreamManager | undefined;

  private readonly statuses: AsyncIterable<Status>;

  constructor(private readonly nc: NatsConnection) {
    this.statuses = nc.status();
    void this.follow();
  }

  private async follow(): Promise<void> {
    for await (const status of this.statuses) {
      if (status.type === Events.Disconnect) this.isConnected = false;
      else if (status.type === Events.Reconnect) this.isConnected = true;
    }
  }

  /** Stops following the connection (a server closing on a connection that stays open). */
  close(): void {
    // nats.js hands out a QueuedIterator, which can be stopped; its type says only AsyncIterable.
    (this.statuses as { stop?: () => void }).stop?.();
  }

  async check(): Promise<ReadinessReport> {
    if (this.nc.isClosed())
      return { isReady: false, nats: "closed", problems: ["the NATS connection is closed"] };
    if (!this.isConnected)
      return { isReady: false, nats: "disconnected", problems: ["NATS is disconnected; reconnecting"] };
    const problems: string[] = [];
    try {
      this.jsm ??= await this.nc.jetstreamManager({ timeout: probeTimeoutMs });
      const jsm = this.jsm;
      const missing = await Promise.all(
        requiredStreams.map(async (name) => {
          try {
            await jsm.streams.info(name);
            return undefined;
          } catch (error) {
            return /not found/i.test(String(error))
              ? `stream ${name} is missing`
              : `stream ${name}: ${String(error)}`;
          }
        }),
      );
      problems.push(...missing.filter((problem) => problem !== undefined));
    } catch (error) {
      problems.push(`JetStream did not answer: ${String(error)}`);
    }
    return { isReady: problems.length === 0, nats: "connected", problems };
  }
}
