/**
 * The Pusher protocol 7 socket with a raw `ws` client: the handshake and its refusals (4001, 4005, 4006,
 * 4007, 4008: `pusher:error` then a close with the same code), ping/pong and the server's pings of idle
 * clients (4201), subscriptions (public, private, presence with members), the signature check, the limits
 * (4301, 4100, 429 subscription errors, 1009) and the server-initiated reconnect (4200). Every `data` is a
 * JSON-encoded string.
 */
import { createHmac } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { call, createApiKey, pushQuote, signUp, startTestServer, type TestServer } from "./helpers.ts";
import { RawPusherClient, http, listenHttp } from "./pusher-helpers.ts";
import { DEFAULT_PUSHER_LIMITS } from "../src/pusher-stream.ts";

let server: TestServer;
let base: string;
let appKey: string;
let user: Awaited<ReturnType<typeof signUp>>;
let other: Awaited<ReturnType<typeof signUp>>;
const open: RawPusherClient[] = [];

beforeAll(async () => {
  server = await startTestServer();
  base = await listenHttp(server);
  appKey = server.config.pusherAppKey;
  await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  user = await signUp(server);
  other = await signUp(server);
});

afterEach(() => {
  for (const client of open.splice(0)) client.close();
  server.pusherStream.setTimings({
    idlePingMs: DEFAULT_PUSHER_LIMITS.idlePingMs,
    pongTimeoutMs: DEFAULT_PUSHER_LIMITS.pongTimeoutMs,
  });
  Object.assign(server.pusherStream.limits, {
    maxSubscriptions: DEFAULT_PUSHER_LIMITS.maxSubscriptions,
    maxBufferedBytes: DEFAULT_PUSHER_LIMITS.maxBufferedBytes,
  });
});

afterAll(async () => {
  await server?.close();
});

async function connect(path = `/app/${appKey}?protocol=7&client=js&version=8.6.0`): Promise<RawPusherClient> {
  const client = await RawPusherClient.connect(base, path);
  open.push(client);
  return client;
}

/** Connects and waits for connection_established; answers the client and its socket id. */
async function established(): Promise<{ client: RawPusherClient; socketId: string }> {
  const client = await connect();
  return { client, socketId: await client.socketId() };
}

async function channelAuth(token: string, socketId: string, channel: string) {
  return http(base, "POST", "/api/v2/ws/auth", { token, form: { socket_id: socketId, channel_name: channel } });
}

describe("handshake", () => {
  it("answers connection_established with a JSON-encoded string: socket_id and activity_timeout", async () => {
    const client = await connect();
    const message = await client.event("pusher:connection_established");
    expect(typeof message.rawData).toBe("string");
    expect(message.data).toEqual({ socket_id: expect.stringMatching(/^[0-9]+\.[0-9]+$/), activity_timeout: 120 });
    const second = await connect();
    expect((await second.event("pusher:connection_established")).data.socket_id).not.toBe(message.data.socket_id);
  });

  it.each([
    ["an unknown app key", "/app/not-the-key?protocol=7", 4001],
    ["a path below the app key", `/app/KEY/extra?protocol=7`, 4005],
    ["no app key", "/app/?protocol=7", 4005],
    ["a malformed protocol version", "/app/KEY?protocol=seven", 4006],
    ["an unsupported protocol version", "/app/KEY?protocol=6", 4007],
    ["no protocol version", "/app/KEY", 4008],
  ])("refuses %s: pusher:error then close with its code", async (_what, path, code) => {
    const client = await connect(path.replace("KEY", appKey));
    const error = await client.event("pusher:error");
    expect(error.data).toEqual({ code, message: expect.any(String) });
    expect(typeof error.rawData).toBe("string");
    expect((await client.closed).code).toBe(code);
    expect(client.messages.map((message) => message.event)).toEqual(["pusher:error"]);
  });

  it("answers 404 to an upgrade outside /app/", async () => {
    await expect(RawPusherClient.connect(base, `/apps/${appKey}?protocol=7`)).rejects.toThrow(/404/);
  });
});

describe("ping and pong", () => {
  it("answers pusher:ping with pusher:pong", async () => {
    const { client } = await established();
    client.send("pusher:ping", {});
    const pong = await client.event("pusher:pong");
    expect(pong.rawData).toBe("{}");
  });

  it("pings a client silent for the idle time, keeps one that answers, closes one that does not (4201)", async () => {
    server.pusherStream.setTimings({ idlePingMs: 150, pongTimeoutMs: 200 });
    // Measured from before the silent client connects: its idle time starts after this.
    const started = performance.now();
    const silent = await established();
    const answering = await established();
    answering.client.ws.on("message", (raw) => {
      if (JSON.parse(raw.toString()).event === "pusher:ping") answering.client.send("pusher:pong", {});
    });
    const ping = await silent.client.event("pusher:ping", undefined, 2000);
    const pingedAfter = performance.now() - started;
    expect(ping.rawData).toBe("{}");
    expect(pingedAfter).toBeGreaterThanOrEqual(140);
    const error = await silent.client.event("pusher:error", undefined, 2000);
    expect(error.data).toEqual({ code: 4201, message: expect.any(String) });
    expect((await silent.client.closed).code).toBe(4201);
    const closedAfter = performance.now() - started;
    expect(closedAfter).toBeGreaterThanOrEqual(340);
    expect(closedAfter).toBeLessThan(2000);
    // The answering client was pinged too, and is still open after several rounds.
    await answering.client.event("pusher:ping", undefined, 2000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(answering.client.ws.readyState).toBe(answering.client.ws.OPEN);
    // It is pinged again after each idle period, and answers every time.
    expect(answering.client.messages.filter((message) => message.event === "pusher:ping").length).toBeGreaterThan(1);
  });
});

describe("public channels", () => {
  it("subscribes to quotes: succeeded, the last quote, then pushed quotes; unsubscribe stops them", async () => {
    const { client } = await established();
    client.send("pusher:subscribe", { channel: "quotes.EURUSD" });
    const succeeded = await client.event("pusher_internal:subscription_succeeded", "quotes.EURUSD");
    expect(succeeded.rawData).toBe("{}");
    const snapshot = await client.event("quoteEvent", "quotes.EURUSD");
    expect(typeof snapshot.rawData).toBe("string");
    expect(snapshot.data).toMatchObject({ symbol: "EURUSD", bid: expect.any(Number), ask: expect.any(Number) });
    await pushQuote(server, "EURUSD", "1.08451", "1.08462");
    const pushed = await client.next((message) => message.event === "quoteEvent" && message.data.bid === 1.08451);
    expect(pushed.data).toEqual({ symbol: "EURUSD", bid: 1.08451, ask: 1.08462, ts: "2026-06-02T12:00:00.000Z" });

    client.send("pusher:unsubscribe", { channel: "quotes.EURUSD" });
    client.send("pusher:subscribe", { channel: "depth.EURUSD" });
    await client.event("pusher_internal:subscription_succeeded", "depth.EURUSD");
    await pushQuote(server, "EURUSD", "1.08452", "1.08463");
    const depth = await client.next(
      (message) => message.event === "depthEvent" && message.data.bids[0].price === 1.08452,
    );
    expect(depth.channel).toBe("depth.EURUSD");
    expect(depth.data).toMatchObject({ symbol: "EURUSD", asks: [{ price: 1.08463, volume: null }] });
    expect(client.messages.some((message) => message.event === "quoteEvent" && message.data.bid === 1.08452)).toBe(
      false,
    );
  });

  it("streams candle updates on candles.{SYMBOL}.{TIMEFRAME}", async () => {
    const { client } = await established();
    client.send("pusher:subscribe", { channel: "candles.EURUSD.M1" });
    await client.event("pusher_internal:subscription_succeeded", "candles.EURUSD.M1");
    await pushQuote(server, "EURUSD", "1.08471", "1.08481");
    const candle = await client.next((message) => message.event === "candleEvent" && message.data.close === 1.08471);
    expect(candle.channel).toBe("candles.EURUSD.M1");
    expect(candle.data).toMatchObject({ symbol: "EURUSD", timeframe: "M1", time: "2026-06-02T12:00:00.000Z" });
  });

  it("answers subscription_error for unknown channels and symbols, and pusher:error for bad messages", async () => {
    const { client } = await established();
    for (const channel of ["news.EURUSD", "quotes.NOPE", "candles.EURUSD.M2", "private-orders.1"]) {
      client.send("pusher:subscribe", { channel });
      const error = await client.event("pusher:subscription_error", channel);
      expect(error.data).toEqual({ type: "InvalidChannel", error: expect.any(String), status: 404 });
    }
    client.send("pusher:subscribe", {});
    expect((await client.event("pusher:error")).data).toEqual({
      code: null,
      message: expect.stringMatching(/channel/),
    });
    client.send("client-hello", { text: "hi" }, "quotes.EURUSD");
    expect((await client.event("pusher:error")).data).toEqual({ code: null, message: expect.stringMatching(/Client/) });
    client.ws.send("not json");
    expect((await client.event("pusher:error")).data.code).toBe(null);
    // The socket is still usable.
    client.send("pusher:ping", {});
    await client.event("pusher:pong");
  });
});

describe("private and presence channels", () => {
  it("needs a valid signature for this socket: none, forged or another socket's is refused (401)", async () => {
    const { client, socketId } = await established();
    const channel = `private-account.${user.login}`;
    client.send("pusher:subscribe", { channel });
    expect((await client.event("pusher:subscription_error", channel)).data).toMatchObject({
      type: "AuthError",
      status: 401,
    });
    client.send("pusher:subscribe", { channel, auth: `${appKey}:${"0".repeat(64)}` });
    expect((await client.event("pusher:subscription_error", channel)).data.status).toBe(401);
    const forOther = await channelAuth(user.token, "999.999", channel);
    client.send("pusher:subscribe", { channel, auth: forOther.body.auth });
    expect((await client.event("pusher:subscription_error", channel)).data.status).toBe(401);
    // A signature made with another secret, in Pusher's format, is refused as well.
    const wrongSecret = createHmac("sha256", "not the secret").update(`${socketId}:${channel}`).digest("hex");
    client.send("pusher:subscribe", { channel, auth: `${appKey}:${wrongSecret}` });
    expect((await client.event("pusher:subscription_error", channel)).data.status).toBe(401);

    const granted = await channelAuth(user.token, socketId, channel);
    expect(granted.status).toBe(200);
    client.send("pusher:subscribe", { channel, auth: granted.body.auth });
    expect((await client.event("pusher_internal:subscription_succeeded", channel)).rawData).toBe("{}");
    // The account's events on the channel, data as JSON strings.
    const order = await call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
      token: user.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01 },
    });
    expect(order.status).toBe(200);
    const deal = await client.next((message) => message.event === "executionEvent" && message.data.event === "DEAL");
    expect(deal.channel).toBe(channel);
    expect(typeof deal.rawData).toBe("string");
    expect(deal.data).toMatchObject({ accountId: user.login, symbol: "EURUSD", seq: expect.any(Number) });
  });

  it("presence: a tampered channel_data is refused; members are announced as they join and leave", async () => {
    const channel = `presence-account.${user.login}`;
    const first = await established();
    const auth = await channelAuth(user.token, first.socketId, channel);
    expect(JSON.parse(auth.body.channel_data)).toEqual({
      user_id: `user-${user.userId}`,
      user_info: { kind: "session" },
    });
    first.client.send("pusher:subscribe", {
      channel,
      auth: auth.body.auth,
      channel_data: JSON.stringify({ user_id: "admin", user_info: {} }),
    });
    expect((await first.client.event("pusher:subscription_error", channel)).data.status).toBe(401);
    first.client.send("pusher:subscribe", { channel, auth: auth.body.auth, channel_data: auth.body.channel_data });
    const succeeded = await first.client.event("pusher_internal:subscription_succeeded", channel);
    expect(succeeded.data).toEqual({
      presence: { ids: [`user-${user.userId}`], hash: { [`user-${user.userId}`]: { kind: "session" } }, count: 1 },
    });

    // A bot with an API key joins: a second member.
    const key = await createApiKey(server, user, "read");
    const bot = await established();
    const botAuth = await channelAuth(key.key, bot.socketId, channel);
    expect(botAuth.status).toBe(200);
    bot.client.send("pusher:subscribe", { channel, auth: botAuth.body.auth, channel_data: botAuth.body.channel_data });
    const botJoined = await bot.client.event("pusher_internal:subscription_succeeded", channel);
    expect(botJoined.data.presence.count).toBe(2);
    expect(botJoined.data.presence.hash[`key-${key.id}`]).toEqual({ kind: "apiKey", name: "read bot" });
    const added = await first.client.event("pusher_internal:member_added", channel);
    expect(added.data).toEqual({ user_id: `key-${key.id}`, user_info: { kind: "apiKey", name: "read bot" } });

    // The same member on a second socket is not announced again; it leaves when its last socket does.
    const second = await established();
    const secondAuth = await channelAuth(user.token, second.socketId, channel);
    second.client.send("pusher:subscribe", {
      channel,
      auth: secondAuth.body.auth,
      channel_data: secondAuth.body.channel_data,
    });
    expect((await second.client.event("pusher_internal:subscription_succeeded", channel)).data.presence.count).toBe(2);
    bot.client.close();
    const removed = await first.client.event("pusher_internal:member_removed", channel);
    expect(removed.data).toEqual({ user_id: `key-${key.id}` });
    expect(first.client.messages.filter((message) => message.event === "pusher_internal:member_added")).toHaveLength(1);
  });

  it("carries the user's notifications on the account channel", async () => {
    const channel = `private-account.${other.login}`;
    const { client, socketId } = await established();
    const auth = await channelAuth(other.token, socketId, channel);
    client.send("pusher:subscribe", { channel, auth: auth.body.auth });
    await client.event("pusher_internal:subscription_succeeded", channel);
    await client.event("metricsEvent", channel);
    const order = await call(server, "POST", `/api/v1/accounts/${other.login}/orders`, {
      token: other.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01 },
    });
    expect(order.status).toBe(200);
    const notification = await client.event("notificationEvent", channel);
    expect(notification.data).toMatchObject({
      accountId: other.login,
      level: "info",
      kind: "ORDER_FILLED",
      orderId: order.body.data.order.id,
      positionId: order.body.data.positionId,
      unread: expect.any(Number),
    });
  });
});

describe("limits and server-initiated closes", () => {
  it("refuses a subscription past the topic limit (429)", async () => {
    server.pusherStream.limits.maxSubscriptions = 2;
    const { client } = await established();
    for (const channel of ["quotes.EURUSD", "quotes.GBPUSD"]) {
      client.send("pusher:subscribe", { channel });
      await client.event("pusher_internal:subscription_succeeded", channel);
    }
    client.send("pusher:subscribe", { channel: "quotes.USDJPY" });
    expect((await client.event("pusher:subscription_error", "quotes.USDJPY")).data).toMatchObject({
      type: "LimitReached",
      status: 429,
    });
  });

  it("answers 4301 over the message rate, and closes with 4100 when it goes on", async () => {
    const { client } = await established();
    for (let index = 0; index < 200; index += 1) client.send("pusher:ping", {});
    const limited = await client.next((message) => message.event === "pusher:error" && message.data.code === 4301);
    expect(limited.data.message).toMatch(/50 messages per second/);
    expect((await client.closed).code).toBe(4100);
  });

  it("closes a consumer whose unsent events pass the buffer limit with 4100", async () => {
    server.pusherStream.limits.maxBufferedBytes = 400;
    const channel = `private-account.${user.login}`;
    const { client, socketId } = await established();
    const auth = await channelAuth(user.token, socketId, channel);
    client.send("pusher:subscribe", { channel, auth: auth.body.auth });
    await client.event("pusher_internal:subscription_succeeded", channel);
    const order = await call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
      token: user.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01, comment: "x".repeat(30) },
    });
    expect(order.status).toBe(200);
    const error = await client.event("pusher:error");
    expect(error.data).toEqual({ code: 4100, message: "Over capacity" });
    expect((await client.closed).code).toBe(4100);
    expect(server.pusherStream.closes.OVER_CAPACITY).toBeGreaterThanOrEqual(1);
  });

  it("closes a message over 64 KiB with 1009", async () => {
    const { client } = await established();
    client.send("pusher:subscribe", { channel: "x".repeat(70 * 1024) });
    expect((await client.closed).code).toBe(1009);
  });

  it("asks every socket to reconnect with 4200 (pusher:error, then the close)", async () => {
    const { client } = await established();
    server.pusherStream.reconnectAll();
    expect((await client.event("pusher:error")).data).toEqual({ code: 4200, message: "Please reconnect immediately" });
    expect((await client.closed).code).toBe(4200);
  });
});
