/**
 * nats.js 2.29 rejects every request's promise a second time once it has been answered
 * (`RequestOne.cancel`, after `resolve`): nobody can observe that rejection, but it builds a
 * `NatsError` for it, and building an Error captures its stack. In the engine's profile of a
 * 1,000-item map that was 6% of its CPU (every JetStream publish and KV read is a request).
 *
 * `NatsError.errorForCode(ErrorCode.Cancelled)` here builds the same error without capturing a
 * stack (a "cancelled" error's stack only ever points into nats.js itself). Every other code is
 * left as it is. Applied once, by connectNats, to the one nats.js the process loaded.
 */
import { ErrorCode, NatsError } from "nats";

let applied = false;

export function quietCancelErrors(): void {
  if (applied) return;
  applied = true;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with its class, as nats.js calls it
  const errorForCode = NatsError.errorForCode;
  NatsError.errorForCode = (code: string, chainedError?: Error): NatsError => {
    if (code !== (ErrorCode.Cancelled as string)) return errorForCode.call(NatsError, code, chainedError);
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return errorForCode.call(NatsError, code, chainedError);
    } finally {
      Error.stackTraceLimit = limit;
    }
  };
}
