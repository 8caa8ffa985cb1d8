/**
 * The fsync configuration docs/operations.md ("Running on a cluster", Fsync) gives:
 * `jetstream { sync_interval: always }`. nats-server 2.10+ takes it and Baton runs on it as on
 * any server; nats-server 2.9.10 (Debian 12's, the minimum) does not know the option and refuses
 * the configuration at start, which is what the docs say it does. scripts/test.sh gives the tests
 * both: the default server (Debian's 2.9.10 here) and a 2.10+ one for clusters
 * (NATS_SERVER_CLUSTER_BIN); each check runs on whichever of them fits it.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { afterAll, expect, it } from "vitest";
import { ensureTopology } from "../../engine/nats/topology.ts";
import {
  isNatsServer210,
  resolveClusterNatsServerBinary,
  resolveNatsServerBinary,
  startNatsServer,
} from "../helpers/nats-server.ts";

const dir = mkdtempSync(join(tmpdir(), "baton-fsync-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const binaries = [resolveNatsServerBinary(), resolveClusterNatsServerBinary()];
const recent = binaries.find(isNatsServer210);
const older = binaries.find((binary) => !isNatsServer210(binary));

function fsyncConfig(): string {
  const config = join(dir, "fsync.conf");
  // The store directory comes from the helper's -sd; a store_dir here as well would be a duplicate.
  writeFileSync(config, "jetstream {\n  sync_interval: always\n}\n");
  return config;
}

it.runIf(recent !== undefined)("runs Baton on nats-server with sync_interval: always", async () => {
  const server = await startNatsServer({ binary: recent, args: ["-c", fsyncConfig()] });
  try {
    const nc = await connect({ servers: server.url });
    const { executions } = await ensureTopology(nc);
    await executions.put("probe", "{}");
    await nc.close();
    await server.restart();
    const again = await connect({ servers: server.url });
    expect((await (await ensureTopology(again)).executions.get("probe"))?.string()).toBe("{}");
    await again.close();
  } finally {
    await server.stop();
  }
});

it.runIf(older !== undefined)("nats-server before 2.10 refuses sync_interval at start", async () => {
  const refused = await startNatsServer({
    binary: older,
    args: ["-c", fsyncConfig()],
    readyTimeoutMs: 3_000,
  }).then(
    async (server) => {
      await server.stop();
      return "started";
    },
    (error: unknown) => (error as Error).message,
  );
  expect(refused).toMatch(/unknown field "sync_interval"/);
});
