/**
 * When a `schedule` trigger is due: pure functions over croner (5 fields, or 6 with seconds
 * first; time zone default UTC), shared by the schedule service and the API (`nextFires`).
 */
import { Cron } from "croner";
import type { ScheduleTrigger, WorkflowDefinition } from "../workflow/definition.ts";

export type Schedule = ScheduleTrigger["schedule"];

/** Missed due times `catchUp: all` fires at most, the most recent ones (older ones are skipped). */
export const maxCatchUpFires = 1_000;

/** The schedule triggers of a workflow. */
export function schedulesOf(definition: WorkflowDefinition): Schedule[] {
  return (definition.triggers ?? []).flatMap((trigger) => ("schedule" in trigger ? [trigger.schedule] : []));
}

const cronOf = (schedule: Schedule) =>
  new Cron(schedule.cron, { paused: true, mode: "5-or-6-parts", timezone: schedule.timezone ?? "UTC" });

/** The due times of a schedule strictly after `after` and at most `until`, oldest first, at most `limit`. */
export function dueTimesBetween(schedule: Schedule, after: Date, until: Date, limit: number): Date[] {
  const cron = cronOf(schedule);
  const times: Date[] = [];
  let cursor: Date | null = after;
  while (times.length < limit) {
    cursor = cron.nextRun(cursor);
    if (cursor === null || cursor.getTime() > until.getTime()) break;
    times.push(cursor);
  }
  return times;
}

/** The most recent `limit` due times in (`after`, `until`], oldest first. */
export function latestDueTimes(schedule: Schedule, after: Date, until: Date, limit: number): Date[] {
  const cron = cronOf(schedule);
  // previousRuns counts back from a reference it may include: look from just past `until`.
  return cron
    .previousRuns(limit, new Date(until.getTime() + 1))
    .filter((time) => time.getTime() > after.getTime() && time.getTime() <= until.getTime())
    .sort((a, b) => a.getTime() - b.getTime());
}

/** The next due time of a schedule strictly after `after`, if it has one. */
export function nextDueTime(schedule: Schedule, after: Date): Date | undefined {
  return cronOf(schedule).nextRun(after) ?? undefined;
}

/**
 * The next `count` times a workflow's schedules fire after `from` (default now), merged across
 * its schedule triggers, as ISO strings; empty for a workflow without schedules.
 */
export function nextFireTimes(
  definition: WorkflowDefinition,
  count: number,
  from: Date = new Date(),
): string[] {
  const times = schedulesOf(definition).flatMap((schedule) => cronOf(schedule).nextRuns(count, from));
  return [...new Set(times.map((time) => time.getTime()))]
    .sort((a, b) => a - b)
    .slice(0, count)
    .map((ms) => new Date(ms).toISOString());
}

/**
 * What to do about the due times between a schedule's cursor (the last due time handled) and
 * now: those before `armedAt` (when this replica started watching) were missed while no engine
 * ran, and `catchUp` decides (none: skip them, latest: fire the last, all: fire each, up to
 * `maxCatchUpFires`); those since are on time and fire. Every listed time moves the cursor;
 * `fire: false` ones publish nothing.
 */
export function planDueTimes(
  schedule: Schedule,
  cursor: Date,
  armedAt: Date,
  now: Date,
): { due: Date; fire: boolean }[] {
  const plan: { due: Date; fire: boolean }[] = [];
  if (cursor.getTime() < armedAt.getTime()) {
    const missed = latestDueTimes(schedule, cursor, armedAt, maxCatchUpFires);
    const catchUp = schedule.catchUp ?? "none";
    missed.forEach((due, index) => {
      const fire = catchUp === "all" || (catchUp === "latest" && index === missed.length - 1);
      // Skipped times need no cursor move of their own: the last one stands for all of them.
      if (fire || index === missed.length - 1) plan.push({ due, fire });
    });
  }
  const start = new Date(Math.max(cursor.getTime(), armedAt.getTime()));
  for (const due of dueTimesBetween(schedule, start, now, maxCatchUpFires)) plan.push({ due, fire: true });
  return plan;
}
