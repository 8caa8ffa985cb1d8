/**
 * `emit` is exactly-once when a JetStream stream captures its subject: the publish carries a
 * message id made of the execution, step and run, and JetStream drops a replay. Baton keeps a
 * stream of its own, `BATON_EMITTED`, whose subjects grow with the `emit` steps of the workflows
 * submitted (a subject with expressions becomes a wildcard: `orders.${ $input.id }.paid` →
 * `orders.*.paid`). A subject another stream already captures is left to that stream.
 */
import { RetentionPolicy, StorageType, nanos, type JetStreamManager } from "nats";
import type { Step, WorkflowDefinition } from "../workflow/definition.ts";
import { findSegments } from "../workflow/expressions.ts";
import { explainCreateError, natsReplicas, reconcileStream } from "../../sdk/replication.ts";
import { duplicateWindowMs, isNotFound } from "./topology.ts";

export const emittedStream = "BATON_EMITTED";
/** How long emitted events stay in BATON_EMITTED. */
export const emittedRetentionMs = 7 * 24 * 3_600_000;

/** The subjects a workflow's `emit` steps publish to, as stream subjects. */
export function emitSubjectsOf(definition: WorkflowDefinition): string[] {
  const subjects = new Set<string>();
  const visit = (steps: Step[]) => {
    for (const step of steps) {
      if ("emit" in step) subjects.add(asStreamSubject(step.emit.subject));
      if ("switch" in step) for (const branch of step.switch) if (branch.steps) visit(branch.steps);
      if ("parallel" in step) for (const branch of Object.values(step.parallel.branches)) visit(branch);
      if ("map" in step) visit(step.map.steps);
    }
  };
  visit(definition.steps);
  return [...subjects];
}

function asStreamSubject(subject: string): string {
  // Expressions may hold dots of their own: blank them out before splitting into tokens.
  let blanked = subject;
  for (const segment of findSegments(subject).segments.reverse()) {
    blanked = `${blanked.slice(0, segment.start)}\u0000${blanked.slice(segment.end)}`;
  }
  return blanked
    .split(".")
    .map((token) => (token.includes("\u0000") ? "*" : token))
    .join(".");
}

/** Whether `pattern` (with `*` and `>`) covers `subject`. */
export function subjectCovers(pattern: string, subject: string): boolean {
  const want = pattern.split(".");
  const have = subject.split(".");
  for (let index = 0; index < want.length; index++) {
    if (want[index] === ">") return have.length > index;
    if (index >= have.length) return false;
    if (want[index] !== "*" && want[index] !== have[index]) return false;
  }
  return want.length === have.length;
}

/** Adds subjects to BATON_EMITTED (creating it), keeping none that another of its subjects covers. */
export async function captureEmitSubjects(jsm: JetStreamManager, wanted: string[]): Promise<void> {
  if (wanted.length === 0) return;
  let current: string[] = [];
  let exists = true;
  try {
    current = (await jsm.streams.info(emittedStream)).config.subjects ?? [];
  } catch (error) {
    if (!isNotFound(error)) throw error;
    exists = false;
  }
  const replicas = natsReplicas();
  // Brought to the configured replica count first, so that the update below keeps it.
  if (exists) await reconcileStream(jsm, emittedStream, { num_replicas: replicas });
  const all = [...new Set([...current, ...wanted])];
  const subjects = all.filter(
    (subject) => !all.some((other) => other !== subject && subjectCovers(other, subject)),
  );
  if (exists && subjects.length === current.length && subjects.every((subject) => current.includes(subject)))
    return;
  const config = {
    name: emittedStream,
    subjects,
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    duplicate_window: nanos(duplicateWindowMs),
    // Emitted events are there for deduplication and for late readers, not for ever.
    max_age: nanos(emittedRetentionMs),
    num_replicas: replicas ?? 1,
  };
  if (exists) await jsm.streams.update(emittedStream, config);
  else
    await jsm.streams.add(config).catch((error: unknown) => {
      throw explainCreateError(error, `stream ${emittedStream}`, replicas);
    });
}
