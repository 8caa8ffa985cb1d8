/**
 * How `bin/baton.mjs` starts. It loads only what the command asks for: module hooks
 * (test/fixtures/cli/record-imports.mjs) record every module a real `baton` process imports,
 * and `baton --help` must load no command, no NATS client, no fastify, no engine. And it never
 * runs a dist/ older than the sources: a checkout-shaped directory with a fake dist/ shows the
 * refusal, the message and the run once the stamp is newer.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { commandEntries } from "../../engine/cli/commands/index.ts";
import { killAllProcesses, spawnProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "baton-cli-start-"));

afterAll(async () => {
  await killAllProcesses();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `baton ARGS` from the sources with the recording hooks; resolves to the URLs it imported. */
async function importsOf(
  args: readonly string[],
  from: "sources" | "compiled" = "sources",
): Promise<{ code: number | null; urls: string[]; stdout: string; stderr: string }> {
  const file = join(dir, `imports-${args.join("-").replace(/\W+/g, "_")}.txt`);
  writeFileSync(file, "");
  const child = spawnProcess(
    process.execPath,
    [
      "--import",
      join(root, "test/fixtures/cli/register-record-imports.mjs"),
      join(root, "bin/baton.mjs"),
      ...args,
    ],
    {
      name: `baton ${args.join(" ")}`,
      env: { RECORD_IMPORTS_FILE: file, BATON_FROM_SOURCE: from === "sources" ? "1" : undefined },
    },
  );
  const exit = await child.waitForExit(60_000);
  return {
    code: exit.code,
    urls: readFileSync(file, "utf8").split("\n").filter(Boolean),
    stdout: child.stdout(),
    stderr: child.stderr(),
  };
}

/** The packages and Baton directories a command that neither talks to NATS nor serves anything must not load. */
const heavy = [
  /\/node_modules\/nats\//,
  /\/node_modules\/fastify\//,
  /\/node_modules\/xstate\//,
  /\/node_modules\/@opentelemetry\//,
  /\/engine\/(orchestrator|nats|api|dev)\//,
  /\/sdk\/worker\//,
];
const loaded = (urls: readonly string[], patterns: readonly RegExp[]): string[] =>
  urls.filter((url) => patterns.some((pattern) => pattern.test(url)));

describe("baton loads what the command needs, and no more", () => {
  it("baton --help loads no command's module", async () => {
    const { code, urls } = await importsOf(["--help"]);
    expect(code).toBe(0);
    // The recording works: the CLI's own entry is there.
    expect(urls.some((url) => url.endsWith("/engine/cli/main.ts"))).toBe(true);
    const commands = urls.filter((url) => /\/engine\/cli\/commands\//.test(url));
    expect(commands.map((url) => url.replace(/^.*\/commands\//, "")).sort()).toEqual(["help.ts", "index.ts"]);
    expect(loaded(urls, [...heavy, /\/node_modules\/(ajv|yaml|jsonata)\//])).toEqual([]);
  });

  it("baton run loads the HTTP client, not the NATS client, the engine or the worker kit", async () => {
    const { code, urls } = await importsOf(["run", "--help"]);
    expect(code).toBe(0);
    expect(urls.some((url) => url.endsWith("/engine/cli/commands/run.ts"))).toBe(true);
    expect(urls.some((url) => url.endsWith("/sdk/client/client.ts"))).toBe(true);
    expect(loaded(urls, [...heavy, /\/node_modules\/(ajv|jsonata)\//])).toEqual([]);
  });

  it("baton validate loads the validator, not NATS, the engine or the worker kit", async () => {
    const { code, urls } = await importsOf(["validate", join(root, "workflows/hello.yaml")]);
    expect(code).toBe(0);
    expect(urls.some((url) => /\/engine\/workflow\/validate\//.test(url))).toBe(true);
    expect(loaded(urls, heavy)).toEqual([]);
  });

  it("baton worker loads the OpenTelemetry SDK only when tracing is asked for", async () => {
    const { code, urls } = await importsOf(["worker", "--help"]);
    expect(code).toBe(0);
    expect(urls.some((url) => url.endsWith("/engine/cli/commands/worker.ts"))).toBe(true);
    expect(
      loaded(urls, [
        /\/node_modules\/@opentelemetry\/sdk-node\//,
        /\/node_modules\/fastify\//,
        /\/engine\/telemetry\/tracing\.ts$/,
      ]),
    ).toEqual([]);
  });

  it("every command of the list loads, under its own name and summary", async () => {
    for (const entry of commandEntries) {
      const command = await entry.load();
      expect({ name: command.name, summary: command.summary }).toEqual({
        name: entry.name,
        summary: entry.summary,
      });
    }
  });
});

describe("the compiled command line is one bundle (dist/cli, scripts/build.mjs)", () => {
  // These run the build (dist/), as a user's `baton` does: `npm ci` builds it before the tests.
  it("baton validate imports a few files of dist/cli, and no module of node_modules or of dist's tree", async () => {
    const { code, urls, stderr } = await importsOf(
      ["validate", join(root, "workflows/hello.yaml")],
      "compiled",
    );
    expect(code).toBe(0);
    expect(stderr).toContain("1 file valid");
    expect(urls.some((url) => url.endsWith("/dist/cli/main.js"))).toBe(true);
    expect(urls.filter((url) => /\/node_modules\/|\/dist\/(engine|sdk)\//.test(url))).toEqual([]);
  });

  it("a CommonJS package the bundle imports on demand gives its names (an unknown command's did-you-mean)", async () => {
    const { code, stderr } = await importsOf(["valdate"], "compiled");
    expect(code).toBe(2);
    expect(stderr).toContain('unknown command "valdate" (did you mean "validate"?)');
  });
});

describe("bin/baton.mjs never runs a stale dist/", () => {
  /** A checkout-shaped directory: bin/baton.mjs, one source file, and a dist/ whose main says it ran. */
  function fakeCheckout(name: string): string {
    const checkout = join(dir, name);
    mkdirSync(join(checkout, "bin"), { recursive: true });
    cpSync(join(root, "bin/baton.mjs"), join(checkout, "bin/baton.mjs"));
    mkdirSync(join(checkout, "engine/cli"), { recursive: true });
    writeFileSync(join(checkout, "engine/cli/main.ts"), "export {};\n");
    mkdirSync(join(checkout, "dist/cli"), { recursive: true });
    writeFileSync(
      join(checkout, "dist/cli/main.js"),
      'export async function main(argv) { process.stdout.write(`compiled ran ${argv.join(" ")}\\n`); return 0; }\n',
    );
    return checkout;
  }

  async function runBaton(checkout: string) {
    const child = spawnProcess(process.execPath, [join(checkout, "bin/baton.mjs"), "hello"], {
      name: "fake baton",
      env: { BATON_FROM_SOURCE: undefined },
    });
    const exit = await child.waitForExit(30_000);
    return { code: exit.code, stdout: child.stdout(), stderr: child.stderr() };
  }

  it("refuses when dist/ was never built", async () => {
    const checkout = fakeCheckout("unbuilt");
    const result = await runBaton(checkout);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("the compiled code is missing");
    expect(result.stderr).toContain('run "npm run build"');
  });

  it("refuses when a source is newer than the build, and runs once it is built again", async () => {
    const checkout = fakeCheckout("stale");
    const stamp = join(checkout, "dist/.built");
    writeFileSync(stamp, "built\n");
    const past = new Date(Date.now() - 60_000);
    utimesSync(stamp, past, past);
    const stale = await runBaton(checkout);
    expect(stale.code).toBe(2);
    expect(stale.stdout).toBe("");
    expect(stale.stderr).toContain("dist/ is older than engine/cli/main.ts");

    const future = new Date(Date.now() + 60_000);
    utimesSync(stamp, future, future);
    const fresh = await runBaton(checkout);
    expect(fresh.stderr).toBe("");
    expect(fresh.code).toBe(0);
    expect(fresh.stdout).toBe("compiled ran hello");
  });

  it("an installed package (no sources beside dist/) runs dist/ without a stamp", async () => {
    const checkout = fakeCheckout("installed");
    rmSync(join(checkout, "engine"), { recursive: true });
    const result = await runBaton(checkout);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("compiled ran hello");
  });
});
