// A real nats-server per test file, in the spirit of nats.js's test launcher: a random port
// (`-p -1`, read back from the ports file), a fresh JetStream directory, and a clear message
// on how to install the server when it is missing.
import {
  accessSync,
  constants,
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { execFileSync } from "node:child_process";
import { connect as connectTcp } from "node:net";
import { tmpdir } from "node:os";
import { basename, delimiter, join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { formatExit, onProcessExit, spawnProcess, waitUntil, type TestProcess } from "./processes.ts";

export interface NatsServerOptions {
  /** The nats-server binary. Default: resolveNatsServerBinary(). */
  readonly binary?: string;
  /** Enable JetStream, with file storage in a fresh temp dir. Default true. */
  readonly jetstream?: boolean;
  /** The server's max_payload in bytes (set through a generated config file). Default: the server's (1 MiB). */
  readonly maxPayload?: number;
  /**
   * A nats-server configuration file to run with, copied into the server's temp dir (the
   * command line's address, port and JetStream dir still win over the file's).
   */
  readonly configFile?: string;
  /**
   * The environment variable `configFile` takes its JetStream `store_dir` from: the helper sets it
   * to its temp store dir (nats-server refuses `-sd` beside a `store_dir` in the file).
   */
  readonly storeDirVariable?: string;
  /** Environment variables for the server process (a config file's `$VARIABLE`s). */
  readonly env?: Readonly<Record<string, string>>;
  /** Extra command-line arguments for nats-server. */
  readonly args?: readonly string[];
  /** How long to wait for the server to accept connections. Default 20 s. */
  readonly readyTimeoutMs?: number;
  /** Echo the server's log to stderr. Default: `BATON_TEST_VERBOSE=1`. */
  readonly echo?: boolean;
}

export interface NatsServer {
  /** `nats://127.0.0.1:<port>`; stays the same across `restart()`. */
  readonly url: string;
  readonly port: number;
  /** The JetStream store dir (`-sd`); kept across `kill()` and `restart()`. */
  readonly storeDir: string;
  /** The temp dir holding the store, the ports file and the config; removed by `stop()`. */
  readonly dir: string;
  /** The pid of the current server process. */
  readonly pid: number;
  /** The server's log so far (current process). */
  logs(): string;
  /** Ends the server (SIGTERM, then SIGKILL) and removes its temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILLs the server, keeping its data, as a crash would. */
  kill(): Promise<void>;
  /**
   * Starts the server again on the same port and JetStream dir (stopping it first if running),
   * `downForMs` after it stopped: an outage of that length.
   */
  restart(downForMs?: number): Promise<void>;
}

export const NATS_SERVER_MIN_VERSION = "2.9.10";

/** Thrown when no nats-server binary can be found. */
export class NatsServerNotFoundError extends Error {
  override readonly name = "NatsServerNotFoundError";
}

const INSTALL_HELP = [
  `Integration and system tests need a real nats-server >= ${NATS_SERVER_MIN_VERSION}. Install it with one of:`,
  "  bash scripts/ensure-nats-server.sh   (on Debian/Ubuntu it installs the nats-server package)",
  "  sudo apt-get install -y nats-server",
  "  or download it from https://docs.nats.io/running-a-nats-service/introduction/installation",
  "then put it on the PATH or set NATS_SERVER_BIN=/path/to/nats-server.",
].join("\n");

// Debian installs nats-server in /usr/sbin, which is not on every user's PATH.
const FALLBACK_DIRS = ["/usr/sbin", "/usr/local/sbin", "/usr/local/bin"];

/** The nats-server binary: NATS_SERVER_BIN if set, else the first `nats-server` on the PATH. */
export function resolveNatsServerBinary(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.NATS_SERVER_BIN;
  if (explicit !== undefined && explicit !== "") {
    if (isExecutable(explicit)) return explicit;
    throw new NatsServerNotFoundError(
      `NATS_SERVER_BIN is set to "${explicit}", which is not an executable file.\n${INSTALL_HELP}`,
    );
  }
  const dirs = [...(env.PATH ?? "").split(delimiter).filter((dir) => dir !== ""), ...FALLBACK_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, process.platform === "win32" ? "nats-server.exe" : "nats-server");
    if (isExecutable(candidate)) return candidate;
  }
  throw new NatsServerNotFoundError(`nats-server was not found on the PATH.\n${INSTALL_HELP}`);
}

/**
 * The nats-server binary for a cluster: NATS_SERVER_CLUSTER_BIN if set (scripts/test.sh sets it to
 * a 2.10+ server, scripts/ensure-nats-server-cluster.sh), else the one resolveNatsServerBinary()
 * finds. A cluster needs 2.10+ (docs/operations.md); one node runs on 2.9.10, which the other tests use.
 */
export function resolveClusterNatsServerBinary(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.NATS_SERVER_CLUSTER_BIN;
  if (explicit === undefined || explicit === "") return resolveNatsServerBinary(env);
  if (isExecutable(explicit)) return explicit;
  throw new NatsServerNotFoundError(
    `NATS_SERVER_CLUSTER_BIN is set to "${explicit}", which is not an executable file.\n` +
      "Run bash scripts/ensure-nats-server-cluster.sh to fetch a nats-server 2.10+, or unset it.",
  );
}

/** The version of a nats-server binary, as [major, minor, patch]. */
export function natsServerVersion(binary: string): [number, number, number] {
  const printed = execFileSync(binary, ["--version"], { encoding: "utf8" });
  const match = /v?(\d+)\.(\d+)\.(\d+)/.exec(printed);
  if (!match) throw new Error(`${binary} --version printed no version: ${printed}`);
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

/** Whether a nats-server binary is version 2.10 or newer (sync_interval; safe replicated work queues). */
export function isNatsServer210(binary: string): boolean {
  const [major, minor] = natsServerVersion(binary);
  return major > 2 || (major === 2 && minor >= 10);
}

/** Starts a nats-server on 127.0.0.1 and a random port, and resolves once it accepts connections. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = options.binary ?? resolveNatsServerBinary();
  const jetstream = options.jetstream ?? true;
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  const dir = mkdtempSync(join(tmpdir(), "baton-nats-"));
  liveDirs.add(dir);
  const storeDir = join(dir, "jetstream");

  const baseArgs = ["-a", "127.0.0.1", "--ports_file_dir", dir];
  const serverEnv: Record<string, string> = { ...options.env };
  if (jetstream && options.storeDirVariable !== undefined) {
    baseArgs.push("-js");
    serverEnv[options.storeDirVariable] = storeDir;
  } else if (jetstream) baseArgs.push("-js", "-sd", storeDir);
  const configLines: string[] = [];
  if (options.configFile !== undefined) {
    const copy = `included-${basename(options.configFile)}`;
    copyFileSync(options.configFile, join(dir, copy));
    configLines.push(`include "${copy}"`);
  }
  // nats-server 2.9 has no command-line flag for max_payload.
  if (options.maxPayload !== undefined) configLines.push(`max_payload: ${options.maxPayload}`);
  if (configLines.length > 0) {
    const config = join(dir, "nats-server.conf");
    writeFileSync(config, `${configLines.join("\n")}\n`);
    baseArgs.push("-c", config);
  }
  baseArgs.push(...(options.args ?? []));

  const launch = async (port: number): Promise<{ process: TestProcess; port: number }> => {
    const server = spawnProcess(binary, [...baseArgs, "-p", String(port)], {
      name: "nats-server",
      echo: options.echo,
      env: serverEnv,
    });
    try {
      const actualPort = await waitUntilReady(server, dir, jetstream, readyTimeoutMs);
      return { process: server, port: actualPort };
    } catch (error) {
      await server.kill("SIGKILL");
      throw error;
    }
  };

  let current: TestProcess;
  let port: number;
  try {
    ({ process: current, port } = await launch(-1));
  } catch (error) {
    removeDir(dir);
    throw error;
  }
  let isStopped = false;

  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    storeDir,
    dir,
    get pid() {
      return current.pid;
    },
    logs: () => current.output(),
    stop: async () => {
      if (isStopped) return;
      isStopped = true;
      await current.kill("SIGTERM");
      removeDir(dir);
    },
    kill: async () => {
      await current.kill("SIGKILL");
    },
    restart: async (downForMs = 0) => {
      if (isStopped) throw new Error("restart() after stop(): the server's data is gone; start a new one");
      await current.kill("SIGTERM");
      // An outage of a given length (a test of what happens when NATS is away that long).
      if (downForMs > 0) await new Promise((resolve) => setTimeout(resolve, downForMs));
      ({ process: current } = await launch(port));
    },
  };
}

/**
 * Starts a nats-server before the tests of the calling file and stops it after them. Returns a
 * getter, since the server exists only once beforeAll has run:
 *
 * ```ts
 * const server = useNatsServer();
 * it("works", async () => { const nc = await connect({ servers: server().url }); ... });
 * ```
 */
export function useNatsServer(options: NatsServerOptions = {}): () => NatsServer {
  let server: NatsServer | undefined;
  beforeAll(async () => {
    server = await startNatsServer(options);
  });
  afterAll(async () => {
    await server?.stop();
  });
  return () => {
    if (server === undefined) throw new Error("useNatsServer(): the server is only available inside tests");
    return server;
  };
}

/**
 * The server is ready when it has written its ports file (after its client listener is up) and
 * a TCP client gets its INFO line, with JetStream enabled when asked for.
 */
async function waitUntilReady(
  server: TestProcess,
  dir: string,
  jetstream: boolean,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  const portsFile = join(dir, `nats-server_${server.pid}.ports`);
  const port = await waitUntil(
    `nats-server (pid ${server.pid}) to write ${portsFile}`,
    () => {
      throwIfExited(server);
      return readPort(dir, server.pid);
    },
    { timeoutMs },
  ).catch((error: unknown) => {
    throw withLogs(server, error);
  });
  await waitUntil(
    `nats-server on port ${port} to accept connections`,
    async () => {
      throwIfExited(server);
      const info = await readInfo(port);
      return !jetstream || info.jetstream === true ? true : undefined;
    },
    { timeoutMs: Math.max(deadline - Date.now(), 1_000) },
  ).catch((error: unknown) => {
    throw withLogs(server, error);
  });
  return port;
}

function readPort(dir: string, pid: number): number | undefined {
  // The file is named after the executable (nats-server_<pid>.ports), which NATS_SERVER_BIN may rename.
  const name = readdirSync(dir).find((file) => file.endsWith(`_${pid}.ports`));
  if (name === undefined) return undefined;
  let ports: { nats?: string[] };
  try {
    ports = JSON.parse(readFileSync(join(dir, name), "utf8")) as { nats?: string[] };
  } catch {
    return undefined; // Written but not complete yet.
  }
  const url = ports.nats?.[0];
  const port = url === undefined ? NaN : Number(new URL(url).port);
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

/** Connects to the server, reads its `INFO {...}` line and disconnects. */
function readInfo(port: number): Promise<{ jetstream?: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp({ host: "127.0.0.1", port });
    let received = "";
    socket.setEncoding("utf8");
    socket.setTimeout(2_000, () => socket.destroy(new Error("no INFO from nats-server within 2 s")));
    socket.on("data", (chunk: string) => {
      received += chunk;
      const end = received.indexOf("\r\n");
      if (end === -1) return;
      socket.destroy();
      const line = received.slice(0, end);
      if (!line.startsWith("INFO ")) return reject(new Error(`unexpected greeting: ${line}`));
      try {
        resolve(JSON.parse(line.slice("INFO ".length)) as { jetstream?: boolean });
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
    socket.on("error", reject);
    socket.on("close", () => reject(new Error("connection closed before INFO")));
  });
}

function throwIfExited(server: TestProcess): void {
  if (server.exit !== undefined) {
    throw new Error(`nats-server exited during start-up (${formatExit(server.exit)})`);
  }
}

function withLogs(server: TestProcess, error: unknown): Error {
  const reason = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : "";
  const log = server.output().split("\n").slice(-30).join("\n");
  return new Error(`nats-server did not become ready: ${reason}${cause}\n--- nats-server log ---\n${log}`, {
    cause: error,
  });
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

// Temp dirs of servers not stopped yet; removed when the test process exits, whatever the way.
const liveDirs = new Set<string>();
onProcessExit(() => {
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
});

function removeDir(dir: string): void {
  liveDirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}
