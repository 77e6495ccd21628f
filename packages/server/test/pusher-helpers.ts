/**
 * Helpers for the Pusher endpoint tests: a listening test server, real HTTP calls (pusher-js posts its
 * channel auth over HTTP, so the tests do too), and a raw `ws` client that speaks Pusher frames and waits
 * for the ones a test expects.
 */
import type { AddressInfo } from "node:net";
import { WebSocket, type ClientOptions } from "ws";
import type { BourseServer } from "../src/server.ts";
import { RecordingSocket } from "./recording-socket.ts";

/** Listens on a free local port (the server is started already); answers `http://127.0.0.1:PORT`. */
export async function listenHttp(server: BourseServer): Promise<string> {
  if (!server.app.server.listening) await server.app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = server.app.server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

/** A real HTTP request with an optional bearer token; answers status and parsed body. */
export async function http(
  base: string,
  method: string,
  path: string,
  options: { token?: string | null; body?: unknown; form?: Record<string, string> } = {},
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.form) {
    headers["content-type"] = "application/x-www-form-urlencoded";
    body = new URLSearchParams(options.form).toString();
  } else if (options.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  const response = await fetch(base + path, { method, headers, body });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: text };
  }
}

export interface PusherMessage {
  event: string;
  channel?: string;
  /** The raw `data` string as sent. */
  rawData: unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  data: any;
}

/** A raw Pusher protocol client on the `ws` package: records frames, answers nothing by itself. */
export class RawPusherClient extends RecordingSocket<PusherMessage> {
  private constructor(ws: WebSocket) {
    super(ws, (text) => {
      const frame = JSON.parse(text) as { event: string; channel?: string; data: unknown };
      const data = typeof frame.data === "string" ? JSON.parse(frame.data) : frame.data;
      return { event: frame.event, channel: frame.channel, rawData: frame.data, data };
    });
  }

  /** Connects to `ws://host/app/{appKey}?protocol=7` (or the `path` given); `options` adds headers and the like. */
  static async connect(base: string, path: string, options: ClientOptions = {}): Promise<RawPusherClient> {
    const client = new RawPusherClient(
      new WebSocket(base.replace(/^http/, "ws") + path, { autoPong: true, ...options }),
    );
    await client.opened;
    return client;
  }

  send(event: string, data: unknown, channel?: string): void {
    this.ws.send(JSON.stringify(channel === undefined ? { event, data } : { event, data, channel }));
  }

  event(event: string, channel?: string, timeoutMs?: number): Promise<PusherMessage> {
    return this.next(
      (message) => message.event === event && (channel === undefined || message.channel === channel),
      timeoutMs,
    );
  }

  /** The socket id of connection_established. */
  async socketId(): Promise<string> {
    return (await this.event("pusher:connection_established")).data.socket_id as string;
  }

  close(): void {
    this.ws.close();
  }
}

/** Resolves when `check` returns true (polling every 10 ms), or rejects after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs = 3000, what = "condition"): Promise<void> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
