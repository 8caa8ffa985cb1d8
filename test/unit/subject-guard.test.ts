/** The run-time guard on workflow subjects (engine/workflow/subject-guard.ts). */
import { expect, it } from "vitest";
import { refuseSubject } from "../../engine/workflow/subject-guard.ts";

it("refuses subjects under the prefixes Baton and NATS reserve, and nothing that only looks like them", () => {
  for (const subject of [
    "baton.events.x",
    "$JS.API.STREAM.PURGE.BATON_EVENTS",
    "$KV.baton_executions.x",
    "$O.store.x",
    "$SYS.REQ.SERVER.PING",
    "_INBOX.abc",
    "baton",
  ])
    expect(refuseSubject(subject), subject).toMatch(/reserved/);
  for (const subject of ["batons.x", "orders.baton.x", "JS.API", "$js.api", "inbox.x", "orders.created"])
    expect(refuseSubject(subject), subject).toBeUndefined();
});

it("refuses what is not one concrete subject, and patterns that would overlap the reserved ones", () => {
  for (const subject of ["", "a b", "a..b", ".a", "a.", "a.*", "a.>", ">"])
    expect(refuseSubject(subject)).toBeDefined();
  expect(refuseSubject("orders.*.paid", { wildcards: true })).toBeUndefined();
  expect(refuseSubject("orders.>", { wildcards: true })).toBeUndefined();
  for (const pattern of [">", "*.created", "*.>", "a.>.b", "a.b*", "baton.>"])
    expect(refuseSubject(pattern, { wildcards: true }), pattern).toBeDefined();
});
