/**
 * Baton as a user installs it: `npm pack` (of the dist/ test/global-setup.ts built before the tests;
 * with --ignore-scripts, so that `prepare` does not rebuild it while other files run), then in an empty
 * directory `npm install ./baton-*.tgz` (from npm's local cache where it can). There, with the
 * compiled code only (BATON_FROM_SOURCE unset: this is the test of the compiled path), `npx baton
 * --help` and `npx baton validate` work, `npx baton dev` starts with no workflows/ or functions/
 * of the project's own and says how to add them, then stops on SIGTERM; `import { defineFunction,
 * BatonClient } from "baton"` works from a .mjs, and from a .ts that tsc typechecks against the
 * declarations the package ships.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNatsServer } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "baton-package-"));
const project = join(dir, "project");
/** The compiled code, as an installed package runs it: never the sources through tsx. */
const compiled = { BATON_FROM_SOURCE: undefined, NODE_OPTIONS: undefined };

async function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: Record<string, string | undefined>; timeoutMs?: number },
) {
  const child = spawnProcess(command, args, {
    name: `${command} ${args[0] ?? ""}`,
    cwd: options.cwd,
    env: { ...compiled, ...options.env },
  });
  const exit = await child.waitForExit(options.timeoutMs ?? 120_000);
  return { code: exit.code, stdout: child.stdout(), stderr: child.stderr() };
}

beforeAll(async () => {
  const packed = await run("npm", ["pack", "--ignore-scripts", "--pack-destination", dir], {
    cwd: root,
    timeoutMs: 300_000,
  });
  expect(packed.code, packed.stderr).toBe(0);
  const tarball = readdirSync(dir).find((name) => /^baton-.*\.tgz$/.test(name));
  expect(tarball, readdirSync(dir).join(" ")).toBeDefined();
  mkdirSync(project);
  writeFileSync(
    join(project, "package.json"),
    `${JSON.stringify({ name: "uses-baton", private: true, type: "module" }, null, 2)}\n`,
  );
  const installed = await run(
    "npm",
    ["install", join(dir, tarball!), "--prefer-offline", "--no-audit", "--no-fund"],
    { cwd: project, timeoutMs: 400_000 },
  );
  expect(installed.code, installed.stderr).toBe(0);
}, 720_000);

afterAll(async () => {
  await killAllProcesses();
  rmSync(dir, { recursive: true, force: true });
}, 300_000);

describe("the npm package", () => {
  it("ships the compiled code and its declarations, not the TypeScript sources", async () => {
    const listed = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: root });
    expect(listed.code, listed.stderr).toBe(0);
    const files = (JSON.parse(listed.stdout) as { files: { path: string }[] }[])[0]!.files.map(
      (file) => file.path,
    );
    expect(files).toContain("bin/baton.mjs");
    expect(files).toContain("dist/sdk/index.js");
    expect(files).toContain("dist/sdk/index.d.ts");
    expect(files).toContain("dist/engine/cli/main.js");
    expect(files).toContain("dist/cli/main.js");
    expect(files).toContain("dist/cli/isolate-runtime.js");
    expect(files).toContain("dist/engine/workflow/schema/workflow.schema.json");
    // The console's front end is compiled by esbuild when /ui is first asked for: its sources ship.
    expect(files).toContain("engine/api/ui/app/main.tsx");
    expect(files.filter((file) => /^(engine|sdk)\/.*\.ts$/.test(file) && !file.includes("/ui/app/"))).toEqual(
      [],
    );
  });

  it("npx baton --help and npx baton validate work", async () => {
    const help = await run("npx", ["baton", "--help"], { cwd: project });
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: baton <command>/);

    mkdirSync(join(project, "flows"), { recursive: true });
    writeFileSync(
      join(project, "flows/hello.yaml"),
      "baton: v1\nname: hello\nsteps:\n  - name: greet\n    call: hello\n    with: { name: ana }\n",
    );
    const valid = await run("npx", ["baton", "validate", "flows"], { cwd: project });
    expect(valid.code, valid.stderr).toBe(0);
    expect(valid.stderr).toContain("1 file valid");

    writeFileSync(join(project, "flows/broken.yaml"), "baton: v1\nname: broken\nsteps: []\n");
    const invalid = await run("npx", ["baton", "validate", "flows"], { cwd: project });
    expect(invalid.code).toBe(1);
    expect(invalid.stdout).toMatch(/^flows\/broken\.yaml:\d+:\d+ \S+/m);
  });

  it("npx baton dev starts with no workflows or functions of the project's own, and says how to add them", async () => {
    const dev = spawnProcess("npx", ["baton", "dev"], {
      name: "npx baton dev",
      cwd: project,
      env: {
        ...compiled,
        BATON_DATA_DIR: join(dir, "dev-data"),
        BATON_LISTEN: "127.0.0.1:0",
        BATON_NATS_PORT: "0",
        NATS_URL: undefined,
        BATON_LOG_LEVEL: "warn",
      },
    });
    await dev.waitForLine(/^Baton dev is up\.$/, { timeoutMs: 120_000 });
    await dev.waitForLine(/^Ctrl-C stops everything/, { timeoutMs: 10_000 });
    const banner = dev.stdout();
    expect(banner).toMatch(/^ {2}workers\s+none \(no modules in functions\//m);
    expect(banner).toMatch(/^No functions yet: add an ES module to functions\//m);
    expect(banner).toMatch(/^No workflows yet: add a workflow file, workflows\/hello\.yaml/m);
    expect(banner).toContain("npx baton apply -f workflows");
    const exit = await dev.kill("SIGTERM", 30_000);
    // baton dev stops in order and exits 0; npx, which passed SIGTERM on, then ends by that signal.
    expect(dev.stderr()).toMatch(/^baton dev: stopped/m);
    expect(exit.code === 0 || exit.signal === "SIGTERM", `${JSON.stringify(exit)}\n${dev.stderr()}`).toBe(
      true,
    );
  });

  it("npx baton worker serves a function module of the project written in TypeScript", async () => {
    const nats = await startNatsServer();
    try {
      mkdirSync(join(project, "functions"), { recursive: true });
      writeFileSync(
        join(project, "functions/greet.ts"),
        `import { defineFunction } from "baton";
export default defineFunction({
  name: "greet",
  handler: (input: { name: string }): { greeting: string } => ({ greeting: \`hello \${input.name}\` }),
});
`,
      );
      const worker = spawnProcess("npx", ["baton", "worker", "functions/greet.ts"], {
        name: "npx baton worker",
        cwd: project,
        env: { ...compiled, NATS_URL: nats.url, BATON_LOG_LEVEL: "info" },
      });
      // "serving" comes once the worker and its first isolate have both loaded the module.
      await worker.waitForLine(/"msg":"serving"/, { timeoutMs: 60_000 });
      expect(worker.stderr()).toContain("greet");
      await worker.kill("SIGTERM", 30_000);
    } finally {
      await nats.stop();
      rmSync(join(project, "functions"), { recursive: true, force: true });
    }
  });

  it('import { defineFunction, BatonClient } from "baton" works from JavaScript', async () => {
    writeFileSync(
      join(project, "uses-baton.mjs"),
      `import { defineFunction, BatonClient } from "baton";
const hello = defineFunction({ name: "hello", handler: (input) => ({ greeting: "hello " + input.name }) });
const client = new BatonClient({ url: "http://127.0.0.1:1" });
console.log(JSON.stringify({ name: hello.name, output: await hello.handler({ name: "ana" }), client: typeof client.start }));
`,
    );
    const result = await run(process.execPath, ["uses-baton.mjs"], { cwd: project });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      name: "hello",
      output: { greeting: "hello ana" },
      client: "function",
    });
  });

  it('import { defineFunction, BatonClient } from "baton" typechecks from TypeScript', async () => {
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2023",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmit: true,
          // The package's declarations name Node's types; the project has no @types/node of its own.
          typeRoots: [join(root, "node_modules/@types")],
          types: ["node"],
        },
        files: ["uses-baton.ts"],
      }),
    );
    writeFileSync(
      join(project, "uses-baton.ts"),
      `import { defineFunction, BatonClient, type FunctionDefinition } from "baton";

export const hello: FunctionDefinition = defineFunction({
  name: "hello",
  handler: (input: { name: string }) => ({ greeting: \`hello \${input.name}\` }),
});
const client = new BatonClient({ url: "http://127.0.0.1:8080" });
export const started: Promise<{ id: string }> = client.start("hello", { name: "ana" });
// The declarations are real, not \`any\`: a definition without a handler is refused.
// @ts-expect-error handler is required
defineFunction({ name: "no-handler" });
`,
    );
    const tsc = join(root, "node_modules/typescript/bin/tsc");
    const checked = await run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: project });
    expect(checked.code, `${checked.stdout}${checked.stderr}`).toBe(0);
  });
});
