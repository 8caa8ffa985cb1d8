/**
 * `BATON_NATS_REPLICAS` (sdk/replication.ts): every stream, bucket and durable consumer Baton
 * creates gets that many replicas, existing ones are brought to it at start, KV buckets answer
 * reads from their leader only (`allow_direct: false`), and where the server cannot have the
 * count asked for, start fails naming the resource and the command that fixes it.
 */
import { captureEmitSubjects, emittedStream } from "../../engine/nats/emit-stream.ts";
import { connect, type NatsConnection } from "nats";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ConfigError, loadEngineConfig } from "../../engine/config.ts";
import { ensureTopology, retentionStream } from "../../engine/nats/topology.ts";
import { buckets, streams } from "../../sdk/protocol.ts";
import { natsReplicas, ReplicationError } from "../../sdk/replication.ts";
import { ensureTaskConsumer, ensureWorkerStreams } from "../../sdk/worker/jetstream-setup.ts";
import { useNatsCluster } from "../helpers/nats-cluster.ts";
import { useNatsServer } from "../helpers/nats-server.ts";

describe("BATON_NATS_REPLICAS", () => {
  it("is 1 when unset, and a whole number from 1 to 5 otherwise", () => {
    expect(natsReplicas({})).toBeUndefined();
    expect(natsReplicas({ BATON_NATS_REPLICAS: "3" })).toBe(3);
    expect(natsReplicas({ BATON_NATS_REPLICAS: " 5 " })).toBe(5);
    for (const bad of ["0", "6", "-1", "2.5", "three", "1e0", "0x3"])
      expect(() => natsReplicas({ BATON_NATS_REPLICAS: bad }), bad).toThrow(
        new ReplicationError(
          `BATON_NATS_REPLICAS="${bad}" must be a whole number from 1 to 5 (the copies NATS keeps of every stream and bucket; 3 on a 3-node cluster)`,
        ),
      );
  });

  it("stops the engine at start with a message naming it", () => {
    expect(() => loadEngineConfig({ BATON_NATS_REPLICAS: "7" })).toThrow(ConfigError);
    expect(() => loadEngineConfig({ BATON_NATS_REPLICAS: "7" })).toThrow(/BATON_NATS_REPLICAS="7"/);
    expect(loadEngineConfig({ BATON_NATS_REPLICAS: "3" }).natsReplicas).toBe(3);
    expect(loadEngineConfig({}).natsReplicas).toBeUndefined();
  });
});

describe("on a single server", () => {
  const server = useNatsServer();
  let nc: NatsConnection;
  beforeAll(async () => {
    nc = await connect({ servers: server().url });
  });
  afterAll(async () => {
    await nc?.close();
  });

  it("refuses more than one replica, creating nothing", async () => {
    const failure = await ensureTopology(nc, 3).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(ReplicationError);
    expect(String((failure as Error).message)).toMatch(
      /cannot create stream BATON_EVENTS with 3 replicas \(BATON_NATS_REPLICAS=3\): .*needs a NATS cluster of at least 3 nodes.*set BATON_NATS_REPLICAS=1/,
    );
    const jsm = await nc.jetstreamManager();
    expect(await jsm.streams.names().next()).toEqual([]);
  });

  it("names the resource and the command to fix it when an existing one cannot change", async () => {
    await ensureTopology(nc, 1);
    const failure = await ensureTopology(nc, 3).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(ReplicationError);
    expect((failure as Error).message).toMatch(
      /^stream BATON_EVENTS has 1 replica\(s\) but BATON_NATS_REPLICAS asks for 3, and nats-server refused to change it in place: .+\. Change it with `nats stream edit BATON_EVENTS --replicas 3`, or set BATON_NATS_REPLICAS=1 \(more than one replica needs a NATS cluster of at least 3 nodes\)$/,
    );
    // Nothing was changed: still R1, and a start with the right setting works.
    const jsm = await nc.jetstreamManager();
    expect((await jsm.streams.info(streams.events)).config.num_replicas).toBe(1);
    await ensureTopology(nc, 1);
  });
});

describe("on a 3-node cluster", () => {
  const cluster = useNatsCluster();
  let nc: NatsConnection;
  beforeAll(async () => {
    nc = await connect({ servers: cluster().urls.split(",") });
  });
  afterAll(async () => {
    await nc?.close();
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("brings what exists to the configured count, and buckets to leader-only reads", async () => {
    // A bucket as nats.js makes it by default (direct gets, answered by any replica), and the rest R1.
    await nc.jetstream().views.kv(buckets.executions, { history: 1 });
    const jsm = await nc.jetstreamManager();
    expect((await jsm.streams.info(`KV_${buckets.executions}`)).config.allow_direct).toBe(true);
    await ensureTopology(nc, 1);
    await ensureTaskConsumer(jsm, "pure", "double");
    await captureEmitSubjects(jsm, ["orders.placed"]); // BATON_EMITTED, made by a workflow that emits
    expect((await jsm.streams.info(emittedStream)).config.num_replicas).toBe(1);
    expect((await jsm.streams.info(streams.events)).config.num_replicas).toBe(1);
    expect((await jsm.streams.info(`KV_${buckets.executions}`)).config.allow_direct).toBe(false);

    vi.stubEnv("BATON_NATS_REPLICAS", "3");
    await ensureTopology(nc, 3);
    await ensureWorkerStreams(jsm);
    await ensureTaskConsumer(jsm, "pure", "double");

    const names: string[] = [];
    for await (const page of jsm.streams.list())
      for (const info of [page].flat()) names.push(info.config.name);
    expect(names.sort()).toEqual(
      [
        "BATON_EMITTED",
        "BATON_EVENTS",
        "BATON_HISTORY",
        "BATON_POISON",
        "BATON_TASKS",
        "BATON_TIMERS",
        "BATON_TIMER_INDEX",
        "BATON_RETENTION",
        "KV_baton_effects",
        "KV_baton_engine",
        "KV_baton_execution_index",
        "KV_baton_executions",
        "KV_baton_receives",
        "KV_baton_workers",
        "KV_baton_workflows",
      ].sort(),
    );
    for (const name of names) {
      const info = await jsm.streams.info(name);
      expect(info.config.num_replicas, name).toBe(3);
      if (name.startsWith("KV_")) expect(info.config.allow_direct, name).toBe(false);
    }
    for (const stream of [streams.events, streams.timers, retentionStream, streams.tasks]) {
      for await (const consumer of jsm.consumers.list(stream))
        expect(consumer.config.num_replicas, `${stream}/${consumer.name}`).toBe(3);
    }

    // A process without the variable (a worker started without it) changes nothing that exists.
    vi.unstubAllEnvs();
    await ensureTopology(nc);
    await ensureWorkerStreams(jsm);
    await ensureTaskConsumer(jsm, "pure", "double");
    for (const name of names) expect((await jsm.streams.info(name)).config.num_replicas, name).toBe(3);
    expect(
      (await jsm.consumers.info(streams.tasks, (await jsm.consumers.list(streams.tasks).next())[0]!.name))
        .config.num_replicas,
    ).toBe(3);
  });
});
