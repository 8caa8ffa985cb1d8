/**
 * sdk/nats-cancel-errors.ts: nats.js's "cancelled" errors (built for every answered request, and
 * never seen) are built without a stack; every other error keeps its stack, and so does the rest
 * of the process (Error.stackTraceLimit is put back).
 */
import { ErrorCode, NatsError } from "nats";
import { expect, it } from "vitest";
import { quietCancelErrors } from "../../sdk/nats-cancel-errors.ts";

const frames = (error: Error) =>
  (error.stack ?? "").split("\n").filter((line) => line.trim().startsWith("at "));

it("builds nats.js's CANCELLED errors without a stack, and nothing else changes", () => {
  const limit = Error.stackTraceLimit;
  quietCancelErrors();
  quietCancelErrors(); // once is enough; twice changes nothing
  const cancelled = NatsError.errorForCode(ErrorCode.Cancelled);
  expect(cancelled).toBeInstanceOf(NatsError);
  expect(cancelled.code).toBe(ErrorCode.Cancelled);
  expect(cancelled.message).toBe("CANCELLED");
  expect(frames(cancelled)).toEqual([]);
  const timeout = NatsError.errorForCode(ErrorCode.Timeout);
  expect(timeout.code).toBe(ErrorCode.Timeout);
  expect(frames(timeout).length).toBeGreaterThan(0);
  expect(Error.stackTraceLimit).toBe(limit);
  expect(frames(new Error("elsewhere")).length).toBeGreaterThan(0);
});
