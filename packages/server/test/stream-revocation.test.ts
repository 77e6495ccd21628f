/**
 * Revocation reaches open sockets, with real clients (`ws` for the native stream, a raw Pusher protocol
 * client): a logout, a password change, a sign-in past the session bound, or revoking or rotating an API
 * key ends at once what the session or key authorised — the native socket closes with 4004 after an
 * `error`, the Pusher channel ends with `pusher:subscription_error` (401) — and nothing is delivered after.
 */
import { PLATFORM_LIMITS } from "@bourse/store";
import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { admin, call, createApiKey, pushQuote, signUp, startTestServer, type TestServer } from "./helpers.ts";
import { RawPusherClient, http, listenHttp, type PusherMessage } from "./pusher-helpers.ts";
import { listenStream, StreamClient, type Message } from "./ws-helpers.ts";
import { WsCloseCodes } from "../src/ws-codes.ts";

type User = Awaited<ReturnType<typeof signUp>>;

let server: TestServer;
let base: string;
let url: string;
let appKey: string;
let bid = 1.0843;

beforeAll(async () => {
  server = await startTestServer();
  base = await listenHttp(server);
  url = await listenStream(server);
  appKey = server.config.pusherAppKey;
  await pushQuote(server, "EURUSD", "1.08430", "1.08440");
});

const sockets: { close(): unknown }[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.close();
});
afterAll(async () => {
  await server?.close();
});

/** A new EURUSD quote (each one differs from the last, so each is published). */
async function nextQuote(): Promise<number> {
  bid = Math.round((bid + 0.0001) * 1e5) / 1e5;
  await pushQuote(server, "EURUSD", bid.toFixed(5), (bid + 0.0001).toFixed(5));
  return bid;
}

async function deposit(user: User, amount = "10"): Promise<void> {
  expect((await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount })).status).toBe(200);
}

async function login(user: User): Promise<string> {
  const response = await call(server, "POST", "/api/v1/login", {
    body: { email: user.email, password: user.password },
  });
  expect(response.status).toBe(200);
  return response.body.data.token as string;
}

// ---- native stream ----

/** A socket authorised with `token`, subscribed to the account's balance events and EURUSD quotes. */
async function nativeSocket(token: string): Promise<StreamClient> {
  const client = await StreamClient.connect(url, token);
  sockets.push(client);
  // Two subscriptions: `symbols` would also filter the account's events (a deposit names no symbol).
  client.send("subscribe", { symbols: ["EURUSD"], events: ["quoteEvent"] }, "quotes");
  await client.nextOf("subscribed", (message) => message.id === "quotes");
  client.send("subscribe", { events: ["balanceEvent"] }, "balance");
  await client.nextOf("subscribed", (message) => message.id === "balance");
  await client.nextOf("quoteEvent");
  return client;
}

/** Waits for the close; checks the `error` came right before it (nothing after) and answers both. */
async function revokedClose(client: StreamClient): Promise<{ code: number; error: Message }> {
  const { code } = await Promise.race([
    client.closed,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the socket stayed open")), 3000)),
  ]);
  const last = client.messages.at(-1)!;
  expect(last.type).toBe("error");
  return { code, error: last };
}

describe("native stream", () => {
  it("closes the socket of a logged-out session with 4004 (SESSION_REVOKED), the other session's stays", async () => {
    const user = await signUp(server);
    const other = await login(user);
    const client = await nativeSocket(user.token);
    const kept = await nativeSocket(other);
    expect((await call(server, "POST", "/api/v1/logout", { token: user.token })).status).toBe(200);
    // The close was written before logout answered: no event published afterwards can reach it.
    const { code, error } = await revokedClose(client);
    expect(code).toBe(WsCloseCodes.REVOKED.code);
    expect(code).toBe(4004);
    expect(error.payload).toEqual({ code: "SESSION_REVOKED", message: expect.stringContaining("logout") });
    const seen = client.messages.length;
    await deposit(user);
    const quote = await nextQuote();
    expect((await kept.nextOf("balanceEvent")).payload.accountId).toBe(user.login);
    expect((await kept.nextOf("quoteEvent", (message) => message.payload.bid === quote)).payload.symbol).toBe("EURUSD");
    expect(client.messages.length).toBe(seen);
  });

  it("a password change closes the other session's socket with 4004 and keeps this one's", async () => {
    const user = await signUp(server);
    const other = await login(user);
    const mine = await nativeSocket(user.token);
    const theirs = await nativeSocket(other);
    const changed = await call(server, "POST", "/api/v1/password", {
      token: user.token,
      body: { currentPassword: user.password, newPassword: "a brand new password" },
    });
    expect(changed.status).toBe(200);
    const { code, error } = await revokedClose(theirs);
    expect(code).toBe(4004);
    expect(error.payload.code).toBe("SESSION_REVOKED");
    const seen = theirs.messages.length;
    await deposit(user);
    expect((await mine.nextOf("balanceEvent")).payload.accountId).toBe(user.login);
    const quote = await nextQuote();
    await mine.nextOf("quoteEvent", (message) => message.payload.bid === quote);
    expect(mine.ws.readyState).toBe(mine.ws.OPEN);
    expect(theirs.messages.length).toBe(seen);
  });

  it("a sign-in at the session bound closes the socket of the oldest session", async () => {
    const user = await signUp(server);
    const oldest = await nativeSocket(user.token);
    for (let i = 1; i < PLATFORM_LIMITS.activeSessionsPerUser; i++) {
      server.clock.advance(1);
      const now = server.clock.now();
      await server.platform.store.createSession({
        id: randomUUID(),
        userId: user.userId,
        accountId: user.login,
        createdAt: now,
        expiresAt: now + 3_600_000,
      });
    }
    const newest = await nativeSocket(await login(user));
    const { code, error } = await revokedClose(oldest);
    expect(code).toBe(4004);
    expect(error.payload.code).toBe("SESSION_REVOKED");
    await deposit(user);
    await newest.nextOf("balanceEvent");
  });

  it("revoking an API key closes its sockets with 4004 (INVALID_API_KEY); rotating one does too", async () => {
    const user = await signUp(server);
    const revokedKey = await createApiKey(server, user, "read");
    const rotatedKey = await createApiKey(server, user, "trade");
    const session = await nativeSocket(user.token);
    const revokedSocket = await nativeSocket(revokedKey.key);
    const rotatedSocket = await nativeSocket(rotatedKey.key);

    expect((await call(server, "DELETE", `/api/v1/api-keys/${revokedKey.id}`, { token: user.token })).status).toBe(200);
    const revoked = await revokedClose(revokedSocket);
    expect(revoked.code).toBe(4004);
    expect(revoked.error.payload).toEqual({ code: "INVALID_API_KEY", message: "The API key was revoked" });
    expect(rotatedSocket.ws.readyState).toBe(rotatedSocket.ws.OPEN);

    const rotation = await call(server, "POST", `/api/v1/api-keys/${rotatedKey.id}/rotate`, { token: user.token });
    expect(rotation.status).toBe(200);
    const rotated = await revokedClose(rotatedSocket);
    expect(rotated.code).toBe(4004);
    expect(rotated.error.payload.code).toBe("INVALID_API_KEY");
    // The new key streams; the session's socket never noticed.
    const renewed = await nativeSocket(rotation.body.data.key as string);
    const seen = [revokedSocket.messages.length, rotatedSocket.messages.length];
    await deposit(user);
    await renewed.nextOf("balanceEvent");
    await session.nextOf("balanceEvent");
    expect([revokedSocket.messages.length, rotatedSocket.messages.length]).toEqual(seen);
  });
});

// ---- Pusher endpoint ----

async function pusherSocket(): Promise<{ client: RawPusherClient; socketId: string }> {
  const client = await RawPusherClient.connect(base, `/app/${appKey}?protocol=7&client=js&version=8.6.0`);
  sockets.push(client);
  return { client, socketId: await client.socketId() };
}

/** Authorises `channel` for the socket with `token` (JWT or API key) and subscribes; waits for success. */
async function subscribeAccount(
  socket: { client: RawPusherClient; socketId: string },
  token: string,
  channel: string,
): Promise<void> {
  const auth = await http(base, "POST", "/api/v2/ws/auth", {
    token,
    form: { socket_id: socket.socketId, channel_name: channel },
  });
  expect(auth.status).toBe(200);
  socket.client.send("pusher:subscribe", { channel, auth: auth.body.auth, channel_data: auth.body.channel_data });
  await socket.client.event("pusher_internal:subscription_succeeded", channel);
}

function eventsOn(client: RawPusherClient, channel: string, event: string): PusherMessage[] {
  return client.messages.filter((message) => message.channel === channel && message.event === event);
}

/** Publishes a deposit then a quote; once the quote arrived on `client`, the deposit would have too. */
async function depositThenQuote(user: User, client: RawPusherClient): Promise<void> {
  await deposit(user);
  const quote = await nextQuote();
  await client.next((message) => message.event === "quoteEvent" && message.data.bid === quote);
}

describe("Pusher endpoint", () => {
  it("a logout ends the account channel it authorised (subscription_error 401); public channels go on", async () => {
    const user = await signUp(server);
    const channel = `presence-account.${user.login}`;
    const socket = await pusherSocket();
    socket.client.send("pusher:subscribe", { channel: "quotes.EURUSD" });
    await socket.client.event("pusher_internal:subscription_succeeded", "quotes.EURUSD");
    await subscribeAccount(socket, user.token, channel);
    await deposit(user);
    await socket.client.event("balanceEvent", channel);

    expect((await call(server, "POST", "/api/v1/logout", { token: user.token })).status).toBe(200);
    const ended = await socket.client.event("pusher:subscription_error", channel);
    expect(ended.data).toEqual({ type: "AuthError", error: expect.stringContaining("revoked"), status: 401 });
    const seen = eventsOn(socket.client, channel, "balanceEvent").length;
    await depositThenQuote(user, socket.client);
    expect(eventsOn(socket.client, channel, "balanceEvent")).toHaveLength(seen);
    expect(socket.client.messages.filter((message) => message.channel === channel).at(-1)!.event).toBe(
      "pusher:subscription_error",
    );
    expect(socket.client.ws.readyState).toBe(socket.client.ws.OPEN);
    expect(server.pusherStream.stats().presenceChannels).toBe(0);
  });

  it("a password change ends the other session's channels and keeps this session's", async () => {
    const user = await signUp(server);
    const other = await login(user);
    const channel = `private-account.${user.login}`;
    const mine = await pusherSocket();
    const theirs = await pusherSocket();
    mine.client.send("pusher:subscribe", { channel: "quotes.EURUSD" });
    await mine.client.event("pusher_internal:subscription_succeeded", "quotes.EURUSD");
    theirs.client.send("pusher:subscribe", { channel: "quotes.EURUSD" });
    await theirs.client.event("pusher_internal:subscription_succeeded", "quotes.EURUSD");
    await subscribeAccount(mine, user.token, channel);
    await subscribeAccount(theirs, other, channel);

    const changed = await call(server, "POST", "/api/v1/password", {
      token: user.token,
      body: { currentPassword: user.password, newPassword: "a brand new password" },
    });
    expect(changed.status).toBe(200);
    expect((await theirs.client.event("pusher:subscription_error", channel)).data.status).toBe(401);
    await depositThenQuote(user, theirs.client);
    await mine.client.event("balanceEvent", channel);
    expect(eventsOn(theirs.client, channel, "balanceEvent")).toHaveLength(0);
    expect(eventsOn(mine.client, channel, "pusher:subscription_error")).toHaveLength(0);
  });

  it("revoking an API key ends the channels it authorised", async () => {
    const user = await signUp(server);
    const key = await createApiKey(server, user, "read");
    const channel = `presence-account.${user.login}`;
    const bot = await pusherSocket();
    const person = await pusherSocket();
    bot.client.send("pusher:subscribe", { channel: "quotes.EURUSD" });
    await bot.client.event("pusher_internal:subscription_succeeded", "quotes.EURUSD");
    await subscribeAccount(person, user.token, channel);
    await subscribeAccount(bot, key.key, channel);
    await person.client.event("pusher_internal:member_added", channel);

    expect((await call(server, "DELETE", `/api/v1/api-keys/${key.id}`, { token: user.token })).status).toBe(200);
    expect((await bot.client.event("pusher:subscription_error", channel)).data).toMatchObject({
      type: "AuthError",
      status: 401,
    });
    // The key's member left the presence channel; the session's subscription goes on.
    expect((await person.client.event("pusher_internal:member_removed", channel)).data).toEqual({
      user_id: `key-${key.id}`,
    });
    await depositThenQuote(user, bot.client);
    await person.client.event("balanceEvent", channel);
    expect(eventsOn(bot.client, channel, "balanceEvent")).toHaveLength(0);
  });

  it("refuses a subscription whose authorisation was revoked before it came (401)", async () => {
    const user = await signUp(server);
    const channel = `private-account.${user.login}`;
    const socket = await pusherSocket();
    const auth = await http(base, "POST", "/api/v2/ws/auth", {
      token: user.token,
      form: { socket_id: socket.socketId, channel_name: channel },
    });
    expect(auth.status).toBe(200);
    expect((await call(server, "POST", "/api/v1/logout", { token: user.token })).status).toBe(200);
    socket.client.send("pusher:subscribe", { channel, auth: auth.body.auth });
    expect((await socket.client.event("pusher:subscription_error", channel)).data).toMatchObject({
      type: "AuthError",
      status: 401,
    });
    // Signing in again authorises it anew.
    await subscribeAccount(socket, await login(user), channel);
  });
});
