/**
 * The logger tests give the engine: quiet about the ordinary, loud about errors, so that a test
 * that fails because the engine hit an error shows that error instead of hiding it.
 */
import type { Logger } from "../../engine/orchestrator/orchestrator.ts";

export const testLogger: Logger = {
  info: () => undefined,
  warn: () => undefined,
  error: (message, fields) => console.error(message, fields),
};
