/**
 * The nats-server of `baton dev`: a child process with JetStream, its data in the dev data
 * directory (kept across restarts), listening on 127.0.0.1 only. The binary is found as
 * scripts/ensure-nats-server.sh finds it (NATS_SERVER_BIN, the PATH, the sbin directories
 * Debian uses); when it is missing on Debian/Ubuntu, that script installs it.
 */
import { spawn } from "node:child_process";
import { accessSync, constants, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { delimiter, join } from "node:path";
import { packagePath } from "../package-root.ts";
import { connect } from "nats";
import { describeExit, startChild, type DevChild } from "./child-process.ts";

export interface DevNatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly child: DevChild;
}

/** Thrown when nats-server cannot be found, installed or started: the message says what to do. */
export class NatsServerError extends Error {
  override name = "NatsServerError";
}

/** The port `baton dev` tries first, NATS's usual one, so that other tools find it. */
export const preferredNatsPort = 4222;
const ensureScript = packagePath("scripts/ensure-nats-server.sh");
const installDocs = "https://docs.nats.io/running-a-nats-service/introduction/installation";
const fallbackDirs = ["/usr/sbin", "/usr/local/sbin", "/usr/local/bin"];

/** The nats-server binary, or `undefined` when there is none. */
export function findNatsServer(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const explicit = env.NATS_SERVER_BIN;
  if (explicit !== undefined && explicit !== "") {
    if (isExecutable(explicit)) return explicit;
    throw new NatsServerError(
      `NATS_SERVER_BIN is set to "${explicit}", which is not an executable file; point it at a nats-server binary or unset it`,
    );
  }
  const dirs = [...(env.PATH ?? "").split(delimiter).filter((dir) => dir !== ""), ...fallbackDirs];
  return dirs.map((dir) => join(dir, "nats-server")).find(isExecutable);
}

/**
 * The nats-server binary; on Debian/Ubuntu, installs it with scripts/ensure-nats-server.sh
 * when it is missing (its output goes to `log`).
 */
export async function ensureNatsServer(log: (line: string) => void): Promise<string> {
  const found = findNatsServer();
  if (found !== undefined) return found;
  if (findOnPath("apt-get") === undefined) {
    throw new NatsServerError(
      [
        "nats-server is not installed. Install nats-server 2.9.10 or newer:",
        `  ${installDocs}`,
        "  (macOS: brew install nats-server)",
        "then put it on the PATH or set NATS_SERVER_BIN=/path/to/nats-server,",
        "or point NATS_URL at a NATS server with JetStream that is already running.",
      ].join("\n"),
    );
  }
  log("nats-server is not installed; installing it with scripts/ensure-nats-server.sh");
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn("bash", [ensureScript], { stdio: ["ignore", "inherit", "inherit"] });
    child.once("error", () => resolve(null));
    child.once("close", resolve);
  });
  const installed = findNatsServer();
  if (code !== 0 || installed === undefined) {
    throw new NatsServerError(
      `could not install nats-server (see above); install it yourself (${installDocs}) or set NATS_URL`,
    );
  }
  return installed;
}

/**
 * Starts nats-server on `port` (0: any free port; default: NATS's usual 4222 if it is free, else
 * any free port) with
 * JetStream in `dataDir/jetstream`, and resolves once JetStream answers.
 */
export async function startNatsServer(options: {
  binary: string;
  dataDir: string;
  port?: number;
  onLine: (line: string) => void;
  readyTimeoutMs?: number;
}): Promise<DevNatsServer> {
  const storeDir = join(options.dataDir, "jetstream");
  // -p -1: nats-server picks a free port and writes it to the ports file.
  const port =
    options.port === undefined
      ? (await isPortFree(preferredNatsPort))
        ? preferredNatsPort
        : -1
      : options.port === 0
        ? -1
        : options.port;
  removePortsFiles(options.dataDir);
  const args = [
    ...["-a", "127.0.0.1", "-p", String(port), "-n", "baton-dev"],
    ...["-js", "-sd", storeDir, "--ports_file_dir", options.dataDir],
  ];
  const child = startChild("nats-server", options.binary, args, { onLine: options.onLine });
  try {
    const actualPort = await waitForPort(child, options.dataDir, options.readyTimeoutMs ?? 30_000);
    const url = `nats://127.0.0.1:${actualPort}`;
    await waitForJetStream(child, url, options.readyTimeoutMs ?? 30_000);
    return { url, port: actualPort, storeDir, child };
  } catch (error) {
    await child.stop(2_000);
    throw error;
  }
}

/** nats-server writes `<name>_<pid>.ports` once it listens; its JSON names the client URL. */
async function waitForPort(child: DevChild, dir: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.hasExited) {
      throw new NatsServerError(
        `nats-server exited during start-up (${describeExit(await child.exited)}):\n${child.tail()}`,
      );
    }
    const port = readPort(dir, child.pid);
    if (port !== undefined) return port;
    if (Date.now() > deadline)
      throw new NatsServerError(
        `nats-server did not start listening within ${timeoutMs} ms:\n${child.tail()}`,
      );
    await delay(25);
  }
}

/** JetStream may take a moment after the listener (recovering a kept store): wait until it answers. */
async function waitForJetStream(child: DevChild, url: string, timeoutMs: number): Promise<void> {
  // Our own server on loopback, started without any authorization: no credentials to give.
  const nc = await connect({ servers: url, name: "baton-dev-probe" });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await (await nc.jetstreamManager({ timeout: 2_000 })).getAccountInfo();
        return;
      } catch (error) {
        if (child.hasExited)
          throw new NatsServerError(`nats-server exited during start-up:\n${child.tail()}`);
        if (Date.now() > deadline)
          throw new NatsServerError(`JetStream did not become ready within ${timeoutMs} ms`, {
            cause: error,
          });
        await delay(100);
      }
    }
  } finally {
    await nc.close();
  }
}

function readPort(dir: string, pid: number): number | undefined {
  const name = readdirSync(dir).find((file) => file.endsWith(`_${pid}.ports`));
  if (name === undefined) return undefined;
  try {
    const ports = JSON.parse(readFileSync(join(dir, name), "utf8")) as { nats?: string[] };
    const port = Number(new URL(ports.nats?.[0] ?? "").port);
    return Number.isInteger(port) && port > 0 ? port : undefined;
  } catch {
    return undefined; // Not completely written yet.
  }
}

function removePortsFiles(dir: string): void {
  for (const file of readdirSync(dir)) if (file.endsWith(".ports")) rmSync(join(dir, file), { force: true });
}

/** Whether nothing listens on 127.0.0.1:`port` (a listener on every interface counts). */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen({ host: "127.0.0.1", port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

function findOnPath(command: string): string | undefined {
  return (process.env.PATH ?? "")
    .split(delimiter)
    .filter((dir) => dir !== "")
    .map((dir) => join(dir, command))
    .find(isExecutable);
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
