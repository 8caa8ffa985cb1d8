// The worker's log: one JSON object per line on stderr, so that a log collector can read it and
// a person can grep it. Functions log through `ctx.logger`, which adds the attempt's identity.

/** Structured fields of a log line (JSON-serialisable). */
export type LogFields = Record<string, unknown>;

/** Where a worker and its functions write their log. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export const logLevels = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof logLevels)[number];

/**
 * A logger that writes JSON lines to stderr, at `level` and above (default: `BATON_LOG_LEVEL`, else
 * `info`; `silent` writes nothing). `base` fields go on every line.
 */
export function createJsonLogger(
  options: { level?: LogLevel | "silent"; base?: LogFields; write?: (line: string) => void } = {},
): Logger {
  const level = options.level ?? parseLevel(process.env.BATON_LOG_LEVEL);
  const threshold = level === "silent" ? Infinity : logLevels.indexOf(level);
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const base = options.base ?? {};
  const log =
    (at: LogLevel) =>
    (message: string, fields?: LogFields): void => {
      if (logLevels.indexOf(at) < threshold) return;
      write(
        `${safeStringify({ time: new Date().toISOString(), level: at, msg: message, ...base, ...fields })}\n`,
      );
    };
  return { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

/** A logger that adds `fields` to every line of `logger`. */
export function childLogger(logger: Logger, fields: LogFields): Logger {
  return {
    debug: (message, more) => logger.debug(message, { ...fields, ...more }),
    info: (message, more) => logger.info(message, { ...fields, ...more }),
    warn: (message, more) => logger.warn(message, { ...fields, ...more }),
    error: (message, more) => logger.error(message, { ...fields, ...more }),
  };
}

/** The message and stack of an error, for a log line (never for the wire). */
export function errorFields(error: unknown): LogFields {
  if (error instanceof Error) return { error: error.message, stack: error.stack };
  return { error: String(error) };
}

function parseLevel(value: string | undefined): LogLevel | "silent" {
  if (value === "silent") return value;
  return logLevels.find((level) => level === value) ?? "info";
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value, (_key, field: unknown) =>
      typeof field === "bigint" ? String(field) : field,
    );
  } catch {
    return JSON.stringify({ msg: "log line could not be serialised" });
  }
}
