/**
 * Execution ids: opaque, safe in URLs, NATS subjects and KV keys (`[A-Za-z0-9_-]`). Item and
 * child ids derive from their parent's, so replaying the command that starts one starts the
 * same one (JetStream drops the duplicate start). Step names never contain `_`, so derived ids
 * cannot collide.
 */
import { randomBytes } from "node:crypto";

export function newExecutionId(): string {
  return `x${Date.now().toString(36)}${randomBytes(8).toString("hex")}`;
}

export const itemExecutionId = (parent: string, step: string, run: number, index: number) =>
  `${parent}_${step}_${run}_${index}`;
export const childExecutionId = (parent: string, step: string, run: number) => `${parent}_${step}_${run}`;

const idPattern = /^[A-Za-z0-9_-]{1,200}$/;
export const isExecutionId = (id: string) => idPattern.test(id);
