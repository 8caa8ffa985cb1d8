// Small formatting helpers shared by the views.

export const time = (iso: string | undefined): string => (iso ? new Date(iso).toLocaleTimeString() : "");
export const dateTime = (iso: string | undefined): string => (iso ? new Date(iso).toLocaleString() : "");

export function duration(fromIso: string, toIso?: string): string {
  const ms = (toIso ? Date.parse(toIso) : Date.now()) - Date.parse(fromIso);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} m ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} m`;
}

export const json = (value: unknown): string => JSON.stringify(value, null, 2) ?? "undefined";
