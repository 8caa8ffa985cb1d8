/**
 * Fires `schedule` triggers. Every engine replica watches the workflows KV (a workflow is armed
 * when submitted or updated, disarmed when deleted) and keeps one in-process timer per workflow
 * for its next due time; what makes a due time fire exactly once, however many replicas run and
 * whatever restarts, is a cursor per schedule in the KV bucket `baton_schedule_cursors`
 * (`<workflow>.<trigger index>` → the last due time handled), moved by compare-and-set: only the
 * replica whose CAS wins publishes that due time's TriggerEvent (`<workflow>@<due ISO>`).
 *
 * The claim comes before the publish: a replica that dies between the two loses that one tick
 * (at most once, never twice). A publish that fails is retried (publish-retry.ts).
 *
 * After downtime the cursor is behind: the due times missed before this replica armed the
 * schedule go by `catchUp` (planDueTimes); a cursor older than the workflow's latest revision
 * counts from that revision, so a workflow never fires for times before it was submitted.
 */
import { openBucket } from "../../sdk/replication.ts";
import { StorageType, type JetStreamClient, type KV } from "nats";
import type { Logger } from "../orchestrator/orchestrator.ts";
import type { StoredWorkflow } from "../nats/workflow-store.ts";
import { publishClaimedEvent } from "./publish-retry.ts";
import type { TriggerEvent } from "./trigger-event.ts";
import { nextDueTime, planDueTimes, schedulesOf, type Schedule } from "./schedule.ts";
import { watchWorkflows, type WorkflowWatch } from "./workflow-watch.ts";

export const scheduleCursorsBucket = "baton_schedule_cursors";

/** The longest a timer is set for: longer waits are taken in steps (setTimeout's limit is ~24.8 days). */
const maxTimerMs = 60 * 60_000;

interface Cursor {
  /** The last due time handled (fired or skipped), ISO. */
  last: string;
}

interface Armed {
  name: string;
  schedules: Schedule[];
  /** The latest revision's time: nothing before it fires. */
  since: number;
  /** When this replica started watching the workflow: due times before it were missed. */
  armedAt: Date;
  timer?: NodeJS.Timeout;
  /** Runs of `advance`, one after another. */
  running: Promise<void>;
  disarmed: boolean;
}

export interface ScheduleServiceOptions {
  js: JetStreamClient;
  workflows: KV;
  log: Logger;
}

const isConflict = (error: unknown) => /wrong last sequence|key exists/i.test(String(error));

export class ScheduleService {
  private readonly armed = new Map<string, Armed>();
  private watch?: WorkflowWatch;

  private constructor(
    private readonly options: ScheduleServiceOptions,
    private readonly cursors: KV,
  ) {}

  /** Opens the cursor bucket, arms every submitted workflow with schedules, and keeps watching. */
  static async start(options: ScheduleServiceOptions): Promise<ScheduleService> {
    const cursors = await openBucket(options.js, scheduleCursorsBucket, {
      history: 1,
      storage: StorageType.File,
    });
    const service = new ScheduleService(options, cursors);
    service.watch = await watchWorkflows(
      options.workflows,
      (name, workflow) => (workflow ? service.arm(workflow) : service.remove(name)),
      options.log,
    );
    return service;
  }

  /** The workflows armed now (tests, diagnostics). */
  armedWorkflows(): string[] {
    return [...this.armed.keys()].sort();
  }

  async stop(): Promise<void> {
    await this.watch?.stop();
    const pending = [...this.armed.values()].map((armed) => {
      this.disarm(armed);
      return armed.running;
    });
    this.armed.clear();
    await Promise.all(pending);
  }

  private arm(workflow: StoredWorkflow): void {
    const schedules = schedulesOf(workflow.definition);
    const previous = this.armed.get(workflow.name);
    if (schedules.length === 0) return this.remove(workflow.name);
    if (previous) this.disarm(previous);
    const armed: Armed = {
      name: workflow.name,
      schedules,
      since: Date.parse(workflow.updatedAt),
      armedAt: previous?.armedAt ?? new Date(),
      running: previous?.running ?? Promise.resolve(),
      disarmed: false,
    };
    this.armed.set(workflow.name, armed);
    this.kick(armed);
  }

  private remove(name: string): void {
    const armed = this.armed.get(name);
    if (!armed) return;
    this.disarm(armed);
    this.armed.delete(name);
  }

  private disarm(armed: Armed): void {
    armed.disarmed = true;
    clearTimeout(armed.timer);
  }

  /** Handles what is due now, then sets the timer for the next due time. */
  private kick(armed: Armed): void {
    armed.running = armed.running
      .then(async () => {
        if (armed.disarmed) return;
        for (const [index, schedule] of armed.schedules.entries()) await this.advance(armed, index, schedule);
      })
      .catch((error: unknown) =>
        this.options.log.error("a schedule could not fire", { workflow: armed.name, error: String(error) }),
      )
      .finally(() => {
        if (!armed.disarmed) this.setTimer(armed);
      });
  }

  private setTimer(armed: Armed): void {
    const now = new Date();
    const next = Math.min(
      ...armed.schedules.map((schedule) => nextDueTime(schedule, now)?.getTime() ?? Number.POSITIVE_INFINITY),
    );
    if (!Number.isFinite(next)) return;
    clearTimeout(armed.timer);
    armed.timer = setTimeout(() => this.kick(armed), Math.min(Math.max(next - Date.now(), 0), maxTimerMs));
  }

  /** Moves one schedule's cursor up to now, firing what the plan says; retries when another replica moved it first. */
  private async advance(armed: Armed, index: number, schedule: Schedule): Promise<void> {
    const key = `${armed.name}.${index}`;
    for (;;) {
      if (armed.disarmed) return;
      const entry = await this.cursors.get(key);
      const stored = entry?.operation === "PUT" ? Date.parse(entry.json<Cursor>().last) : Number.NaN;
      const cursor = new Date(Math.max(Number.isNaN(stored) ? 0 : stored, armed.since));
      const plan = planDueTimes(schedule, cursor, armed.armedAt, new Date());
      let revision = entry?.revision;
      let lost = false;
      for (const { due, fire } of plan) {
        const body = JSON.stringify({ last: due.toISOString() } satisfies Cursor);
        try {
          revision =
            revision === undefined
              ? await this.cursors.create(key, body)
              : await this.cursors.update(key, body, revision);
        } catch (error) {
          if (!isConflict(error)) throw error;
          lost = true;
          break;
        }
        if (fire) await this.publish(armed.name, due);
      }
      if (!lost) return;
    }
  }

  private async publish(workflow: string, due: Date): Promise<void> {
    const scheduledAt = due.toISOString();
    const event: TriggerEvent = {
      source: "schedule",
      type: "tick",
      id: `${workflow}@${scheduledAt}`,
      // The due time, not the publish time: a repeated publish derives the same execution id.
      time: scheduledAt,
      subject: workflow,
      data: { scheduledAt, firedAt: new Date().toISOString() },
    };
    await publishClaimedEvent(this.options.js, event);
  }
}
