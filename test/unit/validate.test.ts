/**
 * Validation: each rule of the language gives its code at the right path, line and column;
 * every problem of a document is reported at once, sorted, once each; valid documents give
 * their definition.
 */
import { describe, expect, it } from "vitest";
import type { Problem } from "../../engine/errors.ts";
import { validateWorkflowText, validateWorkflowValue } from "../../engine/workflow/validate.ts";

/** Text written indented inside the test, without its common indentation and first newline. */
function text(source: string): string {
  const lines = source.replace(/^\n/, "").split("\n");
  const indent = Math.min(
    ...lines.filter((line) => line.trim() !== "").map((line) => /^ */.exec(line)![0].length),
  );
  return lines.map((line) => line.slice(indent)).join("\n");
}

/** A problem as the tables write it: code, path, line, column. */
type Expected = [code: Problem["code"], path: string, line: number, column: number];

function found(source: string): Expected[] {
  return validateWorkflowText(text(source)).problems.map((p) => [p.code, p.path, p.line, p.column]);
}

function messages(source: string): string[] {
  return validateWorkflowText(text(source)).problems.map((p) => p.message);
}

/** The example of the language's design document. */
const designExample = text(`
  baton: v1
  name: pr-thumbnails
  description: Render thumbnails for every image pushed to main.
  input:                      # JSON Schema (draft 2020-12) for the execution input
    type: object
    required: [repo, images]
    properties:
      repo: { type: string }
      images: { type: array, items: { type: string } }
  timeout: 10m                # the whole execution
  triggers:
    - github:
        events: [push]
        when: \${ $event.ref = "refs/heads/main" }
        input:
          repo: \${ $event.repository.full_name }
          images: \${ [$event.commits.added[$contains($, ".png")]] }
  steps:
    - name: fetch
      call: fetch-images              # a function served by some worker
      with:
        urls: \${ $input.images }
      retry: { attempts: 5, delay: 200ms, backoff: exponential, maxDelay: 10s, jitter: true }
      timeout: 30s
    - name: kind
      switch:
        - when: \${ $count($steps.fetch.output.images) = 0 }
          next: nothing-to-do
        - default: true
          next: thumbnails
    - name: thumbnails
      map:
        items: \${ $steps.fetch.output.images }
        concurrency: 8
        steps:
          - name: resize
            call: thumbnail
            with:
              image: \${ $item }
              width: 256
    - name: store
      call: store-object
      effect: true                    # changes the world: isolated, idempotent, tracked
      with:
        objects: \${ $steps.thumbnails.output }
      catch:
        - errors: [QuotaExceeded]
          next: notify-quota
    - name: done
      return:
        stored: \${ $count($steps.thumbnails.output) }
    - name: nothing-to-do
      return: { stored: 0 }
    - name: notify-quota
      emit:
        subject: alerts.quota
        data:
          repo: \${ $input.repo }
`);

describe("valid documents", () => {
  it("accepts the example of the language's design, and gives its definition", () => {
    const result = validateWorkflowText(designExample);
    expect(result.problems).toEqual([]);
    expect(result.workflows).toHaveLength(1);
    expect(result.workflows[0]).toMatchObject({ baton: "v1", name: "pr-thumbnails", timeout: "10m" });
    expect(result.workflows[0]!.steps.map((step) => step.name)).toEqual([
      "fetch",
      "kind",
      "thumbnails",
      "store",
      "done",
      "nothing-to-do",
      "notify-quota",
    ]);
    expect(result.documents).toEqual([{ definition: result.workflows[0], problems: [] }]);
  });

  it.each([
    [
      "every step kind",
      "- { name: a, call: f, with: { x: 1 }, effect: true, retry: { attempts: 1, delay: 0s } }\n- { name: b, workflow: child, with: [] }\n- { name: c, set: { total: 1, _x: '${ $vars.total }' } }\n- { name: d, return: null }\n- { name: e, fail: { error: Unsupported, message: 'no ${ $input.kind }' } }\n- { name: f, wait: 0s }\n- { name: g, wait: { until: '2026-01-01T09:00:00Z' } }\n- { name: h, wait: { until: '${ $input.at }' } }\n- { name: i, receive: { signal: approve, timeout: 2d } }\n- { name: j, receive: { subject: 'orders.${ $input.id }.paid', match: '${ $event.ok }' } }\n- { name: k, emit: { subject: 'images.${ $input.kind }' } }",
    ],
    [
      "nested lists",
      "- name: p\n  parallel:\n    failFast: false\n    branches:\n      left: [{ name: a, call: fa, next: a }]\n      right: [{ name: b, call: fb }]\n- name: m\n  map: { items: [1, 2], concurrency: 1, tolerate: 0, steps: [{ name: c, return: '${ $item }' }] }\n- name: s\n  switch:\n    - { when: '${ true }', steps: [{ name: d, call: g, next: e }, { name: e, return: 1 }] }\n    - { default: true, next: p }",
    ],
    [
      "loops and catches",
      "- { name: a, call: f, next: a, catch: [{ errors: [Timeout], next: b }, { next: a }] }\n- { name: b, return: 1, if: '${ $input.x }', timeout: 5m, output: '${ $result }' }",
    ],
  ])("accepts %s", (_what, steps) => {
    const source = `baton: v1\nname: ok\nsteps:\n${steps.replace(/^/gm, "  ")}\n`;
    expect(validateWorkflowText(source).problems).toEqual([]);
  });

  it("accepts every trigger source", () => {
    const source = text(`
      baton: v1
      name: triggered
      triggers:
        - github: { events: [push, pull_request], repository: acme/site, when: "\${ true }", input: { a: "\${ $event.x }" } }
        - schedule: { cron: "*/5 * * * *", timezone: Europe/Berlin, catchUp: all }
        - schedule: { cron: "0 */5 * * * *" }
        - queue: { subject: "images.*.uploaded.>" }
        - infra: { events: [node.joined, node.left, function.available, function.unavailable] }
      steps:
        - { name: a, return: 1 }
    `);
    expect(validateWorkflowText(source).problems).toEqual([]);
  });

  it("accepts a JSON text, and a JSON value without positions", () => {
    const value = { baton: "v1", name: "json", steps: [{ name: "a", call: "f" }] };
    expect(validateWorkflowText(JSON.stringify(value)).problems).toEqual([]);
    expect(validateWorkflowValue(value)).toEqual({ definition: value, problems: [] });
  });
});

describe("rules", () => {
  const cases: [rule: string, source: string, expected: Expected[]][] = [
    ["YAML syntax", "baton: v1\nname: [x\nsteps: []\n", [["YamlSyntax", "(document)", 3, 1]]],
    ["a document that is not a mapping", "- baton: v1\n", [["NotAMapping", "(document)", 1, 1]]],
    ["a text with no document", "# nothing here\n", [["NotAMapping", "(document)", 1, 1]]],
    [
      "baton is not v1",
      "baton: v2\nname: x\nsteps: [{ name: a, call: f }]\n",
      [["UnsupportedVersion", "baton", 1, 8]],
    ],
    [
      "missing document fields: at the mapping",
      "# comment\ndescription: no name\n",
      [
        ["MissingField", "baton", 2, 1],
        ["MissingField", "name", 2, 1],
        ["MissingField", "steps", 2, 1],
      ],
    ],
    [
      "missing fields inside steps",
      "baton: v1\nname: x\nsteps:\n  - call: f\n  - name: e\n    emit: { data: 1 }\n",
      [
        ["MissingField", "steps[0].name", 4, 5],
        ["MissingField", "steps[1].emit.subject", 6, 11],
      ],
    ],
    [
      "unknown fields: at the key",
      "baton: v1\nname: x\ndescripton: d\nsteps:\n  - name: a\n    call: f\n    wiht: {}\n    retry: { atempts: 2 }\n",
      [
        ["UnknownField", "descripton", 3, 1],
        ["UnknownField", "steps[0].wiht", 7, 5],
        ["UnknownField", "steps[0].retry.atempts", 8, 14],
      ],
    ],
    [
      "wrong types: at the value",
      "baton: v1\nname: x\ntriggers: {}\nsteps:\n  - name: a\n    call: f\n    effect: yes\n  - 42\n",
      [
        ["WrongType", "triggers", 3, 11],
        ["WrongType", "steps[0].effect", 7, 13],
        ["WrongType", "steps[1]", 8, 5],
      ],
    ],
    [
      "invalid values: names, ranges, enums, empty lists, keys",
      text(`
        baton: v1
        name: My_Flow
        retry: { attempts: 0, backoff: fast }
        steps:
          - name: Fetch
            call: Thumbnail
          - name: m
            map: { items: [], concurrency: 0, tolerate: -1, steps: [] }
          - name: p
            parallel: { branches: { Left: [{ name: a, call: f }] } }
          - name: s
            set: { bad-name: 1 }
      `),
      [
        ["InvalidValue", "name", 2, 7],
        ["InvalidValue", "retry.attempts", 3, 20],
        ["InvalidValue", "retry.backoff", 3, 32],
        ["InvalidValue", "steps[0].name", 5, 11],
        ["InvalidValue", "steps[0].call", 6, 11],
        ["InvalidValue", "steps[1].map.concurrency", 8, 36],
        ["InvalidValue", "steps[1].map.tolerate", 8, 49],
        ["InvalidValue", "steps[1].map.steps", 8, 60],
        ["InvalidValue", "steps[2].parallel.branches.Left", 10, 29],
        ["InvalidValue", "steps[3].set.bad-name", 12, 12],
      ],
    ],
    [
      "a step with no kind: at the step, and its unknown fields",
      "baton: v1\nname: x\nsteps:\n  - name: a\n    cal: f\n    with: {}\n",
      [
        ["StepKindMissing", "steps[0]", 4, 5],
        ["UnknownField", "steps[0].cal", 5, 5],
      ],
    ],
    [
      "a step with two kinds: at the second kind key",
      "baton: v1\nname: x\nsteps:\n  - name: a\n    call: f\n    with: {}\n    emit: { subject: a.b }\n",
      [["StepKindConflict", "steps[0].emit", 7, 5]],
    ],
    [
      "duplicate step names across nested lists: at the later name",
      text(`
        baton: v1
        name: x
        steps:
          - name: a
            call: f
          - name: m
            map:
              items: [1]
              steps:
                - name: a
                  call: g
          - name: s
            switch:
              - default: true
                steps: [{ name: m, return: 1 }]
          - name: p
            parallel: { branches: { one: [{ name: s, call: h }] } }
      `),
      [
        ["DuplicateStep", "steps[1].map.steps[0].name", 10, 17],
        ["DuplicateStep", "steps[2].switch[0].steps[0].name", 15, 25],
        ["DuplicateStep", "steps[3].parallel.branches.one[0].name", 17, 43],
      ],
    ],
    [
      "next targets in the same list: at the next value",
      text(`
        baton: v1
        name: x
        steps:
          - name: a
            call: f
            next: c
            catch: [{ next: notify-quta }]
          - name: s
            switch:
              - { when: "\${ true }", next: nowhere }
              - { default: true, steps: [{ name: inner, return: 1, next: a }] }
          - name: notify-quota
            return: 1
      `),
      [
        ["UnknownStep", "steps[0].next", 6, 11],
        ["UnknownStep", "steps[0].catch[0].next", 7, 21],
        ["UnknownStep", "steps[1].switch[0].next", 10, 36],
        ["UnknownStep", "steps[1].switch[1].steps[0].next", 11, 66],
      ],
    ],
    [
      "switch branches",
      text(`
        baton: v1
        name: x
        steps:
          - name: s
            switch:
              - default: true
                next: t
              - when: \${ 1 }
                next: t
                steps: [{ name: u, return: 1 }]
              - next: t
              - when: \${ 2 }
                default: true
                next: t
              - {}
          - name: t
            return: 1
      `),
      [
        ["InvalidSwitchBranch", "steps[0].switch[0].default", 6, 9],
        ["InvalidSwitchBranch", "steps[0].switch[1].steps", 10, 9],
        ["InvalidSwitchBranch", "steps[0].switch[2]", 11, 9],
        ["InvalidSwitchBranch", "steps[0].switch[3].default", 13, 9],
        ["InvalidSwitchBranch", "steps[0].switch[4]", 15, 9],
      ],
    ],
    [
      "receive: a signal or a subject",
      "baton: v1\nname: x\nsteps:\n  - name: a\n    receive: { signal: go, subject: a.b }\n  - name: b\n    receive: { timeout: 1m }\n",
      [
        ["InvalidReceive", "steps[0].receive.subject", 5, 28],
        ["InvalidReceive", "steps[1].receive", 7, 14],
      ],
    ],
    [
      "durations",
      text(`
        baton: v1
        name: x
        timeout: 0s
        retry: { delay: 5 sec, maxDelay: 0m }
        steps:
          - name: a
            call: f
            timeout: 30
          - name: b
            wait: 10 minutes
          - name: c
            receive: { signal: go, timeout: 0ms }
          - name: d
            wait: 5
      `),
      [
        ["InvalidDuration", "timeout", 3, 10],
        ["InvalidDuration", "retry.delay", 4, 17],
        ["InvalidDuration", "retry.maxDelay", 4, 34],
        ["InvalidDuration", "steps[0].timeout", 8, 14],
        ["InvalidDuration", "steps[1].wait", 10, 11],
        ["InvalidDuration", "steps[2].receive.timeout", 12, 37],
        ["InvalidDuration", "steps[3].wait", 14, 11],
      ],
    ],
    [
      "wait until: an ISO time or an expression",
      "baton: v1\nname: x\nsteps:\n  - name: a\n    wait: { until: tomorrow }\n  - name: b\n    wait: { at: x }\n",
      [
        ["InvalidValue", "steps[0].wait.until", 5, 20],
        ["MissingField", "steps[1].wait.until", 7, 11],
        ["UnknownField", "steps[1].wait.at", 7, 13],
      ],
    ],
    [
      "cron and time zone",
      text(`
        baton: v1
        name: x
        triggers:
          - schedule: { cron: "61 * * * *", timezone: Mars/Olympus }
          - schedule: { cron: "0 0 9 * * MON 2026" }
          - schedule: { cron: "0 0 31 2 *" }
        steps: [{ name: a, return: 1 }]
      `),
      [
        ["InvalidCron", "triggers[0].schedule.cron", 4, 23],
        ["InvalidTimezone", "triggers[0].schedule.timezone", 4, 47],
        ["InvalidCron", "triggers[1].schedule.cron", 5, 23],
        ["InvalidCron", "triggers[2].schedule.cron", 6, 23],
      ],
    ],
    [
      "subjects",
      text(`
        baton: v1
        name: x
        triggers:
          - queue: { subject: "a..b" }
          - queue: { subject: "a.>.b" }
          - queue: { subject: "a.\${ $x }" }
          - queue: { subject: "a.b*" }
        steps:
          - { name: a, emit: { subject: "alerts.*" } }
          - { name: b, emit: { subject: "billing team.notify" } }
          - { name: c, receive: { subject: "orders.\${ $input.id }." } }
          - { name: d, emit: { subject: "" } }
      `),
      [
        ["InvalidSubject", "triggers[0].queue.subject", 4, 23],
        ["InvalidSubject", "triggers[1].queue.subject", 5, 23],
        ["InvalidSubject", "triggers[2].queue.subject", 6, 23],
        ["InvalidSubject", "triggers[3].queue.subject", 7, 23],
        ["InvalidSubject", "steps[0].emit.subject", 9, 33],
        ["InvalidSubject", "steps[1].emit.subject", 10, 33],
        ["InvalidSubject", "steps[2].receive.subject", 11, 36],
        ["InvalidSubject", "steps[3].emit.subject", 12, 33],
      ],
    ],
    [
      "subjects reserved for Baton and NATS",
      text(`
        baton: v1
        name: x
        triggers:
          - queue: { subject: "baton.events.>" }
          - queue: { subject: ">" }
          - queue: { subject: "*.created" }
          - queue: { subject: "orders.>" }
        steps:
          - { name: a, emit: { subject: "$JS.API.STREAM.PURGE.BATON_EVENTS" } }
          - { name: b, receive: { subject: "_INBOX.\${ $input.id }" } }
          - { name: c, emit: { subject: "baton.events.\${ $input.id }" } }
          - { name: d, emit: { subject: "\${ $input.subject }" } }
          - { name: e, emit: { subject: "batons.ok" } }
      `),
      [
        ["InvalidSubject", "triggers[0].queue.subject", 4, 23],
        ["InvalidSubject", "triggers[1].queue.subject", 5, 23],
        ["InvalidSubject", "triggers[2].queue.subject", 6, 23],
        ["InvalidSubject", "steps[0].emit.subject", 9, 33],
        ["InvalidSubject", "steps[1].receive.subject", 10, 36],
        ["InvalidSubject", "steps[2].emit.subject", 11, 33],
      ],
    ],
    [
      "triggers",
      text(`
        baton: v1
        name: x
        triggers:
          - github: { events: [] }
          - infra: { events: [node.joined, node.exploded] }
          - github: { events: [push] }
            queue: { subject: a }
          - cron: "* * * * *"
          - github: { events: [Push] }
        steps: [{ name: a, return: 1 }]
      `),
      [
        ["InvalidTrigger", "triggers[0].github.events", 4, 23],
        ["InvalidTrigger", "triggers[1].infra.events[1]", 5, 36],
        ["InvalidTrigger", "triggers[2].queue", 7, 5],
        ["InvalidTrigger", "triggers[3]", 8, 5],
        ["UnknownField", "triggers[3].cron", 8, 5],
        ["InvalidTrigger", "triggers[4].github.events[0]", 9, 24],
      ],
    ],
    [
      "expression syntax, at the exact character of single-line scalars",
      text(`
        baton: v1
        name: x
        output: \${ 1 + }
        triggers:
          - github: { events: [push], input: { a: "\${ ) }" } }
        steps:
          - name: a
            if: "\${ $x = = 1 }"
            call: f
            with:
              plain: \${ $count($input)) }
              quoted: "say \\"hi\\" \${ 1 + }"
              single: 'it''s \${ ) }'
              text: report for \${ $input. }
              block: |
                \${ 1 + }
            output: { x: "\${ }" }
          - { name: b, set: { v: "\${ ( }" } }
          - { name: c, return: [1, "\${ ] }"] }
          - { name: d, fail: { error: E, message: "no \${ ) }" } }
          - { name: e, emit: { subject: "a.\${ ) }", data: "\${ ) }" } }
          - { name: f, map: { items: "\${ ) }", steps: [{ name: g, return: 1 }] } }
          - { name: h, wait: { until: "\${ ) }" } }
          - { name: i, receive: { signal: s, match: "\${ ) }" } }
      `),
      [
        ["ExpressionSyntax", "output", 3, 15],
        ["ExpressionSyntax", "triggers[0].github.input.a", 5, 47],
        ["ExpressionSyntax", "steps[0].if", 8, 18],
        ["ExpressionSyntax", "steps[0].with.plain", 11, 31],
        ["ExpressionSyntax", "steps[0].with.quoted", 12, 33],
        ["ExpressionSyntax", "steps[0].with.single", 13, 25],
        ["ExpressionSyntax", "steps[0].with.text", 14, 34],
        ["ExpressionSyntax", "steps[0].with.block", 15, 14],
        ["ExpressionSyntax", "steps[0].output.x", 17, 19],
        ["ExpressionSyntax", "steps[1].set.v", 18, 31],
        ["ExpressionSyntax", "steps[2].return[1]", 19, 32],
        ["ExpressionSyntax", "steps[3].fail.message", 20, 50],
        ["ExpressionSyntax", "steps[4].emit.subject", 21, 39],
        ["ExpressionSyntax", "steps[4].emit.data", 21, 55],
        ["ExpressionSyntax", "steps[5].map.items", 22, 34],
        ["ExpressionSyntax", "steps[6].wait.until", 23, 35],
        ["ExpressionSyntax", "steps[7].receive.match", 24, 49],
      ],
    ],
    [
      "conditions must be whole expressions",
      text(`
        baton: v1
        name: x
        triggers:
          - github: { events: [push], when: $event.ok }
        steps:
          - name: a
            if: $input.go
            call: f
          - name: b
            if: true
            call: f
          - name: c
            if: "go \${ 1 }"
            switch:
              - { when: "x", next: a }
          - name: d
            receive: { signal: s, match: yes }
          - name: e
            map: { items: $input.list, steps: [{ name: f, return: 1 }] }
      `),
      [
        ["ExpressionExpected", "triggers[0].github.when", 4, 37],
        ["ExpressionExpected", "steps[0].if", 7, 9],
        ["ExpressionExpected", "steps[1].if", 10, 9],
        ["ExpressionExpected", "steps[2].if", 13, 9],
        ["ExpressionExpected", "steps[2].switch[0].when", 15, 17],
        ["ExpressionExpected", "steps[3].receive.match", 17, 34],
        ["ExpressionExpected", "steps[4].map.items", 19, 19],
      ],
    ],
    [
      "the input schema",
      text(`
        baton: v1
        name: x
        input:
          type: object
          required: repo
          properties:
            repo: { type: strin }
            n: { minimum: "1" }
        steps: [{ name: a, return: 1 }]
      `),
      [
        ["InvalidInputSchema", "input.required", 5, 13],
        ["InvalidInputSchema", "input.properties.repo.type", 7, 19],
        ["InvalidInputSchema", "input.properties.n.minimum", 8, 19],
      ],
    ],
    [
      "an input schema for another draft",
      'baton: v1\nname: x\ninput: { $schema: "http://json-schema.org/draft-07/schema#" }\nsteps: [{ name: a, return: 1 }]\n',
      [["InvalidInputSchema", "input.$schema", 3, 19]],
    ],
    [
      "an input schema that cannot be compiled",
      'baton: v1\nname: x\ninput: { $ref: "https://example.com/elsewhere.json" }\nsteps: [{ name: a, return: 1 }]\n',
      [["InvalidInputSchema", "input", 3, 8]],
    ],
    [
      "an input that is not a schema at all",
      "baton: v1\nname: x\ninput: [string]\nsteps: [{ name: a, return: 1 }]\n",
      [["WrongType", "input", 3, 8]],
    ],
  ];

  it.each(cases)("%s", (_rule, source, expected) => {
    expect(found(source)).toEqual(expected);
  });
});

describe("several documents", () => {
  const two = text(`
    baton: v1
    name: parent
    steps: [{ name: a, workflow: child }]
    ---
    baton: v1
    name: child
    steps: [{ name: a, return: 1 }]
  `);

  it("validates each document; step names are per workflow", () => {
    const result = validateWorkflowText(two);
    expect(result.problems).toEqual([]);
    expect(result.workflows.map((workflow) => workflow.name)).toEqual(["parent", "child"]);
  });

  it("reports a workflow name used twice, at the later name", () => {
    const source = `${two}---\nbaton: v1\nname: child\nsteps: [{ name: a, return: 2 }]\n`;
    const result = validateWorkflowText(source);
    expect(result.problems.map((p) => [p.code, p.path, p.line, p.column])).toEqual([
      ["DuplicateWorkflow", "name", 10, 7],
    ]);
    expect(result.problems[0]!.message).toContain("line 5");
  });

  it("gives no workflow when any document has a problem, and says which document has it", () => {
    const source = `${two}---\nbaton: v1\nname: third\nsteps: []\n`;
    const result = validateWorkflowText(source);
    expect(result.workflows).toEqual([]);
    expect(result.documents.map((document) => [document.definition?.name, document.problems.length])).toEqual(
      [
        ["parent", 0],
        ["child", 0],
        [undefined, 1],
      ],
    );
  });

  it("reports a YAML problem of one document and still checks the others", () => {
    const source = "baton: v1\nname: a\nsteps: [1\n---\nbaton: v1\nname: b\nsteps: []\n";
    expect(found(source)).toEqual([
      ["YamlSyntax", "(document)", 4, 1],
      ["InvalidValue", "steps", 7, 8],
    ]);
  });
});

describe("reporting", () => {
  const manyMistakes = text(`
    baton: v1
    name: pr-thumbnails
    timeout: 10 minutes
    input:
      type: object
      required: repo
    triggers:
      - github:
          events: [push]
          when: $event.ref = "refs/heads/main"
          input:
            repo: \${ $event.repository.full_name
    steps:
      - name: fetch
        call: fetch-images
        with:
          urls: \${ $input.images }
        retry: { attempts: 5, delay: 200ms, backof: exponential }
      - name: thumbnails
        map:
          items: \${ $steps.fetch.output.images }
          concurrency: 8
          steps:
            - name: resize
              call: thumbnail
              next: store
      - name: store
        call: store-object
        effect: true
        catch:
          - errors: [QuotaExceeded]
            next: notify-quta
      - name: notify-quota
        emit:
          subject: alerts..quota
  `);

  it("reports every mistake of a document at once, sorted by line and column", () => {
    expect(found(manyMistakes)).toEqual([
      ["InvalidDuration", "timeout", 3, 10],
      ["InvalidInputSchema", "input.required", 6, 13],
      ["ExpressionExpected", "triggers[0].github.when", 10, 13],
      ["ExpressionSyntax", "triggers[0].github.input.repo", 12, 15],
      ["UnknownField", "steps[0].retry.backof", 18, 41],
      ["UnknownStep", "steps[1].map.steps[0].next", 26, 17],
      ["UnknownStep", "steps[2].catch[0].next", 32, 15],
      ["InvalidSubject", "steps[3].emit.subject", 35, 16],
    ]);
  });

  it("reports each problem once", () => {
    const { problems } = validateWorkflowText(manyMistakes);
    const keys = problems.map((p) => `${p.code} ${p.path} ${p.line}:${p.column}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("writes messages that say what is wrong and how to fix it", () => {
    expect(messages(manyMistakes)).toEqual([
      expect.stringContaining('(did you mean "10m"?)'),
      expect.stringContaining("must be a list"),
      expect.stringContaining('write "${ $event.ref = "refs/heads/main" }"'),
      expect.stringContaining('add the closing "}"'),
      expect.stringContaining('has no field "backof" (did you mean "backoff"?)'),
      'no step named "store" in this list: "store" is at steps[2], and a jump stays in its own list',
      'no step named "notify-quta" in this list (did you mean "notify-quota"?)',
      expect.stringContaining("empty token"),
    ]);
  });

  it.each([
    [
      "a field of another kind",
      "- { name: s, switch: [{ default: true, next: s }], with: 1 }",
      /belongs to call or workflow steps/,
    ],
    [
      "a field indented one level too little",
      "- { name: m, map: { items: [], steps: [{ name: x, return: 1 }] }, concurrency: 2 }",
      /belongs inside "map"/,
    ],
    ["a kind typo", "- { name: a, cal: f }", /add one of call, switch, .* \(did you mean "call"\?\)/],
    [
      "a step name used twice",
      "- { name: a, return: 1 }\n- { name: a, return: 2 }",
      /"a" is already used at steps\[0\]/,
    ],
    [
      "an enum abbreviation",
      "- { name: a, call: f, retry: { backoff: expo } }",
      /did you mean "exponential"/,
    ],
  ])("names the node and suggests a fix: %s", (_what, steps, expected) => {
    const source = `baton: v1\nname: x\nsteps:\n${steps.replace(/^/gm, "  ")}\n`;
    expect(
      validateWorkflowText(source)
        .problems.map((p) => p.message)
        .join("\n"),
    ).toMatch(expected);
  });

  it("gives line and column 0 for a value without positions", () => {
    const result = validateWorkflowValue({ baton: "v1", name: "x", steps: [{ name: "a" }] });
    expect(result).toEqual({
      problems: [
        {
          code: "StepKindMissing",
          path: "steps[0]",
          line: 0,
          column: 0,
          message: expect.any(String) as string,
        },
      ],
    });
  });
});
