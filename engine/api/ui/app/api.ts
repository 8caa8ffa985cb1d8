// Calls to Baton's API from the console, with the bearer token the user gave (kept in
// sessionStorage: gone when the tab closes). The console is served by the API itself, so every
// path is relative to its origin.

const tokenKey = "baton.token";

export const savedToken = (): string | null => sessionStorage.getItem(tokenKey);
export const saveToken = (token: string): void => sessionStorage.setItem(tokenKey, token);
export const forgetToken = (): void => sessionStorage.removeItem(tokenKey);

/** A problem document the API answered with. */
export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
  ) {
    super(detail);
  }
}

/** Listeners told when the API wants a token (401). */
const unauthorizedListeners = new Set<() => void>();
export const onUnauthorized = (listener: () => void): (() => void) => {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
};

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const headers: Record<string, string> = {};
  const token = savedToken();
  if (token) headers.authorization = `Bearer ${token}`;
  if (init.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method: init.method ?? "GET",
    headers,
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await response.text();
  const body: unknown = text === "" ? null : JSON.parse(text);
  if (!response.ok) {
    const problem = (body ?? {}) as { code?: string; detail?: string };
    if (response.status === 401) for (const listener of unauthorizedListeners) listener();
    throw new ApiProblem(response.status, problem.code ?? "Error", problem.detail ?? response.statusText);
  }
  return body as T;
}

/** `ws://host/path` for a path of this origin. */
export const websocketUrl = (path: string): string =>
  `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${path}`;

export interface ExecutionSummary {
  id: string;
  workflow: string;
  revision: number;
  status: string;
  startedAt: string;
  endedAt?: string;
}

export interface StepError {
  code: string;
  message: string;
  retryable?: boolean;
  details?: unknown;
}

export interface Progress {
  at: string;
  step: string;
  run: number;
  attempt: number;
  fraction: number;
  message?: string;
}

export interface ExecutionView extends ExecutionSummary {
  input: unknown;
  output?: unknown;
  error?: StepError;
  traceId: string | null;
  parent?: { execution: string; step: string; kind: string };
  steps: {
    name: string;
    status: string;
    attempts: number;
    startedAt: string;
    endedAt?: string;
    runs: number;
    input?: unknown;
    output?: unknown;
    error?: unknown;
    effect: boolean;
  }[];
  progress?: Progress;
}

export interface HistoryEvent {
  seq: number;
  at: string;
  type: string;
  step?: string;
  attempt?: number;
  worker?: string;
  data?: unknown;
}

export interface Links {
  execution: string;
  result: string;
  events: string;
}
