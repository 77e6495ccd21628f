/**
 * The native stream over a real socket (`ws` client): seed 002's example exchange verbatim, every client
 * and server message type, authorization (JWT, API key scopes, authorize message), trading and history
 * with REST's validation, partial fills on a thin book, and errors for bad messages.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { admin, call, pushQuote, settle, signUp, startTestServer, tableObjects, type TestServer } from "./helpers.ts";
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
    expect(authorized).toEqual({
      type: "authorized",
      payload: { accountIds: [user.login], scope: "full", expiresAt: "2026-06-02T13:00:00.000Z" },
      id: 1,
    });
  });

  it("answers ping with pong echoing the id", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("ping", {}, "p1");
    // With the server's clock, by which a client measures its offset.
    expect(await client.nextOf("pong")).toEqual({
      type: "pong",
      payload: { serverTime: "2026-06-02T12:00:00.000Z" },
      id: "p1",
    });
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

describe("bad messages and limits", () => {
  it("answers INVALID_DATA for bad JSON, a bad envelope, an unknown type and a payload REST would refuse", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.ws.send("{not json");
    expect((await client.nextOf("error")).payload.code).toBe("INVALID_DATA");
    client.ws.send(JSON.stringify({ type: "subscribe", payload: {}, extra: 1, id: 3 }));
    expect(await client.nextOf("error")).toMatchObject({ payload: { code: "INVALID_DATA" }, id: 3 });
    const unknown = await client.request("fly", {});
    expect(unknown.payload).toEqual({ code: "INVALID_DATA", message: "Unknown message type: fly" });
    // On 5de6eff the names of plain objects' members found no handler but a built-in: no answer at all.
    for (const type of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      const member = await client.request(type, {});
      expect(member.payload, type).toEqual({ code: "INVALID_DATA", message: `Unknown message type: ${type}` });
    }
    const extraField = await client.request("createOrder", {
      symbol: "EURUSD",
      side: "BUY",
      type: "MARKET",
      volume: 0.01,
      balance: 1e9,
    });
    expect(extraField.payload.code).toBe("INVALID_DATA");
    // The same answer as REST for the same body.
    for (const body of [
      { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.001 },
      { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: "0.0100000001" },
      { symbol: "EURUSD", side: "BUY", volume: 0.01 },
      { symbol: "EURUSD", cmd: 0, side: "BUY", volume: 0.01 },
      { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01, quantity: 1000 },
    ]) {
      const rest = await call(server, "POST", `/api/v1/accounts/${user.login}/orders`, { token: user.token, body });
      const socket = await client.request("createOrder", body);
      expect(rest.status).toBeGreaterThanOrEqual(400);
      expect(socket.payload).toEqual({ code: rest.body.error, message: rest.body.message });
    }
    const unknownSymbol = await client.request("depthSubscribe", { symbol: "NOPE" });
    expect(unknownSymbol.payload.code).toBe("UNKNOWN_SYMBOL");
    const noSymbols = await client.request("subscribe", { events: ["quoteEvent"] });
    expect(noSymbols.payload.code).toBe("INVALID_DATA");
    const badEvent = await client.request("subscribe", { symbols: ["EURUSD"], events: ["tradeEvent"] });
    expect(badEvent.payload.code).toBe("INVALID_DATA");
    const badHistory = await client.request("dealHistory", { limit: 0 });
    expect(badHistory.payload.code).toBe("INVALID_DATA");
    client.ws.send(Buffer.from([1, 2, 3]));
    expect((await client.nextOf("error")).payload.code).toBe("INVALID_DATA");
    // Still open and serving.
    client.send("ping", {}, "alive");
    expect((await client.nextOf("pong")).id).toBe("alive");
  });

  it("limits subscriptions per socket with LIMIT_REACHED and subscribes nothing of the refused request", async () => {
    const limits = server.nativeStream.limits;
    const previous = limits.maxSubscriptions;
    limits.maxSubscriptions = 2;
    try {
      const client = await connect(await signUp(server));
      client.send("subscribe", { symbols: ["EURUSD"], events: ["quoteEvent"] });
      await client.nextOf("subscribed");
      const refused = await client.request("subscribe", { symbols: ["GBPUSD", "USDJPY"], events: ["quoteEvent"] });
      expect(refused.payload.code).toBe("LIMIT_REACHED");
      await pushQuote(server, "GBPUSD", "1.26500", "1.26520");
      await pushQuote(server, "EURUSD", "1.08431", "1.08441");
      await client.nextOf("quoteEvent", (message) => message.payload.bid === 1.08431);
      expect(client.all("quoteEvent").some((message) => message.payload.symbol !== "EURUSD")).toBe(false);
    } finally {
      limits.maxSubscriptions = previous;
    }
  });

  it("answers RATE_LIMITED over the message rate and closes with 4029 when it goes on", async () => {
    const limits = server.nativeStream.limits;
    const previous = limits.messagesPerSecond;
    limits.messagesPerSecond = 5;
    try {
      const client = await connect(await signUp(server));
      for (let index = 0; index < 8; index += 1) client.send("ping", {}, index);
      const limited = await client.nextOf("error");
      expect(limited.payload.code).toBe("RATE_LIMITED");
      // The refusal echoes the refused message's id, so a client waiting on it learns it was dropped (it had none).
      // (The first five fit the burst; a token comes back every 200 ms.)
      expect(limited.id).toBeGreaterThanOrEqual(5);
      expect(limited.id).toBeLessThan(8);
      expect(client.all("pong").length).toBeLessThanOrEqual(5);
      for (let index = 0; index < 20; index += 1) client.send("ping", {});
      expect((await client.closed).code).toBe(4029);
    } finally {
      limits.messagesPerSecond = previous;
    }
  });

  it("closes with 1009 on a message over the size limit", async () => {
    const client = await connect(await signUp(server));
    client.send("ping", { padding: "x".repeat(70 * 1024) });
    expect((await client.closed).code).toBe(1009);
  });

  it("closes a client that does not answer pings with 4009", async () => {
    const user = await signUp(server);
    const silent = await StreamClient.connect(`${url}?token=${user.token}`, null, { autoPong: false });
    clients.push(silent);
    server.nativeStream.setPingInterval(40);
    try {
      expect((await silent.closed).code).toBe(4009);
    } finally {
      server.nativeStream.setPingInterval(20_000);
    }
  });
});

describe("market data", () => {
  // Found by the audit of a terminal's journey of 7 December (sixth session): a chart on the native stream had only
  // conflated quotes, which miss highs and lows; the bars came only through the Pusher face.
  it("streams the bars of a symbol and timeframe as they form, the live bar at once, until candleUnsubscribe", async () => {
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const client = await connect(await signUp(server));
    client.send("candleSubscribe", { symbol: "eurusd", timeframe: "M1" }, "c");
    expect(await client.nextOf("subscribed")).toEqual({
      type: "subscribed",
      payload: { symbol: "eurusd", timeframe: "M1" },
      id: "c",
    });
    const live = await client.nextOf("candleEvent");
    expect(live.payload).toMatchObject({ symbol: "EURUSD", timeframe: "M1", close: 1.0843, closed: false });
    await pushQuote(server, "EURUSD", "1.08470", "1.08480");
    await pushQuote(server, "EURUSD", "1.08410", "1.08420");
    const updated = await client.nextOf("candleEvent", (message) => message.payload.close === 1.0841);
    expect(updated.payload).toMatchObject({
      symbol: "EURUSD",
      timeframe: "M1",
      time: live.payload.time,
      high: expect.any(Number),
      low: expect.any(Number),
    });
    expect(updated.payload.high).toBeGreaterThanOrEqual(1.0847);
    expect(updated.payload.low).toBeLessThanOrEqual(1.0841);
    const unknown = await client.request("candleSubscribe", { symbol: "NOPE", timeframe: "M1" });
    expect(unknown.payload.code).toBe("UNKNOWN_SYMBOL");
    const badTimeframe = await client.request("candleSubscribe", { symbol: "EURUSD", timeframe: "1h" });
    expect(badTimeframe.payload).toEqual({
      code: "INVALID_DATA",
      message: "timeframe must be one of: M1, M5, M15, M30, H1, H4, D1, W1, MN1",
    });
    client.send("candleUnsubscribe", { symbol: "EURUSD", timeframe: "M1" }, "u");
    await client.nextOf("unsubscribed");
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    client.send("ping", {}, "after");
    await client.next((message) => message.id === "after");
    const types = client.raw.map((text) => (JSON.parse(text) as { type: string }).type);
    expect(types.slice(types.indexOf("unsubscribed") + 1)).not.toContain("candleEvent");
  });

  // Found by the review of 7 December (sixth session): the live bar was held under the bar's key, which the
  // unsubscribe did not drop, and went out after `unsubscribed`.
  it("sends a bar whose period is over, with no quote since, as closed, not as the live bar", async () => {
    // A server of its own: its clock moves on, which no other test here expects.
    const own = await startTestServer();
    try {
      const ownUrl = await listenStream(own);
      await pushQuote(own, "EURUSD", "1.08430", "1.08440");
      own.clock.set(own.clock.now() + 120_000);
      const user = await signUp(own);
      const client = await StreamClient.connect(ownUrl, user.token);
      clients.push(client);
      client.send("candleSubscribe", { symbol: "EURUSD", timeframe: "M1" }, "s");
      expect((await client.nextOf("candleEvent")).payload).toMatchObject({ timeframe: "M1", closed: true });
    } finally {
      await own.close();
    }
  });

  it("sends no candleEvent after the unsubscribed of a subscribe and unsubscribe sent back to back", async () => {
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const client = await connect(await signUp(server));
    client.send("candleSubscribe", { symbol: "EURUSD", timeframe: "M1" }, "s");
    client.send("candleUnsubscribe", { symbol: "EURUSD", timeframe: "M1" }, "u");
    await client.nextOf("unsubscribed");
    client.send("ping", {}, "after");
    await client.next((message) => message.id === "after");
    const types = client.raw.map((text) => (JSON.parse(text) as { type: string }).type);
    expect(types.slice(types.indexOf("unsubscribed") + 1)).not.toContain("candleEvent");
  });

  it("streams depth with the requested levels, conflated, and stops after depthUnsubscribe", async () => {
    const client = await connect(await signUp(server));
    client.send("depthSubscribe", { symbol: "EURUSD", depth: 2 }, "d");
    expect(await client.nextOf("subscribed")).toEqual({
      type: "subscribed",
      payload: { symbol: "EURUSD", depth: 2 },
      id: "d",
    });
    await client.nextOf("depthEvent"); // the current book at once
    const book = {
      symbol: "EURUSD",
      bid: "1.08430",
      ask: "1.08440",
      bids: [
        { price: "1.08430", volume: 1 },
        { price: "1.08420", volume: 2 },
        { price: "1.08410", volume: 3 },
      ],
      asks: [
        { price: "1.08440", volume: 0.5 },
        { price: "1.08450", volume: 1.5 },
        { price: "1.08460", volume: 2.5 },
      ],
    };
    expect((await admin(server, "POST", "/admin/v1/quotes", book)).status).toBe(200);
    const depth = await client.nextOf("depthEvent");
    expect(depth.payload).toEqual({
      symbol: "EURUSD",
      bids: [
        { price: 1.0843, volume: 1 },
        { price: 1.0842, volume: 2 },
      ],
      asks: [
        { price: 1.0844, volume: 0.5 },
        { price: 1.0845, volume: 1.5 },
      ],
      ts: "2026-06-02T12:00:00.000Z",
    });
    client.send("depthUnsubscribe", { symbol: "EURUSD" });
    expect((await client.nextOf("unsubscribed")).payload).toEqual({ symbol: "EURUSD" });
    const seen = client.all("depthEvent").length;
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    client.send("ping", {}, "after");
    await client.nextOf("pong");
    expect(client.all("depthEvent").length).toBe(seen);
  });

  it("stops quotes after unsubscribe", async () => {
    const client = await connect(await signUp(server));
    client.send("subscribe", { symbols: ["EURUSD"], events: ["quoteEvent"] });
    await client.nextOf("subscribed");
    await client.nextOf("quoteEvent");
    client.send("unsubscribe", { symbols: ["EURUSD"], events: ["quoteEvent"] }, 9);
    expect(await client.nextOf("unsubscribed")).toEqual({
      type: "unsubscribed",
      payload: { symbols: ["EURUSD"], events: ["quoteEvent"] },
      id: 9,
    });
    await pushQuote(server, "EURUSD", "1.08432", "1.08442");
    client.send("ping", {}, "after");
    await client.nextOf("pong");
    expect(client.all("quoteEvent").length).toBe(1);
  });
});

describe("account stream filters", () => {
  // Found by the audit of the stream of 7 December: removing symbols from an every-symbol subscription was
  // acknowledged and changed nothing, and an empty symbol list subscribed to nothing at all.
  it("refuses to unsubscribe symbols from an every-symbol subscription, and an empty symbol list", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("subscribe", { events: ["executionEvent"] }, 1);
    await client.nextOf("subscribed");
    client.send("subscribe", { events: ["quoteEvent"], symbols: ["EURUSD"] }, 3);
    await client.next((message) => message.type === "subscribed" && message.id === 3);
    // Refused whole: the quotes named beside the account events stay subscribed (the review of 7 December found
    // them left before the refusal).
    const partial = await client.request("unsubscribe", {
      symbols: ["EURUSD"],
      events: ["quoteEvent", "executionEvent"],
    });
    expect(partial.type).toBe("error");
    expect(partial.payload.code).toBe("INVALID_DATA");
    expect(partial.payload.message).toContain("executionEvent is subscribed for every symbol");
    const empty = await client.request("subscribe", { symbols: [], events: ["executionEvent"] });
    expect(empty.payload.code).toBe("INVALID_DATA");
    await pushQuote(server, "EURUSD", "1.08431", "1.08441");
    await client.nextOf("quoteEvent", (message) => message.payload.bid === 1.08431);
    expect((await client.buyEurusd(user.login)).type).toBe("result");
    await client.nextOf("executionEvent", (message) => message.payload.event === "DEAL");
    client.send("unsubscribe", { events: ["executionEvent"] }, 2);
    await client.nextOf("unsubscribed");
  });
});

describe("account streams", () => {
  // Seed 000's balance stream told deposits, withdrawals, credit and corrections only: a close's profit changed the
  // balance without a balanceEvent (found by the audit of the stream of 7 December).
  it("streams a balanceEvent for every change of the balance: a close's profit, not the opening deal's nothing", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("subscribe", { events: ["balanceEvent"], symbols: ["GBPUSD"] });
    await client.nextOf("subscribed");
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const bought = await client.buyEurusd(user.login);
    await pushQuote(server, "EURUSD", "1.08540", "1.08550");
    const closed = await client.request("closePosition", { positionId: bought.payload.data.positionId });
    const change = await client.nextOf("balanceEvent");
    expect(change.payload).toMatchObject({
      accountId: user.login,
      event: "DEAL",
      dealId: closed.payload.data.deals[0].id,
      positionId: bought.payload.data.positionId,
      amount: 1,
    });
    expect(change.payload.seq).toBeGreaterThan(0);
    await client.expectOpen();
    // The opening deal moved no money: no event for it; the symbol filter (GBPUSD) hides none of them.
    expect(client.all("balanceEvent")).toHaveLength(1);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  });

  // Found by the review of 7 December: a rollover's charge was told as a balance change of its own, though it accrues
  // on the position and reaches the balance in the closing deal, which told it again.
  it("tells a rollover's swap once, in the closing deal's balanceEvent: the events add up to the balance", async () => {
    const own = await startTestServer();
    try {
      const ownUrl = await listenStream(own);
      const user = await signUp(own);
      const client = await StreamClient.connect(ownUrl, user.token);
      clients.push(client);
      client.send("subscribe", { events: ["balanceEvent", "portfolioEvent"] });
      await client.nextOf("subscribed");
      await pushQuote(own, "EURUSD", "1.08430", "1.08440");
      const bought = await client.request("createOrder", { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 1 });
      own.clock.advance(11 * 3_600_000); // past the 22:00 rollover
      await pushQuote(own, "EURUSD", "1.08430", "1.08440");
      const swap = await client.nextOf("portfolioEvent", (message) => message.payload.event === "SWAP");
      expect(swap.payload.amount).toBe(-7.2);
      await client.request("closePosition", { positionId: bought.payload.data.positionId });
      await client.nextOf("balanceEvent");
      await client.expectOpen();
      // (The user's token has expired meanwhile: the back office reads the account.)
      const account = await admin(own, "GET", `/admin/v1/accounts/${user.login}`);
      const told = client.all("balanceEvent").map((message) => message.payload.amount as number);
      // 1 lot bought at the ask, sold at the bid 10 points lower (-10.00), and the rollover's -7.20.
      expect(told).toEqual([-17.2]);
      expect(account.body.data.balance).toBe(10000 - 17.2);
    } finally {
      await own.close();
    }
  });

  it("streams metrics: a snapshot at once, then the changes to the cent", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("metricsSubscribe", { accountId: user.login });
    await client.nextOf("subscribed");
    const first = await client.nextOf("metricsEvent");
    expect(first.payload).toMatchObject({
      accountId: user.login,
      balance: 10000,
      equity: 10000,
      margin: 0,
      freeMargin: 10000,
      marginLevel: null,
      profit: 0,
      positions: [],
    });
    const { MetricsPublisher } = await import("../src/account-metrics.ts");
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    await client.request("createOrder", { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 1 }, "buy");
    // The publisher's timer (every 250 ms) may publish between the order and the next quote; here it always does.
    MetricsPublisher.for(server.platform).publishChanges();
    const bought = await client.nextOf("metricsEvent", (message) => message.payload.profit !== 0);
    // Bought at the ask 1.08440, valued at the bid 1.08430: -10 points × 100,000 units = -10.00 USD, the spread.
    expect(bought.payload).toMatchObject({ accountId: user.login, profit: -10, equity: 9990, balance: 10000 });
    await pushQuote(server, "EURUSD", "1.08530", "1.08540");
    MetricsPublisher.for(server.platform).publishChanges();
    const after = await client.nextOf("metricsEvent", (message) => message.payload.profit > 0);
    // 1 lot bought at 1.08440, bid now 1.08530: +90 points × 100,000 units = 90.00 USD.
    expect(after.payload).toMatchObject({ accountId: user.login, profit: 90, equity: 10090, balance: 10000 });
    // Each position's own figures, as the positions table gives them (the audit of a terminal's journey of 7 December,
    // sixth session: only the account's total came).
    const positions = await call(server, "GET", `/api/v1/accounts/${user.login}/positions`, { token: user.token });
    const [position] = tableObjects(positions.body);
    expect(after.payload.positions).toEqual([{ positionId: position!.id, currentPrice: 1.0853, profit: 90, swap: 0 }]);
    expect(position).toMatchObject({ currentPrice: 1.0853, profit: 90 });
    client.send("metricsUnsubscribe", { accountId: user.login });
    await client.nextOf("unsubscribed");
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  });

  it("streams portfolio and balance events with seq, and the seed 000 notification stream", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("subscribe", { events: ["portfolioEvent", "balanceEvent", "notificationEvent"] });
    await client.nextOf("subscribed");
    expect((await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: "250.50" })).status).toBe(
      200,
    );
    const balance = await client.nextOf("balanceEvent");
    expect(balance.payload).toMatchObject({
      accountId: user.login,
      event: "BALANCE_OPERATION",
      kind: "DEPOSIT",
      amount: 250.5,
    });
    const portfolio = await client.nextOf("portfolioEvent");
    expect(portfolio.payload).toMatchObject({ event: "BALANCE", balanceChange: 250.5, seq: balance.payload.seq });
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    await client.request("createOrder", { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 }, "b");
    const opened = await client.nextOf("portfolioEvent", (message) => message.payload.event === "DEAL");
    expect(opened.payload).toMatchObject({
      symbol: "EURUSD",
      side: "BUY",
      entry: "IN",
      effect: "OPEN",
      volume: 0.1,
      price: 1.0844,
    });
    await settle(server);
    const notification = await client.nextOf("notificationEvent");
    expect(notification.payload).toMatchObject({ accountId: user.login, status: "unread" });
    // API.md: seed 000's streams carry `seq` (found by the audit of the API contract: they did not).
    expect(notification.payload.seq).toBe(notification.payload.id);
    expect(typeof notification.payload.title).toBe("string");
  });

  // Found by the audit of a terminal's journey of 7 December (sixth session): a DEAL portfolioEvent did not say what was
  // left of its position, so a terminal could not tell a partial close from a close without asking REST.
  it("says in each DEAL portfolioEvent the position's volume after the deal, 0 once closed", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("subscribe", { events: ["portfolioEvent"] });
    await client.nextOf("subscribed");
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const deal = () => client.nextOf("portfolioEvent", (message) => message.payload.event === "DEAL");
    await client.request("createOrder", { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 }, "open");
    const opened = await deal();
    expect(opened.payload).toMatchObject({ effect: "OPEN", volume: 0.1, positionVolume: 0.1 });
    const positionId = opened.payload.positionId;
    await client.request("closePosition", { accountId: user.login, positionId, volume: 0.04 }, "part");
    expect((await deal()).payload).toMatchObject({
      positionId,
      effect: "DECREASE",
      volume: 0.04,
      positionVolume: 0.06,
    });
    await client.request("closePosition", { accountId: user.login, positionId }, "rest");
    expect((await deal()).payload).toMatchObject({ positionId, effect: "DECREASE", volume: 0.06, positionVolume: 0 });
  });

  it("streams price alerts (seed 000)", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("subscribe", { events: ["priceAlertEvent"] });
    await client.nextOf("subscribed");
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const created = await call(server, "PUT", "/api/v1/alerts", {
      token: user.token,
      body: { symbol: "EURUSD", side: "BID", condition: "GREATER_THAN", targetPrice: 1.085, message: "up" },
    });
    expect(created.status).toBe(200);
    await pushQuote(server, "EURUSD", "1.08600", "1.08610");
    await settle(server);
    const alert = await client.nextOf("priceAlertEvent");
    expect(alert.payload).toMatchObject({ symbol: "EURUSD", side: "BID", message: "up", repeating: false });
    expect(alert.payload.seq).toBe(alert.payload.id);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  });
});

describe("a netting order that adds to its position with stops", () => {
  // Found by the audit of accounts of 7 December (third session): the position took the order's SL and TP, and no
  // stream event said so (the DEAL portfolioEvent carried no stops, and no POSITION_MODIFIED came).
  it("says the position's new SL and TP in its DEAL portfolioEvent", async () => {
    const user = await signUp(server);
    const opened = await call(server, "PUT", "/api/v1/accounts", { token: user.token, body: { mode: "NETTING" } });
    const netting = opened.body.data.login as number;
    const client = await connect(user);
    client.send("subscribe", { events: ["portfolioEvent"], accountId: netting });
    await client.nextOf("subscribed");
    const buy = (extra: Record<string, unknown>) =>
      client.request("createOrder", {
        accountId: netting,
        symbol: "EURUSD",
        side: "BUY",
        type: "MARKET",
        volume: 0.1,
        ...extra,
      });
    expect((await buy({})).type).toBe("result");
    const first = await client.nextOf("portfolioEvent", (message) => message.payload.event === "DEAL");
    expect(first.payload).toMatchObject({ effect: "OPEN" });
    expect(first.payload).not.toHaveProperty("sl");
    expect((await buy({ sl: 1.07, tp: 1.1 })).type).toBe("result");
    const added = await client.nextOf(
      "portfolioEvent",
      (message) => message.payload.event === "DEAL" && message.payload.effect === "INCREASE",
    );
    expect(added.payload).toMatchObject({ effect: "INCREASE", sl: 1.07, tp: 1.1 });
  });
});

describe("a clientOrderId taken already", () => {
  // Found by the audit of idempotency of 7 December (third session): the 409 published ORDER_REJECTED with the id of
  // an order that had filled, so the last status every socket of the account saw for it was REJECTED.
  it("is refused 409 without an ORDER_REJECTED on the stream for the order that has it", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("subscribe", { events: ["executionEvent"] });
    await client.nextOf("subscribed");
    const body = { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01, clientOrderId: "X-1" };
    const orders = `/api/v1/accounts/${user.login}/orders`;
    expect((await call(server, "POST", orders, { token: user.token, body })).status).toBe(200);
    await client.nextOf("executionEvent", (message) => message.payload.status === "FILLED");
    const conflicting = await call(server, "POST", orders, { token: user.token, body: { ...body, volume: 0.02 } });
    expect(conflicting.status).toBe(409);
    await client.expectOpen();
    expect(client.all("executionEvent").map((message) => message.payload.event)).not.toContain("ORDER_REJECTED");
  });
});

describe("the account a message without accountId acts on", () => {
  // Found by the audit of accounts of 7 December (third session): a session signed in to the user's second account
  // (GET /api/v1/account answers it) traded the first one when createOrder named no account, and the Pusher session
  // streamed the first one's channel.
  it("is the account the session signed in to, on the native stream and the Pusher session", async () => {
    const user = await signUp(server);
    const opened = await call(server, "PUT", "/api/v1/accounts", { token: user.token, body: {} });
    const second = opened.body.data.login as number;
    const signedIn = await call(server, "POST", "/api/v1/login", { body: { login: second, password: user.password } });
    const token = signedIn.body.data.token as string;
    expect((await call(server, "GET", "/api/v1/account", { token })).body.data.login).toBe(second);

    const client = await connect(token);
    const placed = await client.request("createOrder", { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01 });
    expect(placed.type, JSON.stringify(placed.payload)).toBe("result");
    expect(placed.payload.data.order.accountId).toBe(second);
    const positions = async (login: number) =>
      (await call(server, "GET", `/api/v1/accounts/${login}/positions`, { token })).body.rows.length;
    expect([await positions(user.login), await positions(second)]).toEqual([0, 1]);

    const session = await call(server, "POST", "/api/v2/ws/session", {
      token: `Bearer ${token}`,
      body: { streams: [{ name: "account" }] },
    });
    expect(session.status).toBe(200);
    expect(session.body.channels).toEqual([`presence-account.${second}`]);
    // A session row that names another user's account (a platform store restored out of step with the journal) is
    // refused like a requested one, never streamed (found by the review of 7 December, third session).
    const stranger = await signUp(server);
    const sessionId = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")).jti as string;
    await server.platform.store.setSessionAccount(user.userId, sessionId, stranger.login);
    // The sign-in service remembers session rows it has read; it must read this one again.
    (server.context.auth as unknown as { sessions: { delete(id: string): void } }).sessions.delete(sessionId);
    const stale = await connect(token);
    stale.send("subscribe", { events: ["executionEvent"] }, "s");
    expect((await stale.nextOf("error")).payload.code).toBe("FORBIDDEN");
    // Signed in by email: the first account, as before.
    const client2 = await connect(user);
    const first = await client2.request("createOrder", { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01 });
    expect(first.payload.data.order.accountId).toBe(user.login);
  });
});

describe("trading over the socket", () => {
  it("places, amends and cancels a pending order with results and execution events", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("subscribe", { symbols: ["EURUSD"], events: ["executionEvent"] });
    await client.nextOf("subscribed");
    const placed = await client.request(
      "createOrder",
      { accountId: user.login, symbol: "EURUSD", side: "BUY", type: "LIMIT", volume: 0.2, price: 1.08 },
      "place",
    );
    expect(placed.payload.data.order).toMatchObject({ status: "PLACED", price: 1.08, volume: 0.2 });
    const orderId = placed.payload.data.order.id;
    expect((await client.next(execution("ORDER_ACCEPTED"))).payload.orderId).toBe(orderId);
    const amended = await client.request("amendOrder", { orderId: String(orderId), price: 1.079, sl: 1.07 });
    expect(amended.payload.data).toMatchObject({ id: orderId, price: 1.079, sl: 1.07 });
    const modified = await client.next(execution("ORDER_MODIFIED"));
    expect(modified.payload).toMatchObject({ orderId, symbol: "EURUSD", price: 1.079, sl: 1.07, tp: null });
    const cancelled = await client.request("cancelOrder", { orderId });
    expect(cancelled.payload.data).toMatchObject({ id: orderId, status: "CANCELLED" });
    const status = await client.next(execution("ORDER_STATUS"));
    // The cause in `statusReason`, as the order's REST view names it (the audit of a terminal's journey of 7 December,
    // sixth session: it was `reason`, which REST uses for who made the order).
    expect(status.payload).toMatchObject({
      orderId,
      symbol: "EURUSD",
      status: "CANCELLED",
      statusReason: cancelled.payload.data.statusReason,
    });
    expect(status.payload.statusReason).toBe("CLIENT_CANCEL");
    expect(status.payload).not.toHaveProperty("reason");
    const missing = await client.request("cancelOrder", { orderId });
    expect(missing.payload.code).toBe("ORDER_NOT_FOUND");
    const orders = await client.request("orderHistory", { symbol: "EURUSD" });
    expect(orders.payload.structure).toContain("status");
    expect(orders.payload.rows.length).toBe(1);
  });

  it("amends and closes a position partly then wholly; SL triggers an execution", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("subscribe", { events: ["executionEvent", "portfolioEvent"] });
    await client.nextOf("subscribed");
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const placed = await client.request("createOrder", {
      symbol: "EURUSD",
      side: "BUY",
      type: "MARKET",
      volume: 0.3,
    });
    const positionId = placed.payload.data.positionId;
    const amended = await client.request("amendPosition", { positionId, sl: 1.08, tp: 1.09 });
    expect(amended.payload.data).toMatchObject({ id: positionId, sl: 1.08, tp: 1.09 });
    const modified = await client.nextOf("portfolioEvent", (message) => message.payload.event === "POSITION_MODIFIED");
    expect(modified.payload).toMatchObject({ positionId, symbol: "EURUSD", sl: 1.08, tp: 1.09, reason: "CLIENT" });
    const partial = await client.request("closePosition", { positionId, volume: 0.1, clientOrderId: "ws-close" });
    expect(partial.payload.data).toMatchObject({ positionId, position: { volume: 0.2 }, duplicate: false });
    expect(partial.payload.data.deals[0]).toMatchObject({ entry: "OUT", volume: 0.1, price: 1.0843, profit: -1 });
    const retried = await client.request("closePosition", { positionId, volume: 0.1, clientOrderId: "ws-close" });
    expect(retried.payload.data).toMatchObject({ position: { volume: 0.2 }, duplicate: true });
    expect(retried.payload.data.deals).toEqual(partial.payload.data.deals);
    // The stop loss closes the rest while the client watches.
    await pushQuote(server, "EURUSD", "1.07990", "1.08000");
    const stopped = await client.next(
      execution(
        "DEAL",
        (message) => message.payload.deal.reason === "STOP_LOSS" && message.payload.deal.entry === "OUT",
      ),
    );
    expect(stopped.payload.deal).toMatchObject({ volume: 0.2, positionId });
    const deals = await client.request("dealHistory", {});
    expect(deals.payload.rows.length).toBe(3);
    const positions = await client.request("positionHistory", { limit: 10 });
    expect(positions.payload.rows.length).toBe(1);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  });

  it("publishes a rejected order as a REJECTED execution without seq, beside the error", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("subscribe", { events: ["executionEvent"] });
    await client.nextOf("subscribed");
    const refused = await client.request("createOrder", { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 50 });
    expect(refused.payload.code).toBe("NO_MONEY");
    const rejected = await client.next(execution("ORDER_REJECTED"));
    expect(rejected.payload).toMatchObject({
      accountId: user.login,
      seq: null,
      symbol: "EURUSD",
      side: "BUY",
      type: "MARKET",
      volume: 50,
      status: "REJECTED",
      statusReason: "NO_MONEY",
    });
  });

  it("fills partly on a thin book: one deal per level, then the IOC remainder cancelled", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("subscribe", { symbols: ["EURUSD"], events: ["executionEvent"] });
    await client.nextOf("subscribed");
    const thin = {
      symbol: "EURUSD",
      bid: "1.08430",
      ask: "1.08440",
      bids: [{ price: "1.08430", volume: 1 }],
      asks: [
        { price: "1.08440", volume: 0.1 },
        { price: "1.08450", volume: 0.1 },
      ],
    };
    expect((await admin(server, "POST", "/admin/v1/quotes", thin)).status).toBe(200);
    const answer = await client.request("createOrder", {
      symbol: "EURUSD",
      side: "BUY",
      type: "MARKET",
      volume: 0.5,
      timeInForce: "IOC",
    });
    expect(answer.payload.data.order).toMatchObject({
      status: "CANCELLED",
      statusReason: "IOC_REMAINDER",
      filledVolume: 0.2,
    });
    const orderId = answer.payload.data.order.id;
    const fills = [await client.next(execution("DEAL")), await client.next(execution("DEAL"))];
    expect(fills.map((fill) => [fill.payload.deal.price, fill.payload.deal.volume])).toEqual([
      [1.0844, 0.1],
      [1.0845, 0.1],
    ]);
    const statuses: Message[] = [];
    while (statuses.length === 0 || statuses[statuses.length - 1]!.payload.status !== "CANCELLED")
      statuses.push(await client.next(execution("ORDER_STATUS", (message) => message.payload.orderId === orderId)));
    expect(statuses.map((status) => [status.payload.status, status.payload.filledVolume])).toContainEqual([
      "CANCELLED",
      0.2,
    ]);
    expect(statuses.some((status) => status.payload.status === "PARTIALLY_FILLED")).toBe(true);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  });

  it("reports an expired GTD order", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    client.send("subscribe", { events: ["executionEvent"] });
    await client.nextOf("subscribed");
    const start = server.clock.now();
    const placed = await client.request("createOrder", {
      symbol: "EURUSD",
      side: "BUY",
      type: "LIMIT",
      volume: 0.1,
      price: 1.07,
      timeInForce: "GTD",
      expiration: start + 60_000,
    });
    expect(placed.type).toBe("result");
    // Time only moves forward: this is the file's last test.
    server.clock.advance(120_000);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const expired = await client.next(execution("ORDER_STATUS", (message) => message.payload.status === "EXPIRED"));
    expect(expired.payload).toMatchObject({ orderId: placed.payload.data.order.id, symbol: "EURUSD" });
  });
});

describe("a pending order placed before a restart and filled after it", () => {
  // Found by the audit of races of 7 December: the stream resolved an order's symbol from the orders seen since start;
  // one placed before the restart was gone from the engine's state by the time its fill was published, and its
  // ORDER_STATUS went out without a symbol, its filled volume in raw steps.
  it("is told with its symbol and its volume in lots", async () => {
    const dataDirectory = mkdtempSync(path.join(tmpdir(), "bourse-ws-restart-"));
    try {
      let own = await startTestServer({ dataDirectory });
      const user = await signUp(own);
      await pushQuote(own, "EURUSD", "1.08430", "1.08440");
      const placed = await call(own, "POST", `/api/v1/accounts/${user.login}/orders`, {
        token: user.token,
        body: { symbol: "EURUSD", side: "BUY", type: "LIMIT", volume: 0.1, price: 1.08 },
      });
      expect(placed.status).toBe(200);
      await own.close();
      own = await startTestServer({ dataDirectory });
      try {
        const client = await StreamClient.connect(await listenStream(own), user.token);
        try {
          client.send("subscribe", { events: ["executionEvent"] });
          await client.nextOf("subscribed");
          await pushQuote(own, "EURUSD", "1.07990", "1.08000");
          const filled = await client.next(execution("ORDER_STATUS"));
          expect(filled.payload).toMatchObject({ status: "FILLED", symbol: "EURUSD", filledVolume: 0.1 });
        } finally {
          await client.close();
        }
      } finally {
        await own.close();
      }
    } finally {
      rmSync(dataDirectory, { recursive: true, force: true });
    }
  });
});

describe("history requests newest first", () => {
  it("orderHistory, dealHistory and positionHistory take REST's direction: newest first, paged in it, refused when mismatched", async () => {
    const user = await signUp(server);
    const client = await connect(user);
    for (const volume of [0.01, 0.02, 0.03]) {
      const placed = await client.request("createOrder", { symbol: "EURUSD", side: "BUY", type: "MARKET", volume });
      expect(placed.type, JSON.stringify(placed.payload)).toBe("result");
    }
    for (const type of ["orderHistory", "dealHistory", "positionHistory"]) {
      const oldestFirst = await client.request(type, { accountId: user.login });
      const first = await client.request(type, { accountId: user.login, direction: "desc", limit: 2 });
      expect(first.type, JSON.stringify(first.payload)).toBe("result");
      const second = await client.request(type, { direction: "desc", limit: 2, cursor: first.payload.nextCursor });
      expect(second.payload.nextCursor).toBeNull();
      expect([...tableObjects(first.payload), ...tableObjects(second.payload)], type).toEqual(
        [...tableObjects(oldestFirst.payload)].reverse(),
      );
      expect(tableObjects(first.payload).map((row) => row.volume)).toEqual([0.03, 0.02]);
      const mismatched = await client.request(type, { cursor: first.payload.nextCursor });
      expect(mismatched.type).toBe("error");
      expect(mismatched.payload).toEqual({ code: "INVALID_DATA", message: expect.stringContaining("direction=desc") });
      const bad = await client.request(type, { direction: "newest" });
      expect(bad.payload.code).toBe("INVALID_DATA");
    }
  });
});
