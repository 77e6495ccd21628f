/**
 * Revocation reaches open sockets, with real clients (`ws` for the native stream, a raw Pusher protocol
 * client): a logout, a password change, a sign-in past the session bound, or revoking or rotating an API
 * key ends at once what the session or key authorised — the native socket closes with 4004 after an
 * `error`, the Pusher channel ends with `pusher:subscription_error` (401) — and nothing is delivered after.
 */
import { PLATFORM_LIMITS } from "@bourse/store";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, createApiKey, signUp, type TestServer } from "./helpers.ts";
import { type PusherMessage, type RawPusherClient } from "./pusher-helpers.ts";
import {
  channelGrant,
  deposit,
  nextQuote,
  pusherSocket,
  socketsClosedAfterEach,
  startStreamServers,
  type StreamServers,
} from "./stream-fixture.ts";
import { StreamClient, type Message } from "./ws-helpers.ts";
import { WsCloseCodes } from "../src/ws-codes.ts";

type User = Awaited<ReturnType<typeof signUp>>;

let streams: StreamServers;
let server: TestServer;

beforeAll(async () => {
  streams = await startStreamServers();
  server = streams.server;
});
const sockets = socketsClosedAfterEach();
afterAll(async () => {
  await server?.close();
});

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
  const client = await StreamClient.connect(streams.url, token);
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
    await deposit(server, user);
    const quote = await nextQuote(server);
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
    await deposit(server, user);
    expect((await mine.nextOf("balanceEvent")).payload.accountId).toBe(user.login);
    const quote = await nextQuote(server);
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
    await deposit(server, user);
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
    await deposit(server, user);
    await renewed.nextOf("balanceEvent");
    await session.nextOf("balanceEvent");
    expect([revokedSocket.messages.length, rotatedSocket.messages.length]).toEqual(seen);
  });
});

// ---- Pusher endpoint ----

/** Authorises `channel` for the socket with `token` (JWT or API key) and subscribes; waits for success. */
async function subscribeAccount(
  socket: { client: RawPusherClient; socketId: string },
  token: string,
  channel: string,
): Promise<void> {
  const grant = await channelGrant(streams.base, token, socket.socketId, channel);
  socket.client.send("pusher:subscribe", { channel, auth: grant.auth, channel_data: grant.channel_data });
  await socket.client.event("pusher_internal:subscription_succeeded", channel);
}

function eventsOn(client: RawPusherClient, channel: string, event: string): PusherMessage[] {
  return client.messages.filter((message) => message.channel === channel && message.event === event);
}

/** Publishes a deposit then a quote; once the quote arrived on `client`, the deposit would have too. */
async function depositThenQuote(user: User, client: RawPusherClient): Promise<void> {
  await deposit(server, user);
  const quote = await nextQuote(server);
  await client.next((message) => message.event === "quoteEvent" && message.data.bid === quote);
}

describe("Pusher endpoint", () => {
  it("a logout ends the account channel it authorised (subscription_error 401); public channels go on", async () => {
    const user = await signUp(server);
    const channel = `presence-account.${user.login}`;
    const socket = await pusherSocket(streams, sockets);
    socket.client.send("pusher:subscribe", { channel: "quotes.EURUSD" });
    await socket.client.event("pusher_internal:subscription_succeeded", "quotes.EURUSD");
    await subscribeAccount(socket, user.token, channel);
    await deposit(server, user);
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
    const mine = await pusherSocket(streams, sockets);
    const theirs = await pusherSocket(streams, sockets);
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
    const bot = await pusherSocket(streams, sockets);
    const person = await pusherSocket(streams, sockets);
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
    const socket = await pusherSocket(streams, sockets);
    const grant = await channelGrant(streams.base, user.token, socket.socketId, channel);
    expect((await call(server, "POST", "/api/v1/logout", { token: user.token })).status).toBe(200);
    socket.client.send("pusher:subscribe", { channel, auth: grant.auth });
    expect((await socket.client.event("pusher:subscription_error", channel)).data).toMatchObject({
      type: "AuthError",
      status: 401,
    });
    // Signing in again authorises it anew.
    await subscribeAccount(socket, await login(user), channel);
  });
});
