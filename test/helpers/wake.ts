/**
 * Timers live in the execution record (`deferred`) and fire through the execution's wake-up
 * (apply-event.ts): the `timer.fired` that fires the record's timer whose delayed event matches
 * `pattern`, as the wake-up armed for it would at that timer's due time.
 */
import type { EngineEvent } from "../../engine/orchestrator/engine-events.ts";
import { wakeTimer, type ExecutionRecord } from "../../engine/orchestrator/execution-record.ts";

export function wakeFor(
  record: ExecutionRecord,
  pattern: RegExp,
): Extract<EngineEvent, { type: "timer.fired" }> {
  const found = Object.values(record.deferred ?? {}).find(
    (timer) => pattern.test(timer.timer) && record.timers[timer.timer] !== undefined,
  );
  if (!found) throw new Error(`no live timer matching ${String(pattern)} in the record`);
  const armed = Object.entries(record.wakes ?? {}).find(([, due]) => due <= found.due)?.[0];
  return {
    type: "timer.fired",
    timer: wakeTimer,
    token: armed ?? `${record.id}.test-wake`,
    event: { type: wakeTimer },
    at: found.due,
  };
}
