/**
 * For trigger sources that publish after claiming an event (a schedule's cursor, an infra state
 * moved by compare-and-set): nobody else will publish it, so a failed publish is retried, with
 * backoff. Repeating is harmless: the event id is the same, and JetStream and the matcher drop a
 * second copy.
 */
import type { JetStreamClient } from "nats";
import { publishTriggerEvent } from "./publish-trigger.ts";
import type { TriggerEvent } from "./trigger-event.ts";

export async function publishClaimedEvent(
  js: JetStreamClient,
  event: TriggerEvent,
  attempts = 6,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await publishTriggerEvent(js, event);
      return;
    } catch (error) {
      if (attempt >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
    }
  }
}
