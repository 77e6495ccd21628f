/**
 * Helpers for the native stream tests: a test server listening on a free port, and a client on the real
 * `ws` package that records every message and waits for the ones a test expects.
 */
import type { AddressInfo } from "node:net";
import { WebSocket, type ClientOptions } from "ws";
import type { BourseServer } from "../src/server.ts";

/** Listens on a free local port (the server is started already); answers the stream's URL. */
export async function listenStream(server: BourseServer): Promise<string> {
  if (!server.app.server.listening) await server.app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = server.app.server.address() as AddressInfo;
  return `ws://127.0.0.1:${port}/api/v1/ws`;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Message = { type: string; payload: any; id?: string | number };

export class StreamClient {
  /** Every text message received, raw, in order. */
  readonly raw: string[] = [];
  readonly messages: Message[] = [];
  private consumed = 0;
  private readonly waiters = new Set<() => void>();
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      const text = data.toString();
      this.raw.push(text);
      this.messages.push(JSON.parse(text) as Message);
      for (const waiter of [...this.waiters]) waiter();
    });
    this.closed = new Promise((resolve) =>
      ws.on("close", (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const waiter of [...this.waiters]) waiter();
      }),
    );
    this.opened = new Promise((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    ws.on("error", () => undefined);
  }

  static async connect(url: string, token?: string | null, options: ClientOptions = {}): Promise<StreamClient> {
    const client = new StreamClient(
      new WebSocket(token ? `${url}?token=${encodeURIComponent(token)}` : url, { ...options }),
    );
    await client.opened;
    return client;
  }

  send(type: string, payload?: unknown, id?: string | number): void {
    this.ws.send(JSON.stringify(id === undefined ? { type, payload } : { type, payload, id }));
  }

  /** Sends a request with an id and waits for its `result` or `error`. */
  async request(type: string, payload: unknown, id: string | number = `r${Math.random()}`): Promise<Message> {
    this.send(type, payload, id);
    return this.next((message) => message.id === id && (message.type === "result" || message.type === "error"));
  }

  /**
   * The first message not returned yet that `predicate` accepts (waiting for it); messages before it that
   * do not match stay available to later calls.
   */
  next(predicate: (message: Message) => boolean = () => true, timeoutMs = 3000): Promise<Message> {
    return new Promise((resolve, reject) => {
      const look = (): boolean => {
        for (let index = this.consumed; index < this.messages.length; index += 1) {
          const message = this.messages[index]!;
          if ((message as { taken?: boolean }).taken) continue;
          if (predicate(message)) {
            Object.defineProperty(message, "taken", { value: true, enumerable: false });
            while (this.consumed < this.messages.length && (this.messages[this.consumed] as { taken?: boolean }).taken)
              this.consumed += 1;
            return (resolve(message), true);
          }
        }
        return false;
      };
      if (look()) return;
      const waiter = () => {
        if (look()) {
          clearTimeout(timer);
          this.waiters.delete(waiter);
        } else if (this.ws.readyState === WebSocket.CLOSED) {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          reject(new Error(`closed while waiting; got ${JSON.stringify(this.messages.slice(-5))}`));
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out waiting; last messages: ${JSON.stringify(this.messages.slice(-5))}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** The next message of a type (optionally matching). */
  nextOf(type: string, predicate: (message: Message) => boolean = () => true, timeoutMs?: number): Promise<Message> {
    return this.next((message) => message.type === type && predicate(message), timeoutMs);
  }

  /** Messages of a type received so far (taken or not). */
  all(type: string): Message[] {
    return this.messages.filter((message) => message.type === type);
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close();
    return this.closed;
  }
}
