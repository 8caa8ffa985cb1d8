/**
 * Function packages as a user deploys them (docs/functions.md): real nats-server, the engine with
 * its API (engine/api/run-api.ts), `baton function deploy|ls|get|rm` and `baton worker --package`
 * as processes. A module with an npm dependency is bundled and deployed, an unchanged one keeps
 * its version, bad uploads are refused with nothing stored, a worker serves a package version
 * and its heartbeats say which, a delete is a tombstone after which numbering goes on.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatonClient } from "../../sdk/index.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess, waitUntil } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const baton = join(root, "bin/baton.mjs");
const sdk = join(root, "sdk/index.ts");
const server = useNatsServer();
const dir = mkdtempSync(join(tmpdir(), "baton-packages-"));
/** The API's package limit, small so that "too large" is cheap to send. */
const packageLimit = 512 * 1024;
let apiUrl: string;
let client: BatonClient;

/** A module with an npm dependency (yaml), resolved through the node_modules link below. */
const greetModule = (greeting: string) => `import { defineFunction } from ${JSON.stringify(sdk)};
import { stringify } from "yaml";
export const greet = defineFunction({
  name: "greet",
  handler: (input: { name: string }) => ({ text: ${JSON.stringify(greeting)} + ", " + input.name, yaml: stringify({ a: 1 }).trim() }),
});
`;

async function cli(args: readonly string[], url = apiUrl) {
  const child = spawnProcess(process.execPath, [baton, ...args], {
    name: `baton ${args.slice(0, 2).join(" ")}`,
    env: { BATON_URL: url, BATON_TOKEN: undefined, NATS_URL: server().url },
  });
  const exit = await child.waitForExit(60_000);
  return { code: exit.code, stdout: child.stdout(), stderr: child.stderr() };
}

async function put(name: string, body: string | Uint8Array, contentType = "application/javascript") {
  const response = await fetch(`${apiUrl}/v1/functions/${name}`, {
    method: "PUT",
    headers: { "content-type": contentType },
    body,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

interface FunctionBody {
  version: number;
  digest: string;
  size: number;
  versions: { version: number; digest: string; size: number }[];
  workers: { worker: string; version?: number }[];
  [key: string]: unknown;
}

async function getFunction(name: string) {
  const response = await fetch(`${apiUrl}/v1/functions/${name}`);
  return { status: response.status, body: (await response.json()) as FunctionBody };
}

/** Starts engine+API (engine/api/run-api.ts) and resolves with its URL; `env` adds to its environment. */
async function startApi(name: string, env: NodeJS.ProcessEnv = {}) {
  const api = spawnProcess(process.execPath, ["--import", "tsx", join(root, "engine/api/run-api.ts")], {
    name,
    cwd: root,
    env: {
      NATS_URL: server().url,
      BATON_LISTEN: "127.0.0.1:0",
      BATON_API_TOKENS: undefined,
      BATON_API_PACKAGE_LIMIT: String(packageLimit),
      BATON_LOG_LEVEL: "warn",
      ...env,
    },
  });
  const url = (
    await api.waitForLine(/"message":"api listening".*"url":"(http:\/\/[^"]+)"/, { timeoutMs: 40_000 })
  )[1]!;
  return { api, url };
}

beforeAll(async () => {
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
  writeFileSync(join(dir, "greet.ts"), greetModule("hello"));
  apiUrl = (await startApi("engine+api")).url;
  client = new BatonClient({ url: apiUrl });
  await client.workflows.apply(`baton: v1
name: greet-once
steps:
  - name: greet
    call: greet
    with:
      name: \${ $input.name }
`);
});

afterAll(async () => {
  await killAllProcesses();
  rmSync(dir, { recursive: true, force: true });
});

describe("baton function deploy", () => {
  it("bundles the module with its npm dependency, uploads it, and keeps the version of an unchanged bundle", async () => {
    const first = await cli([
      "function",
      "deploy",
      join(dir, "greet.ts"),
      "--max-scale",
      "3",
      "--idle",
      "30s",
    ]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^greet version 1 \(created\) sha256:[0-9a-f]{64} \d+ bytes$/m);

    const again = await cli([
      "function",
      "deploy",
      join(dir, "greet.ts"),
      "--max-scale",
      "3",
      "--idle",
      "30s",
    ]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^greet version 1 \(unchanged\)/m);

    const { status, body } = await getFunction("greet");
    expect(status).toBe(200);
    expect(body).toMatchObject({
      name: "greet",
      version: 1,
      environment: "node20",
      scale: { minScale: 0, maxScale: 3, concurrency: 16, idle: "30s" },
      health: { status: "healthy" },
    });
    expect(body.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(body.versions).toHaveLength(1);
    expect(body.versions[0]).toMatchObject({ version: 1, digest: body.digest, size: body.size });

    const listed = await cli(["function", "ls"]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^greet\tversion 1\tnode20\thealthy\tscale 0\.\.3 x16 idle 30s$/m);
  });

  it("refuses bad uploads with a problem document, and stores nothing", async () => {
    const cases: { name: string; body: string; code: string; detail: RegExp }[] = [
      { name: "broken", body: "export const = ;", code: "PackageInvalid", detail: /not a JavaScript module/ },
      {
        name: "outside",
        body: 'import pad from "left-pad";\nexport default pad;',
        code: "PackageInvalid",
        detail: /imports "left-pad", which it does not contain/,
      },
      { name: "nothing", body: "export const a = 1;", code: "PackageInvalid", detail: /defines no function/ },
      {
        name: "throws",
        body: 'throw new Error("boom at load");',
        code: "PackageInvalid",
        detail: /throws when it is loaded: boom at load/,
      },
      {
        // A crash at load (an abort, a fault in a native addon) ends the checking process, not the
        // API: the next case is answered by the same API.
        name: "aborts",
        body: "process.abort();",
        code: "PackageInvalid",
        detail: /crashed while loading \(SIGABRT\)/,
      },
      {
        name: "too-large",
        body: `export const a = "${"x".repeat(packageLimit)}";`,
        code: "PackageTooLarge",
        detail: /BATON_API_PACKAGE_LIMIT/,
      },
    ];
    for (const bad of cases) {
      const { status, body } = await put(bad.name, bad.body);
      expect(body.code, bad.name).toBe(bad.code);
      expect(status, bad.name).toBe(bad.code === "PackageTooLarge" ? 413 : 400);
      expect(String(body.detail), bad.name).toMatch(bad.detail);
      expect((await getFunction(bad.name)).status, bad.name).toBe(404);
    }

    // The name must be the function's own: greet's bundle deployed as "other" is refused.
    const mismatch = await cli(["function", "deploy", join(dir, "greet.ts"), "--name", "other"]);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/FunctionNameMismatch: the bundle defines "greet", not "other"/);
    expect((await getFunction("other")).status).toBe(404);
    // A module that throws at load is refused at deploy through the CLI too, and greet is untouched.
    writeFileSync(join(dir, "throws.ts"), greetModule("hi") + '\nthrow new Error("no config");\n');
    const throws = await cli(["function", "deploy", join(dir, "throws.ts"), "--name", "greet"]);
    expect(throws.code).toBe(1);
    expect(throws.stderr).toMatch(/PackageInvalid: the module throws when it is loaded: no config/);
    expect((await getFunction("greet")).body.version).toBe(1);
  });

  it("checks an upload in a process that sees none of the API's environment", async () => {
    // The API runs with NATS_URL (and, deployed, its credentials and tokens): code being checked
    // must not read them. This module refuses to load if it can.
    const peek = `const seen = Object.keys(process.env).filter((name) => /^(NATS|BATON)_/.test(name));
if (seen.length > 0) throw new Error("it sees " + seen.join(", "));
export {};
`;
    const { status, body } = await put("peek", peek);
    expect(status).toBe(400);
    // Loaded, saw nothing, and defines no function: the refusal that comes after loading.
    expect(String(body.detail)).toMatch(/defines no function/);
  });

  it("a worker serves a package version, says which in its heartbeats, and a new version runs on a new worker", async () => {
    const worker = spawnProcess(process.execPath, [baton, "worker", "--package", "greet"], {
      name: "worker greet",
      env: { NATS_URL: server().url, BATON_PACKAGE_CACHE: join(dir, "cache") },
    });
    await worker.waitForLine(/"msg":"serving"/, { timeoutMs: 40_000 });
    const served = await waitUntil("the heartbeat to name greet@1", async () => {
      const { body } = await getFunction("greet");
      return body.workers.find((w) => w.version === 1) ? body : undefined;
    });
    expect(served.workers).toHaveLength(1);
    const execution = await client.start("greet-once", { name: "ana" });
    expect(await execution.result()).toEqual({ text: "hello, ana", yaml: "a: 1" });

    writeFileSync(join(dir, "greet.ts"), greetModule("bonjour"));
    const second = await cli(["function", "deploy", join(dir, "greet.ts")]);
    expect(second.stdout).toMatch(/^greet version 2 \(updated\)/m);
    // The running worker keeps version 1 until it stops (tasks carry no version).
    await worker.kill("SIGTERM");
    const pinned = spawnProcess(process.execPath, [baton, "worker", "--package", "greet@2"], {
      name: "worker greet@2",
      env: { NATS_URL: server().url, BATON_PACKAGE_CACHE: join(dir, "cache") },
    });
    await pinned.waitForLine(/"msg":"serving"/, { timeoutMs: 40_000 });
    const next = await client.start("greet-once", { name: "ana" });
    expect(await next.result()).toMatchObject({ text: "bonjour, ana" });
    await pinned.kill("SIGTERM");
  });

  it("rm leaves a tombstone: the function is gone, and numbering goes on after it", async () => {
    const removed = await cli(["function", "rm", "greet"]);
    expect(removed.code).toBe(0);
    expect((await getFunction("greet")).status).toBe(404);
    expect((await cli(["function", "rm", "greet"])).stderr).toMatch(/FunctionNotFound/);
    const missing = spawnProcess(process.execPath, [baton, "worker", "--package", "greet"], {
      name: "worker greet (deleted)",
      env: { NATS_URL: server().url },
    });
    expect((await missing.waitForExit(30_000)).code).toBe(1);
    expect(missing.stderr()).toMatch(/no function package named "greet" is deployed/);

    const again = await cli(["function", "deploy", join(dir, "greet.ts")]);
    expect(again.stdout).toMatch(/^greet version 3 \(created\)/m);
  });
});

describe("a package with a native addon", () => {
  // sharp loads its addon (@img/sharp-<platform>, and libvips beside it) at run time: no bundle
  // can hold it, so the package is an archive of the bundle and those packages' files.
  it("is deployed as an archive, the same archive again is unchanged, and a package worker runs it", async () => {
    const file = join(dir, "resize.ts");
    writeFileSync(
      file,
      `import { defineFunction } from ${JSON.stringify(sdk)};
import sharp from "sharp";
export const resize = defineFunction({
  name: "resize",
  handler: async (input: { width: number }) => {
    const png = await sharp({ create: { width: 40, height: 20, channels: 3, background: "#336699" } }).png().toBuffer();
    const meta = await sharp(await sharp(png).resize({ width: input.width }).png().toBuffer()).metadata();
    return { width: meta.width, height: meta.height, format: meta.format };
  },
});
`,
    );
    // An API that takes packages of the default size (this file's own takes 512 KiB).
    const { url } = await startApi("engine+api (default package limit)", {
      BATON_API_PACKAGE_LIMIT: undefined,
    });
    const first = await cli(["function", "deploy", file], url);
    expect(first.stderr).toBe("");
    const [, size] = /^resize version 1 \(created\) sha256:[0-9a-f]+ (\d+) bytes$/m.exec(first.stdout) ?? [];
    // The addon and libvips travel with it: megabytes, where the bundle alone is far less.
    expect(Number(size)).toBeGreaterThan(2_000_000);
    const again = await cli(["function", "deploy", file], url);
    expect(again.stdout).toMatch(/^resize version 1 \(unchanged\)/m);

    await client.workflows.apply(`baton: v1
name: resize-once
steps:
  - name: resize
    call: resize
    with:
      width: \${ $input.width }
`);
    const worker = spawnProcess(process.execPath, [baton, "worker", "--package", "resize"], {
      name: "worker resize",
      // A cache of its own: the archive comes from JetStream and is unpacked there.
      env: { NATS_URL: server().url, BATON_PACKAGE_CACHE: join(dir, "cache-native") },
    });
    await worker.waitForLine(/"msg":"serving"/, { timeoutMs: 60_000 });
    const execution = await client.start("resize-once", { width: 10 });
    expect(await execution.result()).toEqual({ width: 10, height: 5, format: "png" });
    await worker.kill("SIGTERM");
  });
});

describe("an upload cut short by a crash of the API process", () => {
  // The API process kills itself (SIGKILL) at a named point of the upload
  // (engine/orchestrator/crash-points.ts); the other API process then serves the function.
  for (const point of ["package-after-bundle", "package-after-version"] as const) {
    it(`leaves no version without its bundle (killed at ${point})`, async () => {
      const name = `cut-${point === "package-after-bundle" ? "a" : "b"}`;
      const file = join(dir, `${name}.ts`);
      writeFileSync(
        file,
        `import { defineFunction } from ${JSON.stringify(sdk)};
export default defineFunction({ name: ${JSON.stringify(name)}, handler: () => ({ ok: ${JSON.stringify(name)} }) });
`,
      );
      const crashing = await startApi(`engine+api (crash at ${point})`, { BATON_TEST_CRASH_AT: point });
      const cut = await cli(["function", "deploy", file], crashing.url);
      expect(cut.code).not.toBe(0);
      expect((await crashing.api.waitForExit(30_000)).signal).toBe("SIGKILL");
      // No head was moved: the function is not deployed yet.
      expect((await getFunction(name)).status).toBe(404);

      const again = await cli(["function", "deploy", file]);
      expect(again.code).toBe(0);
      const version = point === "package-after-bundle" ? 1 : 2;
      expect(again.stdout).toMatch(new RegExp(`^${name} version ${version} \\(created\\)`, "m"));
      const fn = (await getFunction(name)).body;
      expect(fn.versions.map((entry) => entry.version)).toEqual(
        point === "package-after-bundle" ? [1] : [1, 2],
      );
      // Every version listed can be served: a worker loads each one (its bundle is there).
      for (const entry of fn.versions) {
        const worker = spawnProcess(
          process.execPath,
          [baton, "worker", "--package", `${name}@${entry.version}`],
          {
            name: `worker ${name}@${entry.version}`,
            // A cache of this test's own: the bundle must come from JetStream, not an earlier run.
            env: { NATS_URL: server().url, BATON_PACKAGE_CACHE: join(dir, `cache-${point}`) },
          },
        );
        await worker.waitForLine(/"msg":"serving"/, { timeoutMs: 60_000 });
        await worker.kill("SIGTERM");
      }
    });
  }
});

describe("baton apply with a project file", () => {
  const project = join(dir, "project");
  const applyIn = async (cwd: string) => {
    const child = spawnProcess(process.execPath, [baton, "apply"], {
      name: "baton apply",
      cwd,
      env: { BATON_URL: apiUrl, BATON_TOKEN: undefined },
    });
    const exit = await child.waitForExit(120_000);
    return { code: exit.code, stdout: child.stdout(), stderr: child.stderr() };
  };

  it("checks everything before changing anything, deploys it all, and changes nothing the second time", async () => {
    mkdirSync(join(project, "workflows"), { recursive: true });
    symlinkSync(join(root, "node_modules"), join(project, "node_modules"));
    writeFileSync(
      join(project, "shout.ts"),
      `import { defineFunction } from ${JSON.stringify(sdk)};
export const shout = defineFunction({ name: "shout", handler: (input: { text: string }) => input.text.toUpperCase() });
export const whisper = defineFunction({ name: "whisper", handler: (input: { text: string }) => input.text.toLowerCase() });
`,
    );
    writeFileSync(
      join(project, "baton.yaml"),
      `baton: project/v1
functions:
  - module: shout.ts
    scale: { maxScale: 2, idle: 1m }
workflows:
  - workflows/
`,
    );
    writeFileSync(
      join(project, "workflows/shout-it.yaml"),
      "baton: v1\nname: shout-it\nsteps:\n  - name: a\n    call: shout\n    with: { text: hi }\n",
    );
    writeFileSync(
      join(project, "workflows/broken.yaml"),
      "baton: v1\nname: broken-one\nsteps:\n  - name: a\n    call: shout\n    next: nowhere\n",
    );

    // One broken workflow: every problem printed, nothing deployed.
    const refused = await applyIn(project);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/broken\.yaml:6:11 UnknownStep steps\[0\]\.next/);
    expect(refused.stderr).toMatch(/nothing was deployed/);
    expect((await getFunction("shout")).status).toBe(404);
    expect((await getFunction("whisper")).status).toBe(404);
    expect((await fetch(`${apiUrl}/v1/workflows/shout-it`)).status).toBe(404);

    rmSync(join(project, "workflows/broken.yaml"));
    const first = await applyIn(project);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/shout\.ts: function shout version 1 \(created\)/);
    expect(first.stdout).toMatch(/shout\.ts: function whisper version 1 \(created\)/);
    expect(first.stdout).toMatch(/shout-it\.yaml: shout-it revision 1 \(created\)/);
    expect((await getFunction("shout")).body).toMatchObject({
      version: 1,
      scale: { minScale: 0, maxScale: 2, concurrency: 16, idle: "1m" },
    });

    const second = await applyIn(project);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/function shout version 1 \(unchanged, not uploaded\)/);
    expect(second.stdout).toMatch(/function whisper version 1 \(unchanged, not uploaded\)/);
    expect(second.stdout).toMatch(/shout-it revision 1 \(applied\)/);
    expect((await getFunction("shout")).body.versions).toHaveLength(1);
  });
});
