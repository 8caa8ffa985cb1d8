/**
 * A minimal worker speaking the wire protocol of sdk/protocol.ts directly, for integration tests
 * of the orchestrator that should not depend on the worker SDK. It is a real worker as far as
 * NATS and the engine can tell: it pulls tasks from the shared consumer and publishes results.
 */
import { AckPolicy, headers as natsHeaders, nanos, type ConsumerMessages, type NatsConnection } from "nats";
import {
  headers,
  protocolVersion,
  resultMessageId,
  streams,
  subjects,
  taskAckWaitMs,
  taskConsumer,
  type Lane,
  type TaskEnvelope,
  type WireError,
} from "../../sdk/protocol.ts";

export type Script = (input: unknown, task: TaskEnvelope) => unknown;

export class ScriptedFailure extends Error {
  constructor(readonly error: WireError) {
    super(error.message);
  }
}

export interface ScriptedWorker {
  /** Every task this worker received, in order. */
  readonly tasks: TaskEnvelope[];
  stop(): void;
}

export async function serveScripted(
  nc: NatsConnection,
  functions: Record<string, Script>,
  { worker = "scripted", lane = "pure" }: { worker?: string; lane?: Lane } = {},
): Promise<ScriptedWorker> {
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  const tasks: TaskEnvelope[] = [];
  const running: ConsumerMessages[] = [];
  for (const [fn, script] of Object.entries(functions)) {
    const durable = taskConsumer(lane, fn);
    await jsm.consumers
      .add(streams.tasks, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(taskAckWaitMs),
        filter_subject: subjects.task(lane, fn),
      })
      .catch(() => undefined);
    const messages = await (await js.consumers.get(streams.tasks, durable)).consume({ max_messages: 64 });
    running.push(messages);
    void (async () => {
      for await (const message of messages) {
        const task = message.json<TaskEnvelope>();
        tasks.push(task);
        const base = {
          v: protocolVersion,
          execution: task.execution,
          step: task.step,
          run: task.run,
          attempt: task.attempt,
          worker,
        };
        let result: object;
        try {
          result = { ...base, type: "task.succeeded", output: await script(task.input, task) };
        } catch (error) {
          const wire: WireError =
            error instanceof ScriptedFailure
              ? error.error
              : { code: "FunctionError", message: String(error), retryable: true };
          result = { ...base, type: "task.failed", error: wire };
        }
        const type = (result as { type: string }).type;
        const h = natsHeaders();
        h.set(headers.protocol, String(protocolVersion));
        await js.publish(task.reply, JSON.stringify(result), {
          msgID: resultMessageId(task.execution, task.step, task.run, task.attempt, type),
          headers: h,
        });
        message.ack();
      }
    })();
  }
  return {
    tasks,
    stop: () => {
      for (const messages of running) messages.stop();
    },
  };
}
