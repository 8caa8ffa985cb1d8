/**
 * Whether the environment asks for tracing (the rules are in tracing.ts's comment). Apart from
 * tracing.ts, which loads the OpenTelemetry SDK, so that a process can ask without loading it.
 */
export function tracingConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? "")
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "");
  if (exporters.length > 0) return !exporters.every((name) => name === "none");
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}
