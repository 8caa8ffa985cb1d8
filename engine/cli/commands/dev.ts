/** `baton dev`: nats-server, the engine, the HTTP API and the example workers on one machine. */
import { UsageError, type Command } from "../command.ts";

export const devCommand: Command = {
  name: "dev",
  summary: "Run NATS, the engine, the API and the example workers on this machine",
  usage: `Usage: baton dev

One command for a laptop, run from the project's directory:
  - nats-server with JetStream as a child process, its data in BATON_DATA_DIR (default ./.baton,
    kept across restarts), on 127.0.0.1:4222 if that port is free, else on a free port
    (BATON_NATS_PORT sets it; 0 picks a free one); unless NATS_URL names a server to use instead
  - the engine and the HTTP API in this process, on BATON_LISTEN (default 127.0.0.1:8080)
  - every workflow of workflows/*.yaml submitted (workflows/invalid/ is not), and "baton worker"
    on every module of functions/, as a child process; or, when the directory has a project
    file (baton.yaml), what "baton apply" deploys: the functions it declares, as packages, and
    the workflows it declares (a plain worker serves the modules of functions/ it does not
    declare)
  - the pool ("baton pool"), in this process: workers for the function packages deployed with
    "baton function deploy" or "baton apply", started when their tasks wait (docs/functions.md)
then prints the URLs and a "baton run" line to try.

Ctrl-C or SIGTERM stops it all in order (workers drain, then the API, the engine, NATS); a
second Ctrl-C kills the child processes at once. Nothing is left running, and the next start
keeps the data.

Environment: BATON_DATA_DIR, BATON_NATS_PORT, NATS_URL, NATS_SERVER_BIN, BATON_LISTEN,
BATON_API_TOKENS, and those of "baton engine" and "baton worker".

Exit codes: 0 stopped by a signal, 1 a part failed to start or died.
`,
  async run(args) {
    if (args.length > 0) throw new UsageError(`takes no arguments, got "${args.join(" ")}"`);
    // Loaded here, not at the top: the engine, the API and fastify are not every command's business.
    const { runDev } = await import("../../dev/dev.ts");
    const code = await runDev();
    // Everything has stopped; nothing left behind (an idle socket) should keep the process up.
    process.exit(code);
  },
};
