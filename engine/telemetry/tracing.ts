/**
 * OpenTelemetry for Baton's processes (engine, API, workers), configured by the standard
 * `OTEL_*` variables and nothing else:
 *
 * - tracing is on when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 *   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or an exporter is named (`OTEL_TRACES_EXPORTER`, other
 *   than `none`), and `OTEL_SDK_DISABLED` is not `true`;
 * - everything else (protocol, headers, sampler, batch delays, resource attributes, service name)
 *   is the SDK's own reading of its variables.
 *
 * When tracing is off nothing is started: the OpenTelemetry API stays a no-op and executions are
 * not traced (their records carry no trace), so it costs nothing.
 *
 * Spans the orchestrator plans carry ids derived from the execution (execution-spans.ts): the
 * id generator hands those out while such a span is created, and random ones otherwise.
 */
import { FastifyOtelInstrumentation } from "@fastify/otel";
import {
  ROOT_CONTEXT,
  SpanKind,
  type Context,
  type ContextManager,
  SpanStatusCode,
  trace,
  type Link,
  type SpanContext,
  type Tracer,
} from "@opentelemetry/api";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { RandomIdGenerator, type IdGenerator } from "@opentelemetry/sdk-trace";
import { formatTraceparent, parseTraceparent, type PlannedSpan } from "./trace-context.ts";
import { tracingConfigured } from "./tracing-config.ts";

const instrumentationName = "baton";

/** Hands out the ids of a planned span while it is being created; random ids otherwise. */
class PlannedIdGenerator implements IdGenerator {
  private readonly random = new RandomIdGenerator();
  planned: { traceId: string; spanId: string } | undefined;

  generateTraceId(): string {
    return this.planned?.traceId ?? this.random.generateTraceId();
  }

  generateSpanId(): string {
    return this.planned?.spanId ?? this.random.generateSpanId();
  }
}

/**
 * A context manager that keeps no context across awaits. The engine and the workers pass every
 * parent explicitly, so they have no use for the default one (AsyncLocalStorage), whose promise
 * hooks tax every promise of the process: measured on chain-10, it was most of tracing's cost.
 */
class ExplicitContextManager implements ContextManager {
  active(): Context {
    return ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    _context: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return fn.call(thisArg, ...args);
  }
  bind<T>(_context: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    return this;
  }
}

let sdk: NodeSDK | undefined;
let ids: PlannedIdGenerator | undefined;
let tracer: Tracer | undefined;

/** Whether this process exports traces (startTracing found it configured). */
export const tracingEnabled = (): boolean => sdk !== undefined;

// Whether the environment asks for tracing: in its own light module, so that a process can ask
// without loading the OpenTelemetry SDK (`baton worker` does, to start fast).
export { tracingConfigured } from "./tracing-config.ts";

export interface TracingOptions {
  /**
   * Keep the active span across awaits (AsyncLocalStorage): processes serving the HTTP API need
   * it, so that a start links to the request it serves. Default false.
   */
  asyncContext?: boolean;
}

/**
 * Starts the OpenTelemetry SDK for this process when the environment asks for it (once per
 * process). `serviceName` is the default of `OTEL_SERVICE_NAME`.
 */
export function startTracing(
  serviceName: string,
  env: NodeJS.ProcessEnv = process.env,
  options: TracingOptions = {},
): boolean {
  if (sdk) return true;
  if (!tracingConfigured(env)) return false;
  ids = new PlannedIdGenerator();
  sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME || serviceName,
    idGenerator: ids,
    // Undefined: the SDK's default, AsyncLocalStorage.
    ...(options.asyncContext ? {} : { contextManager: new ExplicitContextManager() }),
    // Only traces: no metrics or logs pipelines are started behind the user's back.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      // The HTTP API's requests (fastify), so that a start can link to the request that made it.
      new FastifyOtelInstrumentation({
        registerOnInitialization: true,
        ignorePaths: ({ url }) => url === "/healthz" || url === "/readyz" || url === "/metrics",
      }),
    ],
  });
  sdk.start();
  tracer = trace.getTracer(instrumentationName);
  return true;
}

/** Flushes what is buffered and stops exporting (at the process's end). */
export async function stopTracing(): Promise<void> {
  const running = sdk;
  sdk = undefined;
  tracer = undefined;
  await running?.shutdown();
}

/** The active span's context as a `traceparent` (what a start or a trigger links to), if any. */
export function activeTraceparent(): string | undefined {
  const context = trace.getActiveSpan()?.spanContext();
  if (!context || !trace.isSpanContextValid(context)) return undefined;
  return formatTraceparent(context.traceId, context.spanId, context.traceFlags.toString(16).padStart(2, "0"));
}

const remoteContext = (traceparent: string): SpanContext | undefined => {
  const parsed = parseTraceparent(traceparent);
  if (!parsed) return undefined;
  return {
    traceId: parsed.traceId,
    spanId: parsed.spanId,
    traceFlags: Number.parseInt(parsed.flags, 16),
    isRemote: true,
  };
};

/** Exports spans the orchestrator planned (no-op when tracing is off). */
export function exportPlannedSpans(spans: readonly PlannedSpan[]): void {
  if (!tracer || !ids || spans.length === 0) return;
  const now = Date.now();
  for (const planned of spans) {
    const parent = planned.parentSpanId
      ? trace.setSpanContext(ROOT_CONTEXT, {
          traceId: planned.traceId,
          spanId: planned.parentSpanId,
          traceFlags: Number.parseInt(planned.flags, 16),
          isRemote: true,
        })
      : ROOT_CONTEXT;
    const links: Link[] = (planned.links ?? []).flatMap((link) => {
      const context = remoteContext(link);
      return context ? [{ context }] : [];
    });
    ids.planned = { traceId: planned.traceId, spanId: planned.spanId };
    let span;
    try {
      span = tracer.startSpan(
        planned.name,
        { kind: SpanKind.INTERNAL, startTime: planned.start, attributes: planned.attributes, links },
        parent,
      );
    } finally {
      ids.planned = undefined;
    }
    if (planned.error) {
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: `${planned.error.code}: ${planned.error.message}`,
      });
    }
    span.end(Math.max(planned.end ?? now, planned.start));
  }
}
