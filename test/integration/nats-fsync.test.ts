/**
 * The fsync configuration docs/operations.md ("Running on a cluster", Fsync) gives:
 * `jetstream { sync_interval: always }`. nats-server 2.10+ takes it and Baton runs on it as on
 * any server; nats-server 2.9.10 (Debian's, the minimum) does not know the option and refuses the
 * configuration at start, which is what the docs say it does. Which of the two is checked depends
 * on the installed server.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { afterAll, expect, it } from "vitest";
import { ensureTopology } from "../../engine/nats/topology.ts";
import { resolveNatsServerBinary, startNatsServer } from "../helpers/nats-server.ts";

const dir = mkdtempSync(join(tmpdir(), "baton-fsync-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const version = /v(\d+)\.(\d+)\.(\d+)/.exec(
  execFileSync(resolveNatsServerBinary(), ["--version"], { encoding: "utf8" }),
);
const [major, minor] = [Number(version?.[1]), Number(version?.[2])];
const supportsSyncInterval = major > 2 || (major === 2 && minor >= 10);

function fsyncConfig(): string {
  const config = join(dir, "fsync.conf");
  // The store directory comes from the helper's -sd; a store_dir here as well would be a duplicate.
  writeFileSync(config, "jetstream {\n  sync_interval: always\n}\n");
  return config;
}

it.runIf(supportsSyncInterval)("runs Baton on nats-server with sync_interval: always", async () => {
  const server = await startNatsServer({ args: ["-c", fsyncConfig()] });
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

it.runIf(!supportsSyncInterval)("nats-server before 2.10 refuses sync_interval at start", async () => {
  expect(version, "nats-server --version").not.toBeNull();
  const refused = await startNatsServer({ args: ["-c", fsyncConfig()], readyTimeoutMs: 3_000 }).then(
    async (server) => {
      await server.stop();
      return "started";
    },
    (error: unknown) => (error as Error).message,
  );
  expect(refused).toMatch(/unknown field "sync_interval"/);
});
