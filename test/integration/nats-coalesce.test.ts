/**
 * sdk/nats-coalesce.ts on a real nats-server: messages published from separate callbacks of one
 * event loop turn leave in one socket write (nats.js alone makes one write each), arrive whole and
 * in order, JetStream requests still work, and a close right after a publish still sends it.
 */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { coalesceWrites } from "../../sdk/nats-coalesce.ts";
import { startNatsServer, type NatsServer } from "../helpers/nats-server.ts";

let server: NatsServer;
beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await server?.stop();
});

/** Counts the socket writes of `nc` (its transport's sends). */
function countWrites(nc: NatsConnection): () => number {
  const transport = (nc as unknown as { protocol: { transport: { send(frame: Uint8Array): void } } }).protocol
    .transport;
  let writes = 0;
  const send = transport.send.bind(transport);
  transport.send = (frame) => {
    writes += 1;
    send(frame);
  };
  return () => writes;
}

/** Publishes `count` messages, each from a microtask run of its own, all within one turn. */
async function publishApart(nc: NatsConnection, subject: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    nc.publish(subject, String(i));
    await Promise.resolve();
    await Promise.resolve();
  }
}

async function received(sub: AsyncIterable<{ string(): string }>, count: number): Promise<string[]> {
  const got: string[] = [];
  for await (const message of sub) {
    got.push(message.string());
    if (got.length === count) break;
  }
  return got;
}

it("sends the messages of one event loop turn in one write, whole and in order", async () => {
  const reader = await connect({ servers: server.url });
  const plain = await connect({ servers: server.url });
  const adapted = await connect({ servers: server.url });
  try {
    expect(coalesceWrites(adapted)).toBe(true);
    expect(coalesceWrites(adapted)).toBe(true); // once is enough
    const sub = reader.subscribe("coalesce.>");
    await reader.flush();
    const expected = Array.from({ length: 50 }, (_, i) => String(i));

    const plainWrites = countWrites(plain);
    await publishApart(plain, "coalesce.plain", 50);
    await plain.flush();
    const adaptedWrites = countWrites(adapted);
    await publishApart(adapted, "coalesce.adapted", 50);
    await adapted.flush();

    // nats.js alone: a write per microtask run that published; adapted: one for the turn (and the flush's PING).
    expect(plainWrites()).toBeGreaterThanOrEqual(50);
    expect(adaptedWrites()).toBeLessThanOrEqual(2);
    const all = await received(sub, 100);
    expect(all.slice(0, 50)).toEqual(expected);
    expect(all.slice(50)).toEqual(expected);

    // Requests (JetStream) answer as before.
    const jsm = await adapted.jetstreamManager();
    await jsm.streams.add({ name: "COALESCE", subjects: ["coalesced.>"] });
    const acks = await Promise.all(expected.map((i) => adapted.jetstream().publish(`coalesced.${i}`, i)));
    expect(acks.map((ack) => ack.seq)).toEqual(expected.map((i) => Number(i) + 1));
  } finally {
    await Promise.all([reader.close(), plain.close(), adapted.close()]);
  }
});

it("still writes every pendingLimit bytes (32 KiB) within a turn that sends more", async () => {
  const reader = await connect({ servers: server.url });
  const adapted = await connect({ servers: server.url });
  try {
    coalesceWrites(adapted);
    const sub = reader.subscribe("coalesce.big");
    await reader.flush();
    const writes = countWrites(adapted);
    const chunk = "x".repeat(8 * 1024);
    for (let i = 0; i < 16; i++) {
      adapted.publish("coalesce.big", `${i}:${chunk}`);
      await Promise.resolve();
    }
    // 128 KiB in one turn: about one write per 32 KiB, not one for all of it.
    expect(writes()).toBeGreaterThanOrEqual(3);
    await adapted.flush();
    const got = await received(sub, 16);
    expect(got.map((text) => text.split(":")[0])).toEqual(Array.from({ length: 16 }, (_, i) => String(i)));
  } finally {
    await Promise.all([reader.close(), adapted.close()]);
  }
});

it("writes what is pending before a close", async () => {
  const reader = await connect({ servers: server.url });
  const adapted = await connect({ servers: server.url });
  try {
    coalesceWrites(adapted);
    const sub = reader.subscribe("coalesce.last");
    await reader.flush();
    adapted.publish("coalesce.last", "before the close");
    await adapted.close();
    expect(await received(sub, 1)).toEqual(["before the close"]);
  } finally {
    await reader.close();
  }
});
