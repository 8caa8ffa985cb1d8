/** `baton pool`: start and stop workers of the deployed function packages (docs/functions.md). */
import { UsageError, type Command } from "../command.ts";

export const poolCommand: Command = {
  name: "pool",
  summary:
    "Run workers for the deployed functions: from zero on demand, more under a backlog, back to zero when idle",
  usage: `Usage: baton pool

Watches every deployed function (baton function deploy): its task backlog and its workers'
heartbeats. Starts "baton worker --package NAME@VERSION" processes on this machine: from zero
when a task waits and nobody serves it, more as the backlog grows (one per "concurrency" tasks,
up to "maxScale"), and stops them, down to "minScale", once the function has had no task for
"idle". A new version replaces the workers (old ones drain). A worker that crashes is replaced;
a version whose workers keep crashing is marked unhealthy (GET /v1/functions/NAME). Several
pools, on one machine or several, share the functions through leases in JetStream
(KV baton_pool_leases): one pool runs a function's workers at a time.

SIGTERM or SIGINT stops the pool: its workers drain, then it exits.

Environment: NATS_URL and the NATS credential variables (NATS_USER/NATS_PASSWORD, NATS_CREDS,
...); BATON_POOL_TICK_MS (default 500), BATON_POOL_LEASE_TTL_MS (default 10000),
BATON_POOL_CRASH_LIMIT (default 3). The workers get this environment too (BATON_LOG_LEVEL,
BATON_PACKAGE_CACHE, ...), but with BATON_POOL_WORKER_USER/_PASSWORD (or _CREDS, _TOKEN, _NKEY,
_CERT/_KEY) set, those are their NATS credential instead of the pool's own (docs/operations.md).

Exit codes: 0 stopped by a signal, 2 usage error.
`,
  async run(args) {
    if (args.length > 0) throw new UsageError(`takes no arguments, got "${args.join(" ")}"`);
    const { startPool } = await import("../../functions/pool.ts");
    const number = (name: string): number | undefined => {
      const text = process.env[name];
      if (text === undefined || text === "") return undefined;
      const value = Number(text);
      if (!Number.isSafeInteger(value) || value <= 0)
        throw new UsageError(`${name} must be a positive whole number, not "${text}"`);
      return value;
    };
    const pool = await startPool({
      natsUrl: process.env.NATS_URL ?? "nats://127.0.0.1:4222",
      tickMs: number("BATON_POOL_TICK_MS"),
      leaseTtlMs: number("BATON_POOL_LEASE_TTL_MS"),
      crashLimit: number("BATON_POOL_CRASH_LIMIT"),
    });
    await new Promise<void>((resolve) => {
      process.once("SIGTERM", () => resolve());
      process.once("SIGINT", () => resolve());
    });
    await pool.stop();
    process.exit(0);
  },
};
