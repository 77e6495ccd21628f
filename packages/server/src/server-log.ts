/**
 * The running server's log (`bourse start`), as an operator reads it: every line with its time and level, as text
 * (BOURSE_LOG_FORMAT=text, the default) or one JSON object a line (`json`, pino's format, for a log collector), and the
 * HTTP requests when BOURSE_LOG_REQUESTS=true (pino through Fastify, in both formats as JSON lines). Found by the audit
 * of an operator's journey of 7 December (sixth session): lines had no time and no level, and nothing recorded who
 * called the back office.
 */
import type { FastifyServerOptions } from "fastify";
import pino, { type Logger } from "pino";
import type { PlatformLog } from "./platform.ts";

export type LogFormat = "text" | "json";
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

/**
 * Query parameters whose values are written to a request log; every other value is redacted. An allowlist, not a list
 * of secret names: `?access_token=` went through the first version (found by the review of 7 December, sixth session).
 */
const LOGGED_QUERY_PARAMETERS: ReadonlySet<string> = new Set([
  "protocol",
  "client",
  "version",
  "flash",
  "symbol",
  "symbols",
  "timeframe",
  "limit",
  "cursor",
  "from",
  "to",
  "direction",
  "status",
  "kind",
  "depth",
]);

/** A request's path and query with every value but those of LOGGED_QUERY_PARAMETERS replaced. */
export function redactedUrl(url: string): string {
  const query = url.indexOf("?");
  if (query < 0) return url;
  const parameters = url
    .slice(query + 1)
    .split("&")
    .map((pair) => {
      const equals = pair.indexOf("=");
      if (equals < 0) return pair;
      const name = decodeURIComponentSafely(pair.slice(0, equals)).toLowerCase();
      return LOGGED_QUERY_PARAMETERS.has(name) ? pair : `${pair.slice(0, equals)}=[redacted]`;
    });
  return `${url.slice(0, query)}?${parameters.join("&")}`;
}

function decodeURIComponentSafely(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Where the lines go: standard output for info, standard error for warnings and errors (both formats). */
export interface LogStreams {
  readonly out: (line: string) => void;
  readonly error: (line: string) => void;
}

export interface ServerLog extends PlatformLog {
  /** Fastify's logger options for the request log, or false when requests are not logged. */
  readonly requests: FastifyServerOptions["logger"];
}

export function createServerLog(
  format: LogFormat,
  logRequests: boolean,
  streams: LogStreams,
  now: () => Date = () => new Date(),
): ServerLog {
  const requests = logRequests
    ? {
        level: "info",
        // The same fields as the server's own JSON lines: an ISO time, no pid or hostname.
        base: null,
        timestamp: pino.stdTimeFunctions.isoTime,
        stream: { write: (line: string) => streams.out(line.replace(/\n$/, "")) },
        // Method, path (query values redacted but for plain ones), address and status: no header, no body, so no
        // token or password.
        serializers: {
          req: (request: { method: string; url: string; ip?: string }) => ({
            method: request.method,
            url: redactedUrl(request.url),
            remoteAddress: request.ip,
          }),
          res: (reply: { statusCode: number }) => ({ statusCode: reply.statusCode }),
        },
      }
    : (false as const);
  if (format === "json") {
    const lines = (write: (line: string) => void): Logger =>
      pino(
        { base: null, timestamp: pino.stdTimeFunctions.isoTime },
        { write: (line) => write(line.replace(/\n$/, "")) },
      );
    const out = lines(streams.out);
    const error = lines(streams.error);
    return {
      info: (message) => out.info(message),
      warn: (message) => error.warn(message),
      error: (message) => error.error(message),
      requests,
    };
  }
  const line = (level: string, message: string) => `${now().toISOString()} ${level} ${message}`;
  return {
    info: (message) => streams.out(line("INFO", message)),
    warn: (message) => streams.error(line("WARN", message)),
    error: (message) => streams.error(line("ERROR", message)),
    requests,
  };
}
