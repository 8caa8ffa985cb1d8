/**
 * Headless Chromium for the browser system tests: Debian's `chromium` (scripts/ensure-chromium.sh
 * installs it; `CHROMIUM_BIN` overrides the path) driven by playwright-core, and a static file
 * server that puts pages on an origin of their own (another port is another origin).
 */
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { chromium, type Browser } from "playwright-core";

export const chromiumPath = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(chromiumPath))
    throw new Error(`no Chromium at ${chromiumPath}: run scripts/ensure-chromium.sh (or set CHROMIUM_BIN)`);
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // Root in a container has no user namespace for Chromium's sandbox.
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
}

export interface StaticSite {
  /** `http://127.0.0.1:<port>`: an origin of its own. */
  origin: string;
  close(): Promise<void>;
}

/** Serves `files` (URL path → file on disk) on 127.0.0.1, a free port. */
export async function serveStatic(files: Record<string, string>): Promise<StaticSite> {
  const server: Server = createServer((request, response) => {
    const file = files[(request.url ?? "/").split("?")[0]!];
    if (file === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
