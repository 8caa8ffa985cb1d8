/**
 * The conformance suite: every example in workflows/ is loaded, validated, compiled and run for
 * each of its cases through the orchestrator's own pure core (`startExecution`, `applyEvent` and
 * the events its commands and timers turn into), with scripted functions on a simulated clock
 * (test/helpers/simulator.ts), and must end as its `<name>.expected.json` says.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { validateWorkflowText } from "../../engine/workflow/validate.ts";
import { compileWorkflow, type CompiledWorkflow } from "../../engine/workflow/compile/compile-workflow.ts";
import { durationMs } from "../../engine/workflow/duration.ts";
import { simulate, type SimulationCase } from "../helpers/simulator.ts";

const root = join(import.meta.dirname, "../../workflows");

interface ExpectedCase extends SimulationCase {
  name: string;
  expect: {
    status: string;
    output?: unknown;
    error?: Record<string, unknown>;
    trace?: string[];
    attempts?: Record<string, number>;
    calls?: Record<string, number>;
    emitted?: { subject: string; data: unknown }[];
    elapsed?: string;
    maxInFlight?: Record<string, number>;
  };
}

const examples = readdirSync(root)
  .filter((file) => file.endsWith(".yaml"))
  .sort();

function loadExample(file: string): { main: string; workflows: Map<string, CompiledWorkflow> } {
  const { workflows: definitions, problems } = validateWorkflowText(readFileSync(join(root, file), "utf8"));
  expect(problems).toEqual([]);
  const workflows = new Map<string, CompiledWorkflow>();
  for (const definition of definitions) workflows.set(definition.name, compileWorkflow(definition));
  return { main: definitions[0]!.name, workflows };
}

it("has at least 25 examples, each with its expectations", () => {
  expect(examples.length).toBeGreaterThanOrEqual(25);
  for (const file of examples) {
    expect(readdirSync(root), `${file} has no .expected.json`).toContain(
      file.replace(/\.yaml$/, ".expected.json"),
    );
  }
});

describe.each(examples)("%s", (file) => {
  const expected = JSON.parse(
    readFileSync(join(root, file.replace(/\.yaml$/, ".expected.json")), "utf8"),
  ) as {
    cases: ExpectedCase[];
  };
  const { main, workflows } = loadExample(file);

  it.each(expected.cases.map((testCase) => [testCase.name, testCase] as const))("%s", (_name, testCase) => {
    const result = simulate(workflows, main, testCase);
    const want = testCase.expect;
    const got: Record<string, unknown> = { status: result.status };
    const wanted: Record<string, unknown> = { status: want.status };
    if (want.output !== undefined) {
      got.output = result.output;
      wanted.output = want.output;
    }
    if (want.error !== undefined) {
      got.error = result.error;
      wanted.error = expect.objectContaining(want.error);
    }
    if (want.trace !== undefined) {
      got.trace = result.trace;
      wanted.trace = want.trace;
    }
    if (want.attempts !== undefined) {
      got.attempts = Object.fromEntries(
        Object.keys(want.attempts).map((step) => [step, result.attempts[step]]),
      );
      wanted.attempts = want.attempts;
    }
    if (want.calls !== undefined) {
      got.calls = Object.fromEntries(Object.keys(want.calls).map((fn) => [fn, result.calls[fn] ?? 0]));
      wanted.calls = want.calls;
    }
    if (want.emitted !== undefined) {
      got.emitted = result.emitted;
      wanted.emitted = want.emitted;
    }
    if (want.elapsed !== undefined) {
      got.elapsedMs = result.elapsedMs;
      wanted.elapsedMs = durationMs(want.elapsed);
    }
    if (want.maxInFlight !== undefined) {
      got.maxInFlight = Object.fromEntries(
        Object.keys(want.maxInFlight).map((fn) => [fn, result.maxInFlight[fn] ?? 0]),
      );
      wanted.maxInFlight = want.maxInFlight;
    }
    expect(got).toEqual(wanted);
  });
});
