/**
 * Helpers for the native stream tests: a test server listening on a free port, and a client on the real
 * `ws` package that records every message and waits for the ones a test expects.
 */
import type { AddressInfo } from "node:net";
import { WebSocket, type ClientOptions } from "ws";
import type { BourseServer } from "../src/server.ts";
import { afterAll, beforeAll } from "vitest";
import { pushQuote, startTestServer, type TestServer } from "./helpers.ts";
import { RecordingSocket } from "./recording-socket.ts";

/** Listens on a free local port (the server is started already); answers the stream's URL. */
export async function listenStream(server: BourseServer): Promise<string> {
  if (!server.app.server.listening) await server.app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = server.app.server.address() as AddressInfo;
  return `ws://127.0.0.1:${port}/api/v1/ws`;
}

export interface StreamServer {
  /** The test server (set once the file's `beforeAll` has run). */
  readonly server: TestServer;
  readonly url: string;
  /** A client signed in with `token`, closed when the file's tests end. */
  connect(token: string): Promise<StreamClient>;
}

/**
 * A test file's stream server, started in its `beforeAll` with `environment` and EURUSD quoted at 1.08000/1.08010,
 * and closed in its `afterAll` with every client `connect` opened.
 */
export function streamServer(environment: NodeJS.ProcessEnv = {}): StreamServer {
  const clients: StreamClient[] = [];
  const fixture = {
    server: undefined as unknown as TestServer,
    url: "",
    async connect(token: string): Promise<StreamClient> {
      const client = await StreamClient.connect(fixture.url, token);
      clients.push(client);
      return client;
    },
  };
  beforeAll(async () => {
    fixture.server = await startTestServer({ environment });
    fixture.url = await listenStream(fixture.server);
    await pushQuote(fixture.server, "EURUSD", "1.08000", "1.08010");
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await fixture.server.close();
  });
  return fixture;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Message = { type: string; payload: any; id?: string | number };

export class StreamClient extends RecordingSocket<Message> {
  /** Every text message received, raw, in order. */
  readonly raw: string[] = [];

  private constructor(ws: WebSocket) {
    super(ws, (text) => JSON.parse(text) as Message);
  }

  protected override received(text: string): void {
    this.raw.push(text);
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

  /** The next message of a type (optionally matching). */
  nextOf(type: string, predicate: (message: Message) => boolean = () => true, timeoutMs?: number): Promise<Message> {
    return this.next((message) => message.type === type && predicate(message), timeoutMs);
  }

  /** A market buy of 0.01 lot of EURUSD for the account, and its answer (`result` or `error`). */
  buyEurusd(accountId: number): Promise<Message> {
    return this.request("createOrder", { accountId, symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01 });
  }

  /** Pings and takes the next pong, which must echo the ping: the socket is open and still answers. */
  async expectOpen(): Promise<void> {
    this.send("ping", {}, "still open");
    const pong = await this.nextOf("pong");
    if (pong.id !== "still open") throw new Error(`the pong echoed ${JSON.stringify(pong.id)}, not "still open"`);
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
