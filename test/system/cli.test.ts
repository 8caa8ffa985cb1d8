/**
 * The API commands of the `baton` CLI (apply, run, get, logs, ls, signal, cancel, retry) as a
 * user runs them: real processes for the engine with its HTTP API (engine/api/run-api.ts, with a
 * token) and a worker (`baton worker functions/examples.ts`) on a real nats-server, and the CLI
 * spawned for every command. Checks what it prints and its exit codes.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../engine/cli/main.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess, type TestProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const baton = join(root, "bin/baton.mjs");
const server = useNatsServer();
const token = "cli-test-token-0123456789abcdef";
const dir = mkdtempSync(join(tmpdir(), "baton-cli-"));
let apiUrl: string;

const files = {
  "cli-hello.yaml": `baton: v1
name: cli-hello
input:
  type: object
  required: [name]
  properties: { name: { type: string } }
steps:
  - name: greet
    call: echo
    with:
      text: hello, \${ $input.name }
  - name: sum
    call: add
    with: { a: 20, b: 22 }
  - name: done
    return:
      text: \${ $steps.greet.output.text }
      sum: \${ $steps.sum.output }
`,
  "cli-fails.yaml": `baton: v1
name: cli-fails
steps:
  - name: first
    call: echo
    with: { ok: true }
  - name: boom
    call: fail-with
    with: { code: Broken, message: it broke }
`,
  "cli-approval.yaml": `baton: v1
name: cli-approval
steps:
  - name: approval
    receive:
      signal: approve
      timeout: 1h
  - name: done
    return:
      by: \${ $steps.approval.output.by }
`,
};

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function startCli(args: readonly string[], env: Record<string, string | undefined> = {}): TestProcess {
  return spawnProcess(process.execPath, [baton, ...args], {
    name: `baton ${args[0] ?? ""}`,
    env: { BATON_URL: apiUrl, BATON_TOKEN: token, ...env },
  });
}

async function cli(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
): Promise<CliResult> {
  const child = startCli(args, env);
  const exit = await child.waitForExit(30_000);
  return { code: exit.code, stdout: child.stdout(), stderr: child.stderr() };
}

beforeAll(async () => {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  writeFileSync(join(dir, "input.json"), JSON.stringify({ name: "from-a-file" }));
  writeFileSync(
    join(dir, "broken.yml"),
    "baton: v1\nname: cli-broken\nsteps:\n  - name: a\n    call: echo\n    next: nowhere\n",
  );
  const env = {
    NATS_URL: server().url,
    BATON_LISTEN: "127.0.0.1:0",
    BATON_API_TOKENS: token,
    BATON_LOG_LEVEL: "warn",
  };
  const api = spawnProcess(process.execPath, ["--import", "tsx", join(root, "engine/api/run-api.ts")], {
    name: "engine+api",
    cwd: root,
    env,
  });
  const worker = spawnProcess(process.execPath, [baton, "worker", join(root, "functions/examples.ts")], {
    name: "worker",
    env: { ...env, BATON_LOG_LEVEL: "info" },
  });
  const [listening] = await Promise.all([
    api.waitForLine(/"message":"api listening".*"url":"(http:\/\/[^"]+)"/, { timeoutMs: 40_000 }),
    worker.waitForLine(/"msg":"serving"/, { timeoutMs: 40_000 }),
  ]);
  apiUrl = listening[1]!;
});

afterAll(async () => {
  await killAllProcesses();
  rmSync(dir, { recursive: true, force: true });
});

describe("baton apply", () => {
  it("submits every workflow file of a directory, and says what it stored", async () => {
    const result = await cli(["apply", "-f", join(dir, "cli-hello.yaml"), "-f", join(dir, "cli-fails.yaml")]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("cli-hello.yaml: cli-hello revision 1 (created)");
    expect(result.stdout).toContain("cli-fails.yaml: cli-fails revision 1 (created)");

    // A directory: every *.yaml and *.yml in it; the broken one is refused, the others applied.
    const again = await cli(["apply", "-f", dir]);
    expect(again.code).toBe(1);
    expect(again.stdout).toContain("cli-hello.yaml: cli-hello revision 1 (applied)");
    expect(again.stdout).toContain("cli-approval.yaml: cli-approval revision 1 (created)");
    expect(again.stdout).toContain(
      `${join(dir, "broken.yml")}:6:11 UnknownStep steps[0].next: no step named "nowhere" in this list`,
    );
    expect(again.stderr).toMatch(/broken\.yml refused/);
  });

  it("refuses a missing file and a call without -f", async () => {
    const missing = await cli(["apply", "-f", join(dir, "nope.yaml")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("no such file or directory");
    const noFlag = await cli(["apply", join(dir, "cli-hello.yaml")]);
    expect(noFlag.code).toBe(2);
    expect(noFlag.stderr).toContain("name files with -f");
  });
});

describe("baton run", () => {
  it("--wait streams the events and prints the output as JSON (exit 0)", async () => {
    const result = await cli(["run", "cli-hello", "--input", '{"name":"ana"}', "--wait"]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ text: "hello, ana", sum: 42 });
    const lines = result.stderr.split("\n");
    expect(lines[0]).toMatch(/^baton run: started cli-hello: [A-Za-z0-9_-]+$/);
    expect(lines.some((line) => /#1\s+ExecutionStarted/.test(line))).toBe(true);
    expect(lines.some((line) => /AttemptSucceeded\s+greet\s+attempt 1\s+on /.test(line))).toBe(true);
    expect(lines.some((line) => /ExecutionSucceeded/.test(line))).toBe(true);
  });

  it("--wait prints the error of a failing workflow (exit 1)", async () => {
    const result = await cli(["run", "cli-fails", "--wait"]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/AttemptFailed\s+boom\s+attempt 1 .*Broken: it broke/);
    expect(result.stderr).toMatch(/baton run: execution \S+ failed: Broken: it broke$/);
  });

  it("takes the input from a file, and an idempotency key", async () => {
    const args = ["run", "cli-hello", "--input", `@${join(dir, "input.json")}`, "--idempotency-key", "k-1"];
    const first = await cli(args);
    expect(first.code).toBe(0);
    const id = first.stdout.trim();
    expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(first.stderr).toContain(`baton logs ${id} --follow`);
    const second = await cli(args);
    expect(second.stdout.trim()).toBe(id);
    const got = await cli(["get", id, "--json"]);
    expect(JSON.parse(got.stdout)).toMatchObject({ id, input: { name: "from-a-file" } });
  });

  it("says what is wrong with bad input", async () => {
    const notJson = await cli(["run", "cli-hello", "--input", "{name"]);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain("--input is not valid JSON");
    const noFile = await cli(["run", "cli-hello", "--input", `@${join(dir, "missing.json")}`]);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain("--input: cannot read");
    const invalid = await cli(["run", "cli-hello", "--input", '{"name":7}']);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain("baton run: InputInvalid:");
    expect(invalid.stderr).toContain("/name");
    const unknown = await cli(["run", "cli-nope"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('WorkflowNotFound: no workflow named "cli-nope"');
    const noName = await cli(["run"]);
    expect(noName.code).toBe(2);
    expect(noName.stderr).toContain("name the workflow to run");
    const unknownOption = await cli(["run", "cli-hello", "--wiat"]);
    expect(unknownOption.code).toBe(2);
  });
});

describe("inspecting and acting", () => {
  it("get, logs and ls show an execution", async () => {
    const id = (await cli(["run", "cli-hello", "--input", '{"name":"kim"}'])).stdout.trim();
    const followed = await cli(["logs", id, "--follow"]);
    expect(followed.code).toBe(0);
    expect(followed.stdout.trim().split("\n").at(-1)).toMatch(/ExecutionSucceeded/);

    const got = await cli(["get", id]);
    expect(got.code).toBe(0);
    expect(got.stdout).toContain(`id:        ${id}`);
    expect(got.stdout).toContain("workflow:  cli-hello (revision 1)");
    expect(got.stdout).toContain("status:    succeeded");
    expect(got.stdout).toContain('output:    {"text":"hello, kim","sum":42}');
    expect(got.stdout).toMatch(/greet\s+succeeded\s+1 attempt/);

    const logs = await cli(["logs", id, "--json"]);
    const events = logs.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { seq: number; type: string });
    expect(events[0]?.type).toBe("ExecutionStarted");
    expect(events.at(-1)?.type).toBe("ExecutionSucceeded");
    expect((await cli(["logs", id])).stdout).toBe(followed.stdout);

    const listed = await cli(["ls", "--workflow", "cli-hello", "--status", "succeeded"]);
    expect(listed.code).toBe(0);
    expect(listed.stdout.split("\n")[0]).toMatch(/^ID\s+WORKFLOW\s+STATUS\s+STARTED\s+ENDED$/);
    expect(listed.stdout.split("\n")[1]).toMatch(new RegExp(`^${id}\\s+cli-hello\\s+succeeded\\s`));

    const badStatus = await cli(["ls", "--status", "done"]);
    expect(badStatus.code).toBe(2);
    expect(badStatus.stderr).toContain('--status "done" is not a status');

    const missing = await cli(["get", "no-such-execution"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ExecutionNotFound: no execution has the id "no-such-execution"');
  });

  it("signal delivers data to a waiting execution; a signal to an ended one is refused", async () => {
    const id = (await cli(["run", "cli-approval"])).stdout.trim();
    const follower = startCli(["logs", id, "--follow"]);
    await follower.waitForLine(/#1\s+ExecutionStarted/);
    const signalled = await cli(["signal", id, "approve", "--data", '{"by":"sam"}']);
    expect(signalled.code).toBe(0);
    expect(signalled.stdout).toBe(`signal approve delivered to ${id}`);
    const exit = await follower.waitForExit(30_000);
    expect(exit.code).toBe(0);
    expect(follower.stdout()).toMatch(/SignalReceived\s+approval/);
    expect(follower.stdout()).toMatch(/ExecutionSucceeded/);
    expect((await cli(["get", id, "--json"])).stdout).toContain('"by": "sam"');

    const late = await cli(["signal", id, "approve"]);
    expect(late.code).toBe(1);
    expect(late.stderr).toContain("ExecutionEnded");
  });

  it("cancel ends a waiting execution", async () => {
    const id = (await cli(["run", "cli-approval"])).stdout.trim();
    const cancelled = await cli(["cancel", id]);
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toBe(`cancel requested for ${id}`);
    await cli(["logs", id, "--follow"]);
    expect((await cli(["get", id])).stdout).toContain("status:    cancelled");
    const again = await cli(["cancel", id]);
    expect(again.code).toBe(1);
  });

  it("retry re-runs a failed execution from the step that failed", async () => {
    const run = await cli(["run", "cli-fails", "--wait"]);
    const id = /started cli-fails: (\S+)/.exec(run.stderr)![1]!;
    const before = (await cli(["logs", id, "--json"])).stdout.trim().split("\n").length;
    const retried = await cli(["retry", id]);
    expect(retried.code).toBe(0);
    expect(retried.stdout).toBe(`retry requested for ${id}`);
    const followed = await cli(["logs", id, "--follow", "--json"]);
    const after = followed.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { type: string; step?: string })
      .slice(before);
    expect(after.at(-1)?.type).toBe("ExecutionFailed");
    expect(after.filter((event) => event.type === "AttemptStarted").map((event) => event.step)).toEqual([
      "boom",
    ]);
  });
});

describe("talking to the API", () => {
  it("tells the user to start the engine when nothing listens (exit 2)", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const result = await cli(["ls"], { BATON_URL: url });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`cannot reach the Baton API at ${url}: connection refused`);
    expect(result.stderr).toContain('Is the engine running? Start it with "npm run dev"');
  });

  it("says so when the token is refused (exit 2)", async () => {
    const result = await cli(["ls"], { BATON_TOKEN: "wrong-token-0123456789" });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("Unauthorized");
    expect(result.stderr).toContain("Set BATON_TOKEN");
  });

  it("documents the exit codes in each command's usage", async () => {
    // Pure text: asked of the CLI in this process rather than of eight more processes.
    for (const command of ["apply", "run", "get", "logs", "ls", "cancel", "signal", "retry"]) {
      let stdout = "";
      const code = await main([command, "--help"], {
        stdout: (text) => (stdout += text),
        stderr: () => undefined,
      });
      expect(code).toBe(0);
      expect(stdout).toContain(`Usage: baton ${command}`);
      expect(stdout).toContain("Exit codes:");
      expect(stdout).toContain("BATON_URL");
    }
  });
});

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
