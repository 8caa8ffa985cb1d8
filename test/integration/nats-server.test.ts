// The test launcher itself: a real nats-server, a real client, JetStream data that survives a crash.
import { existsSync } from "node:fs";
import { connect, StorageType, type NatsConnection } from "nats";
import { afterEach, describe, expect, it } from "vitest";
import {
  NatsServerNotFoundError,
  resolveNatsServerBinary,
  startNatsServer,
  useNatsServer,
  type NatsServer,
} from "../helpers/nats-server.ts";

const started: NatsServer[] = [];
const connections: NatsConnection[] = [];

async function start(...args: Parameters<typeof startNatsServer>): Promise<NatsServer> {
  const server = await startNatsServer(...args);
  started.push(server);
  return server;
}

async function open(server: NatsServer): Promise<NatsConnection> {
  const nc = await connect({ servers: server.url, reconnect: false });
  connections.push(nc);
  return nc;
}

afterEach(async () => {
  await Promise.all(connections.splice(0).map((nc) => nc.close()));
  await Promise.all(started.splice(0).map((server) => server.stop()));
});

describe("startNatsServer", () => {
  it("serves JetStream KV with file storage", async () => {
    const server = await start();
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    const nc = await open(server);
    const kv = await nc.jetstream().views.kv("launcher", { storage: StorageType.File });
    await kv.put("greeting", "hello");
    expect((await kv.get("greeting"))?.string()).toBe("hello");
  });

  it("keeps JetStream data across kill() and restart() on the same port", async () => {
    const server = await start();
    const { port, storeDir } = server;
    const firstPid = server.pid;
    const before = await open(server);
    const kv = await before.jetstream().views.kv("durable", { storage: StorageType.File });
    await kv.put("answer", "42");
    await before.close();

    await server.kill();
    await expect(open(server)).rejects.toThrow();

    await server.restart();
    expect(server.port).toBe(port);
    expect(server.storeDir).toBe(storeDir);
    expect(server.pid).not.toBe(firstPid);
    const after = await open(server);
    const reopened = await after.jetstream().views.kv("durable");
    expect((await reopened.get("answer"))?.string()).toBe("42");
  });

  it("restart() also works on a running server", async () => {
    const server = await start();
    const nc = await open(server);
    const kv = await nc.jetstream().views.kv("graceful");
    await kv.put("k", "v");
    await nc.close();
    await server.restart();
    const again = await open(server);
    expect((await (await again.jetstream().views.kv("graceful")).get("k"))?.string()).toBe("v");
  });

  it("gives two servers at once different ports and directories", async () => {
    const [a, b] = await Promise.all([start(), start()]);
    expect(a.port).not.toBe(b.port);
    expect(a.storeDir).not.toBe(b.storeDir);
    const [ncA, ncB] = await Promise.all([open(a), open(b)]);
    expect(ncA.info?.port).toBe(a.port);
    expect(ncB.info?.port).toBe(b.port);
  });

  it("removes its temp dir on stop()", async () => {
    const server = await startNatsServer();
    expect(existsSync(server.dir)).toBe(true);
    await server.stop();
    expect(existsSync(server.dir)).toBe(false);
    await expect(connect({ servers: server.url, reconnect: false })).rejects.toThrow();
    await server.stop(); // idempotent
  });

  it("applies maxPayload and can run without JetStream", async () => {
    const server = await start({ maxPayload: 2048, jetstream: false });
    const nc = await open(server);
    expect(nc.info?.max_payload).toBe(2048);
    expect(nc.info?.jetstream ?? false).toBe(false);
  });

  it("says how to install nats-server when the binary is missing", () => {
    const missing = () => resolveNatsServerBinary({ NATS_SERVER_BIN: "/nonexistent/nats-server" });
    expect(missing).toThrow(NatsServerNotFoundError);
    expect(missing).toThrow(/bash scripts\/ensure-nats-server\.sh/);
    expect(missing).toThrow(/apt-get install -y nats-server/);
    expect(() => resolveNatsServerBinary({ PATH: "/nonexistent" })).not.toThrow(/NATS_SERVER_BIN is set/);
  });
});

describe("useNatsServer", () => {
  const server = useNatsServer();

  it("provides a running server to the tests of the file", async () => {
    const nc = await open(server());
    await nc.flush();
    expect(nc.isClosed()).toBe(false);
  });
});
