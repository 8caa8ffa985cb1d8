/**
 * The pools' lease TTL is the leases bucket's max age, set by the pool that created the bucket.
 * Pools started with other BATON_POOL_LEASE_TTL_MS values agree on the longest: a longer one
 * raises the bucket's, a shorter one leaves it (engine/functions/pool.ts, agreeLeaseTtl). Real
 * pools (in this process, no functions deployed) on a real nats-server.
 */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { leasesBucket, startPool } from "../../engine/functions/pool.ts";
import { startNatsServer, type NatsServer } from "../helpers/nats-server.ts";

let server: NatsServer;
let nc: NatsConnection;

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
});

afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

const leaseTtlMs = async () =>
  (await (await nc.jetstreamManager()).streams.info(`KV_${leasesBucket}`)).config.max_age / 1e6;

const logged: string[] = [];
const logger = {
  debug: () => {},
  info: (message: string) => void logged.push(message),
  warn: (message: string) => void logged.push(message),
  error: (message: string) => void logged.push(message),
};

async function runPool(ttl: number): Promise<void> {
  const pool = await startPool({ natsUrl: server.url, leaseTtlMs: ttl, tickMs: 200, logger });
  await pool.stop();
}

it("keeps the longest lease TTL any pool asked for", async () => {
  await runPool(3_000);
  expect(await leaseTtlMs()).toBe(3_000);
  // A pool that ticks further apart asks for longer leases: the bucket's grows.
  await runPool(8_000);
  expect(await leaseTtlMs()).toBe(8_000);
  expect(logged).toContain("leases now last 8000 ms (BATON_POOL_LEASE_TTL_MS), up from 3000 ms");
  // A shorter one does not lower it, and says so.
  await runPool(2_000);
  expect(await leaseTtlMs()).toBe(8_000);
  expect(logged.some((line) => /leases last 8000 ms.*\(2000\) is shorter/.test(line))).toBe(true);
});
