// The types of Knative's faas-js-runtime that Skiff's Node runner implements: the context a
// function gets and what it may return. Kept in the function so that it builds with tsc alone.

/** Logging methods, one per level. */
export interface Logger {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

/** The context of one invocation. */
export interface Context {
  log: Logger;
  method: string;
  query?: Record<string, string | string[]>;
  headers: Record<string, string | string[] | undefined>;
  httpVersion: string;
  body?: unknown;
}

/** A response with a status, headers and a body; any other object is sent as JSON. */
export interface StructuredReturn {
  statusCode?: number;
  statusMessage?: string;
  headers?: Record<string, string>;
  body?: unknown;
}
