/**
 * The native stream over a real socket (`ws` client): seed 002's example exchange verbatim, every client
 * and server message type, authorization (JWT, API key scopes, authorize message), trading and history
 * with REST's validation, partial fills on a thin book, and errors for bad messages.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, pushQuote, signUp, startTestServer, type TestServer } from "./helpers.ts";
import { listenStream, StreamClient, type Message } from "./ws-helpers.ts";

type User = Awaited<ReturnType<typeof signUp>>;

let server: TestServer;
let url: string;
beforeAll(async () => {
  server = await startTestServer();
  url = await listenStream(server);
  await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  await pushQuote(server, "GBPUSD", "1.26500", "1.26520");
});
afterAll(async () => {
  await server.close();
});

const clients: StreamClient[] = [];
async function connect(user: User | string | null): Promise<StreamClient> {
  const client = await StreamClient.connect(url, typeof user === "string" || user === null ? user : user.token);
  clients.push(client);
  return client;
}
afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
});

async function createKey(user: User, scope: "read" | "trade" | "full") {
  const response = await call(server, "PUT", "/api/v1/api-keys", {
    token: user.token,
    body: { name: "bot", accountId: user.login, scope },
  });
  expect(response.status).toBe(200);
  return response.body.data.key as string;
}

const execution =
  (event: string, extra: (message: Message) => boolean = () => true) =>
  (message: Message) =>
    message.type === "executionEvent" && message.payload.event === event && extra(message);

describe("seed 002's example exchange", () => {
  it("echoes the subscription exactly, streams quotes, and answers createOrder with executionEvents", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.ws.send(
      '{ "type": "subscribe", "payload": { "symbols": ["EURUSD", "GBPUSD"], "events": ["quoteEvent", "executionEvent"] } }',
    );
    await client.nextOf("subscribed");
    expect(client.raw[0]).toBe(
      '{"type":"subscribed","payload":{"symbols":["EURUSD","GBPUSD"],"events":["quoteEvent","executionEvent"]}}',
    );
    // The latest quote of each symbol at once, then every change.
    const snapshots = [await client.nextOf("quoteEvent"), await client.nextOf("quoteEvent")];
    expect(snapshots.map((message) => message.payload.symbol).sort()).toEqual(["EURUSD", "GBPUSD"]);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const quote = await client.nextOf("quoteEvent", (message) => message.payload.symbol === "EURUSD");
    expect(quote.payload).toEqual({ symbol: "EURUSD", bid: 1.0843, ask: 1.0844, ts: "2026-06-02T12:00:00.000Z" });

    client.send("createOrder", {
      accountId: String(user.login),
      symbol: "EURUSD",
      side: "BUY",
      quantity: 10000,
      type: "MARKET",
    });
    const accepted = await client.next(execution("ORDER_ACCEPTED"));
    expect(accepted.payload).toMatchObject({
      accountId: user.login,
      symbol: "EURUSD",
      status: "PLACED",
      order: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1, quantity: 10000 },
    });
    expect(accepted.payload.seq).toEqual(expect.any(Number));
    const deal = await client.next(execution("DEAL"));
    expect(deal.payload.deal).toMatchObject({ side: "BUY", entry: "IN", volume: 0.1, price: 1.0844 });
    const filled = await client.next(execution("ORDER_STATUS"));
    expect(filled.payload).toMatchObject({ status: "FILLED", filledVolume: 0.1, symbol: "EURUSD" });
    expect(deal.payload.seq).toBeGreaterThan(accepted.payload.seq);
    expect(filled.payload.seq).toBeGreaterThan(deal.payload.seq);
    // Without an id, no result: the execution events are the answer.
    expect(client.all("result")).toEqual([]);
  });
});

describe("authorization", () => {
  it("closes at once with 4001 after an error for an invalid token", async () => {
    const client = await connect("not-a-token");
    const error = await client.nextOf("error");
    expect(error.payload.code).toBe("UNAUTHORIZED");
    expect((await client.closed).code).toBe(4001);
  });

  it("authorizes with a first authorize message and answers authorized", async () => {
    const user = await signUp(server);
    const client = await connect(null);
    client.send("authorize", { token: user.token }, 1);
    const authorized = await client.nextOf("authorized");
    expect(authorized).toEqual({ type: "authorized", payload: { accountIds: [user.login], scope: "full" }, id: 1 });
  });

  it("answers ping with pong echoing the id", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("ping", {}, "p1");
    expect(await client.nextOf("pong")).toEqual({ type: "pong", payload: {}, id: "p1" });
  });

  it("closes a socket whose first message is not authorize with 4001", async () => {
    const client = await connect(null);
    client.send("subscribe", { symbols: ["EURUSD"], events: ["quoteEvent"] });
    expect((await client.nextOf("error")).payload.code).toBe("UNAUTHORIZED");
    expect((await client.closed).code).toBe(4001);
  });

  it("closes with 4002 when no authorize comes in time", async () => {
    const previous = server.nativeStream.limits.authTimeoutMs;
    server.nativeStream.limits.authTimeoutMs = 50;
    try {
      const client = await connect(null);
      expect((await client.nextOf("error")).payload.code).toBe("UNAUTHORIZED");
      expect((await client.closed).code).toBe(4002);
    } finally {
      server.nativeStream.limits.authTimeoutMs = previous;
    }
  });

  it("closes with 4001 after a logout revoked the session", async () => {
    const user = await signUp(server);
    expect((await call(server, "POST", "/api/v1/logout", { token: user.token })).status).toBe(200);
    const client = await connect(user);
    expect((await client.nextOf("error")).payload.code).toBe("SESSION_REVOKED");
    expect((await client.closed).code).toBe(4001);
  });

  it("refuses another user's account with FORBIDDEN and streams nothing of it", async () => {
    const owner = await signUp(server);
    const other = await signUp(server);
    const client = await connect(other);
    const answer = await client.request("subscribe", { events: ["executionEvent"], accountId: owner.login });
    expect(answer.payload.code).toBe("FORBIDDEN");
    const history = await client.request("dealHistory", { accountId: owner.login });
    expect(history.payload.code).toBe("FORBIDDEN");
    const order = await client.request("createOrder", {
      accountId: owner.login,
      symbol: "EURUSD",
      side: "BUY",
      type: "MARKET",
      volume: 0.01,
    });
    expect(order.payload.code).toBe("FORBIDDEN");
  });

  it("lets an API key of scope read stream and read history but not trade; trade keys trade", async () => {
    const user = await signUp(server);
    const readKey = await createKey(user, "read");
    const reader = await connect(readKey);
    reader.send("subscribe", { events: ["executionEvent"] }, "s");
    const ack = await reader.nextOf("subscribed");
    expect(ack).toEqual({ type: "subscribed", payload: { events: ["executionEvent"] }, id: "s" });
    const refused = await reader.request("createOrder", {
      symbol: "EURUSD",
      side: "BUY",
      type: "MARKET",
      volume: 0.01,
    });
    expect(refused.payload.code).toBe("FORBIDDEN");
    expect((await reader.request("orderHistory", {})).type).toBe("result");

    const trader = await connect(await createKey(user, "trade"));
    const placed = await trader.request("createOrder", { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01 });
    expect(placed.type).toBe("result");
    expect(placed.payload.data.order).toMatchObject({ accountId: user.login, status: "FILLED", volume: 0.01 });
    // The read key's socket saw the fill of its account.
    await reader.next(execution("DEAL"));
    const other = await signUp(server);
    const elsewhere = await trader.request("subscribe", { events: ["executionEvent"], accountId: other.login });
    expect(elsewhere.payload.code).toBe("FORBIDDEN");
  });
});
