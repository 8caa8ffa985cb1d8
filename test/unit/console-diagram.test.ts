/** The console's workflow diagram source (engine/api/ui/app/diagram-source.ts), from real example workflows. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { workflowDiagram, type WorkflowLike } from "../../engine/api/ui/app/diagram-source.ts";
import { validateWorkflowText } from "../../engine/workflow/validate.ts";

const load = (file: string): WorkflowLike => {
  const { workflows, problems } = validateWorkflowText(
    readFileSync(new URL(`../../workflows/${file}`, import.meta.url), "utf8"),
  );
  expect(problems).toEqual([]);
  return workflows[0] as unknown as WorkflowLike;
};

describe("workflowDiagram", () => {
  it("draws a sequence from start to end, one node per step", () => {
    const text = workflowDiagram(load("train-model.yaml"));
    expect(text.split("\n")[0]).toBe("flowchart TD");
    expect(text).toContain('s1["prepare\nset"]');
    expect(text).toContain('s2["train\ncall train-model"]');
    expect(text).toContain("start --> s1");
    expect(text).toContain("s1 --> s2");
    expect(text).toContain("s3 --> done");
  });

  it("draws switch branches, parallel branches between fork and join, and map bodies", () => {
    const switched = workflowDiagram(load("switch-inline-steps.yaml"));
    expect(switched).toMatch(/s\d+\{"[^"]+"\}/);
    expect(switched).toMatch(/-- "[^"]+" -->/);
    const parallel = workflowDiagram(load("parallel-run-all.yaml"));
    expect(parallel).toContain("subgraph");
    expect(parallel).toMatch(/_join\["join"\]/);
    const mapped = workflowDiagram(load("map-concurrency.yaml"));
    expect(mapped).toContain("for each item");
  });
});
