/**
 * Trace context as Baton handles it: W3C `traceparent` strings, and spans planned as plain data
 * (by the orchestrator's pure core) before they are exported. No OpenTelemetry SDK here.
 */

export type SpanAttributes = Record<string, string | number | boolean>;

/** A span ready to be exported. */
export interface PlannedSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  flags: string;
  /** Epoch ms. */
  start: number;
  /** Epoch ms; absent: when it is exported (the root's start is the time it took to persist the start). */
  end?: number;
  attributes: SpanAttributes;
  error?: { code: string; message: string };
  /** `traceparent`s of spans this one is linked to. */
  links?: string[];
}

const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The parts of a W3C `traceparent`, or `undefined` when it is not one. */
export function parseTraceparent(
  value: string | undefined,
): { traceId: string; spanId: string; flags: string } | undefined {
  const match = traceparentPattern.exec(value ?? "");
  if (!match || /^0+$/.test(match[1]!) || /^0+$/.test(match[2]!)) return undefined;
  return { traceId: match[1]!, spanId: match[2]!, flags: match[3]! };
}

export const formatTraceparent = (traceId: string, spanId: string, flags = "01") =>
  `00-${traceId}-${spanId}-${flags}`;
