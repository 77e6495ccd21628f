/**
 * The Pusher endpoint's REST routes: POST /api/v2/ws/session, GET /api/v2/ws/streams and
 * POST /api/v2/ws/auth, with a JWT or an API key: success values, validation (400), missing or bad
 * authorization (401), another user's account and an API key's other account (403).
 */
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, createApiKey, signUp, startTestServer, type TestServer } from "./helpers.ts";

let server: TestServer;
let user: Awaited<ReturnType<typeof signUp>>;
let other: Awaited<ReturnType<typeof signUp>>;
let secondLogin: number;
let readKey: { id: string; key: string };

beforeAll(async () => {
  server = await startTestServer();
  user = await signUp(server);
  other = await signUp(server);
  const opened = await call(server, "PUT", "/api/v1/accounts", {
    token: user.token,
    body: { currency: "USD", leverage: 100, mode: "HEDGING" },
  });
  expect(opened.status).toBe(200);
  secondLogin = opened.body.data.login as number;
  readKey = await createApiKey(server, user, "read");
});

afterAll(async () => {
  await server?.close();
});

function sign(text: string): string {
  return `${server.config.pusherAppKey}:${createHmac("sha256", server.config.pusherAppSecret).update(text).digest("hex")}`;
}

describe("POST /api/v2/ws/session", () => {
  it("resolves the streams to channel names, once each, and tells how to connect", async () => {
    const answer = await call(server, "POST", "/api/v2/ws/session", {
      token: user.token,
      headers: { host: "bourse.example:8443" },
      body: {
        streams: [
          { name: "quotes", filters: { symbol: "EURUSD" } },
          { name: "depth", filters: { symbol: "XAUUSD" } },
          { name: "candles", filters: { symbol: "EURUSD", timeframe: "H1" } },
          { name: "executions" },
          { name: "metrics", filters: { accountId: user.login } },
          { name: "portfolio", filters: { accountId: secondLogin, channelType: "private" } },
          { name: "quotes", filters: { symbol: "EURUSD" } },
        ],
      },
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      connection: {
        wsHost: "bourse.example",
        wsPort: 8443,
        appKey: server.config.pusherAppKey,
        forceTls: false,
        cluster: "bourse",
        authEndpoint: "/api/v2/ws/auth",
      },
      channels: [
        "quotes.EURUSD",
        "depth.XAUUSD",
        "candles.EURUSD.H1",
        `presence-account.${user.login}`,
        `private-account.${secondLogin}`,
      ],
    });
    expect(server.config.pusherAppKey).toMatch(/^[A-Za-z0-9_-]{20,}$/);
  });

  // On 4782ae7 the Host header was handed back as it came: `a:99999999` gave wsPort 99999999, `[::1` wsPort 1.
  it("answers where the client reached it, and refuses a Host header that is not a host and a port (400)", async () => {
    const session = (host: string) =>
      call(server, "POST", "/api/v2/ws/session", {
        token: user.token,
        headers: { host },
        body: { streams: [{ name: "quotes", filters: { symbol: "EURUSD" } }] },
      });
    for (const [host, wsHost, wsPort] of [
      ["bourse.example", "bourse.example", 80],
      ["10.0.0.7:9000", "10.0.0.7", 9000],
      ["[::1]:8080", "[::1]", 8080],
    ] as const)
      expect((await session(host)).body.connection).toMatchObject({ wsHost, wsPort });
    for (const host of ["a:99999999", "a:0", "[::1", "bad host", "a:b"]) {
      const refused = await session(host);
      expect(refused.status, host).toBe(400);
      expect(refused.body.error).toBe("INVALID_DATA");
    }
  });

  it("with an API key: its account by default, any other account refused (403)", async () => {
    const mine = await call(server, "POST", "/api/v2/ws/session", {
      token: `Bearer ${readKey.key}`,
      body: { streams: [{ name: "account" }, { name: "notifications", filters: { accountId: user.login } }] },
    });
    expect(mine.status).toBe(200);
    expect(mine.body.channels).toEqual([`presence-account.${user.login}`]);
    const another = await call(server, "POST", "/api/v2/ws/session", {
      token: `Bearer ${readKey.key}`,
      body: { streams: [{ name: "account", filters: { accountId: secondLogin } }] },
    });
    expect(another.status).toBe(403);
    expect(another.body.error).toBe("FORBIDDEN");
  });

  it("refuses invalid requests with 400 INVALID_DATA and unknown symbols with 404", async () => {
    const bodies: unknown[] = [
      {},
      { streams: [{ name: "trades" }] },
      { streams: [{ name: "quotes" }] },
      { streams: [{ name: "quotes", filters: { symbol: "EURUSD", timeframe: "M1" } }] },
      { streams: [{ name: "candles", filters: { symbol: "EURUSD", timeframe: "M2" } }] },
      { streams: [{ name: "account", filters: { accountId: user.login, extra: 1 } }] },
      { streams: [], extra: true },
      { streams: Array.from({ length: 51 }, () => ({ name: "quotes", filters: { symbol: "EURUSD" } })) },
    ];
    for (const body of bodies) {
      const answer = await call(server, "POST", "/api/v2/ws/session", { token: user.token, body });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.error).toBe("INVALID_DATA");
    }
    const unknown = await call(server, "POST", "/api/v2/ws/session", {
      token: user.token,
      body: { streams: [{ name: "quotes", filters: { symbol: "NOPE" } }] },
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toBe("UNKNOWN_SYMBOL");
  });

  it("needs a JWT or a valid API key (401), and refuses another user's account (403)", async () => {
    const body = { streams: [{ name: "quotes", filters: { symbol: "EURUSD" } }] };
    expect((await call(server, "POST", "/api/v2/ws/session", { body })).status).toBe(401);
    const badKey = await call(server, "POST", "/api/v2/ws/session", {
      token: `Bearer ${readKey.key.slice(0, -1)}${readKey.key.endsWith("A") ? "B" : "A"}`,
      body,
    });
    expect(badKey.status).toBe(401);
    expect(badKey.body.error).toBe("UNAUTHORIZED");
    const theirs = await call(server, "POST", "/api/v2/ws/session", {
      token: other.token,
      body: { streams: [{ name: "account", filters: { accountId: user.login } }] },
    });
    expect(theirs.status).toBe(403);
    expect(JSON.stringify(theirs.body)).not.toContain(String(user.login));
  });
});

describe("GET /api/v2/ws/streams", () => {
  it("lists every stream with its type, channel, events and filters", async () => {
    const answer = await call(server, "GET", "/api/v2/ws/streams", { token: `Bearer ${readKey.key}` });
    expect(answer.status).toBe(200);
    const streams = answer.body.streams as { name: string; type: string; channel: string; events: string[] }[];
    expect(streams.map((stream) => stream.name)).toEqual([
      "quotes",
      "depth",
      "candles",
      "account",
      "executions",
      "portfolio",
      "metrics",
      "notifications",
      "priceAlerts",
    ]);
    expect(streams[0]).toMatchObject({
      type: "public",
      channel: "quotes.{symbol}",
      events: ["quoteEvent"],
      filters: [{ name: "symbol", type: "string", required: true, description: expect.any(String) }],
    });
    expect(streams[2]!.channel).toBe("candles.{symbol}.{timeframe}");
    expect(streams[3]).toMatchObject({ type: "presence", channel: "presence-account.{accountId}" });
    expect(streams[3]!.events).toEqual([
      "executionEvent",
      "portfolioEvent",
      "balanceEvent",
      "metricsEvent",
      "notificationEvent",
      "priceAlertEvent",
    ]);
  });

  it("needs authorization: none, or a token that is neither a JWT nor a key, is 401", async () => {
    expect((await call(server, "GET", "/api/v2/ws/streams")).status).toBe(401);
    expect((await call(server, "GET", "/api/v2/ws/streams", { token: "Bearer not-a-token" })).status).toBe(401);
  });
});

describe("POST /api/v2/ws/auth", () => {
  it("signs a private channel (form-encoded, as pusher-js posts it) with Pusher's HMAC-SHA256", async () => {
    const channel = `private-account.${secondLogin}`;
    const answer = await server.app.inject({
      method: "POST",
      url: "/api/v2/ws/auth",
      headers: { authorization: user.token, "content-type": "application/x-www-form-urlencoded" },
      payload: `socket_id=123.456&channel_name=${encodeURIComponent(channel)}`,
    });
    expect(answer.statusCode).toBe(200);
    expect(answer.json()).toEqual({ auth: sign(`123.456:${channel}`) });
  });

  it("signs a presence channel with its channel_data (JSON body too); an API key is its own member", async () => {
    const channel = `presence-account.${user.login}`;
    const answer = await call(server, "POST", "/api/v2/ws/auth", {
      token: user.token,
      body: { socket_id: "1.2", channel_name: channel },
    });
    expect(answer.status).toBe(200);
    const channelData = JSON.stringify({ user_id: `user-${user.userId}`, user_info: { kind: "session" } });
    expect(answer.body).toEqual({ auth: sign(`1.2:${channel}:${channelData}`), channel_data: channelData });
    const byKey = await call(server, "POST", "/api/v2/ws/auth", {
      token: `Bearer ${readKey.key}`,
      body: { socket_id: "1.2", channel_name: channel },
    });
    expect(byKey.status).toBe(200);
    expect(JSON.parse(byKey.body.channel_data)).toEqual({
      user_id: `key-${readKey.id}`,
      user_info: { kind: "apiKey", name: "read bot" },
    });
  });

  it("refuses bad socket ids, channel names, public channels and extra fields (400)", async () => {
    const bodies = [
      { socket_id: "123", channel_name: `private-account.${user.login}` },
      { socket_id: "1.2", channel_name: "private-account.x y" },
      { socket_id: "1.2", channel_name: "quotes.EURUSD" },
      { socket_id: "1.2", channel_name: "private-orders.1" },
      { socket_id: "1.2", channel_name: `private-account.${user.login}`, channel_data: "{}" },
      { socket_id: "1.2" },
    ];
    for (const body of bodies) {
      const answer = await call(server, "POST", "/api/v2/ws/auth", { token: user.token, body });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.error).toBe("INVALID_DATA");
    }
  });

  it("needs authorization (401)", async () => {
    const body = { socket_id: "1.2", channel_name: `private-account.${user.login}` };
    expect((await call(server, "POST", "/api/v2/ws/auth", { body })).status).toBe(401);
  });

  it("never authorises another user's account, nor an API key's other account (403)", async () => {
    for (const kind of ["private", "presence"]) {
      const theirs = await call(server, "POST", "/api/v2/ws/auth", {
        token: other.token,
        body: { socket_id: "1.2", channel_name: `${kind}-account.${user.login}` },
      });
      expect(theirs.status).toBe(403);
      expect(theirs.body).toEqual({ error: "FORBIDDEN", message: expect.any(String) });
      expect(JSON.stringify(theirs.body)).not.toContain('auth"');
    }
    const missing = await call(server, "POST", "/api/v2/ws/auth", {
      token: other.token,
      body: { socket_id: "1.2", channel_name: "private-account.999999999" },
    });
    expect(missing.status).toBe(403);
    const keyOther = await call(server, "POST", "/api/v2/ws/auth", {
      token: `Bearer ${readKey.key}`,
      body: { socket_id: "1.2", channel_name: `private-account.${secondLogin}` },
    });
    expect(keyOther.status).toBe(403);
  });
});

describe("configuration", () => {
  it("keeps the app key and secret in the data directory across restarts", async () => {
    const { loadServerConfig } = await import("../src/config.ts");
    const again = loadServerConfig({ BOURSE_DATA_DIR: server.dataDirectory });
    expect(again.pusherAppKey).toBe(server.config.pusherAppKey);
    expect(again.pusherAppSecret).toBe(server.config.pusherAppSecret);
    expect(
      loadServerConfig({ BOURSE_DATA_DIR: server.dataDirectory, BOURSE_PUSHER_APP_KEY: "mine" }).pusherAppKey,
    ).toBe("mine");
    expect(() =>
      loadServerConfig({ BOURSE_DATA_DIR: server.dataDirectory, BOURSE_PUSHER_APP_KEY: "no/slash" }),
    ).toThrow(/BOURSE_PUSHER_APP_KEY/);
  });

  it("registers the three routes with the userOrApiKey auth mode (the authorization matrix walks them)", () => {
    const routes = server.app.routeRegistry.filter((route) => route.url.startsWith("/api/v2/ws"));
    expect(routes.map((route) => `${route.method} ${route.url} ${route.auth}`).sort()).toEqual([
      "GET /api/v2/ws/streams userOrApiKey",
      "POST /api/v2/ws/auth userOrApiKey",
      "POST /api/v2/ws/session userOrApiKey",
    ]);
  });
});
