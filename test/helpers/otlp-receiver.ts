// A small OTLP/HTTP receiver for tests: it takes `POST /v1/traces` with JSON bodies
// (OTEL_EXPORTER_OTLP_PROTOCOL=http/json), as the OpenTelemetry SDK exports them, and keeps the
// spans with their resource's attributes. It answers like a collector does (200, empty partial
// success), so exporters in the processes under test behave as they would in production.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  /** Epoch ms. */
  start: number;
  end: number;
  attributes: Record<string, unknown>;
  /** 0 unset, 1 ok, 2 error. */
  status: { code: number; message?: string };
  links: { traceId: string; spanId: string }[];
  /** The exporting process's resource attributes (service.name, process.pid, ...). */
  resource: Record<string, unknown>;
}

export interface OtlpReceiver {
  /** The endpoint to give OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  /** Requests that were not valid OTLP/JSON trace exports. */
  readonly rejected: string[];
  close(): Promise<void>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: OtlpAttribute[];
  status?: { code?: number; message?: string };
  links?: { traceId: string; spanId: string }[];
}
interface OtlpExport {
  resourceSpans?: {
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans?: { spans?: OtlpSpan[] }[];
  }[];
}

/** OTLP/JSON ids are hex; some exporters send base64: accept both, return hex. */
function hexId(id: string | undefined): string | undefined {
  if (!id) return undefined;
  if (/^[0-9a-f]+$/i.test(id) && (id.length === 32 || id.length === 16)) return id.toLowerCase();
  const hex = Buffer.from(id, "base64").toString("hex");
  return hex === "" ? undefined : hex;
}

const valueOf = (value: OtlpValue): unknown =>
  value.stringValue ??
  (value.intValue !== undefined ? Number(value.intValue) : undefined) ??
  value.doubleValue ??
  value.boolValue;

const attributesOf = (attributes: OtlpAttribute[] | undefined): Record<string, unknown> =>
  Object.fromEntries((attributes ?? []).map(({ key, value }) => [key, valueOf(value)]));

const ms = (nanos: string | number) => Number(BigInt(nanos) / 1_000_000n);

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const rejected: string[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      if (request.method !== "POST" || request.url !== "/v1/traces") {
        rejected.push(`${request.method} ${request.url}`);
        response.writeHead(404).end();
        return;
      }
      let parsed: OtlpExport;
      try {
        parsed = JSON.parse(body) as OtlpExport;
      } catch {
        rejected.push(`not JSON (content-type ${request.headers["content-type"]})`);
        response.writeHead(400).end();
        return;
      }
      for (const resourceSpans of parsed.resourceSpans ?? []) {
        const resource = attributesOf(resourceSpans.resource?.attributes);
        for (const scope of resourceSpans.scopeSpans ?? [])
          for (const span of scope.spans ?? [])
            spans.push({
              traceId: hexId(span.traceId)!,
              spanId: hexId(span.spanId)!,
              ...(hexId(span.parentSpanId) ? { parentSpanId: hexId(span.parentSpanId) } : {}),
              name: span.name,
              kind: span.kind,
              start: ms(span.startTimeUnixNano),
              end: ms(span.endTimeUnixNano),
              attributes: attributesOf(span.attributes),
              status: { code: span.status?.code ?? 0, message: span.status?.message },
              links: (span.links ?? []).map((link) => ({
                traceId: hexId(link.traceId)!,
                spanId: hexId(link.spanId)!,
              })),
              resource,
            });
      }
      response.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    rejected,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
