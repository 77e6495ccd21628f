/**
 * Open sockets were not limited (found by an audit): 500 native sockets on one JWT were all accepted and subscribed,
 * 1,000 native sockets waiting for `authorize` and 1,000 Pusher sockets were open at once from one address. Now a
 * user, an API key and a client address each hold a bounded number, and the next socket is refused right after the
 * handshake with the registry's close code (native: an `error` LIMIT_REACHED, then 4030; Pusher: `pusher:error` and
 * 4100, which pusher-js answers by reconnecting after a backoff).
 *
 * Every test speaks from an address of its own (X-Forwarded-For through the trusted loopback proxy, the rule of
 * client-address.ts), so the per-address counts of one test do not reach another's.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PusherCodes } from "../src/pusher-protocol.ts";
import { WsCloseCodes } from "../src/ws-codes.ts";
import { DEFAULT_STREAM_LIMITS } from "../src/ws-stream.ts";
import { call, createApiKey, signUp, startTestServer, type TestServer } from "./helpers.ts";
import { RawPusherClient, listenHttp, until, type PusherMessage } from "./pusher-helpers.ts";
import { channelGrant } from "./stream-fixture.ts";
import { StreamClient, listenStream } from "./ws-helpers.ts";

let server: TestServer;
let url: string;
let base: string;
beforeAll(async () => {
  // The per-address bounds of the first release (100 open, 20 waiting), set low so a test reaches them quickly.
  server = await startTestServer({
    environment: {
      BOURSE_TRUST_PROXY: "loopback",
      BOURSE_STREAM_SOCKETS_PER_ADDRESS: "100",
      BOURSE_STREAM_UNAUTHORIZED_SOCKETS_PER_ADDRESS: "20",
    },
  });
  url = await listenStream(server);
  base = await listenHttp(server);
});
afterAll(async () => {
  await server.close();
});

const sockets: { close(): unknown }[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.close();
});

let addressCounter = 0;
/** A client address no other test uses. */
function newAddress(): string {
  addressCounter += 1;
  return `203.0.113.${addressCounter}`;
}

async function native(address: string, token: string | null): Promise<StreamClient> {
  const client = await StreamClient.connect(url, token, { headers: { "x-forwarded-for": address } });
  sockets.push(client);
  return client;
}

/** A native socket authorised by ?token= (its `pong` comes after the authorisation, or never). */
async function authorised(address: string, token: string): Promise<StreamClient> {
  const client = await native(address, token);
  client.send("ping", {}, "alive");
  await client.nextOf("pong");
  return client;
}

/** A token of a new session of the user: a socket of it replaces none of another session's. */
async function anotherSession(user: { email: string; password: string }): Promise<string> {
  const signedIn = await call(server, "POST", "/api/v1/login", {
    body: { email: user.email, password: user.password },
  });
  return signedIn.body.data.token as string;
}

/** The socket was closed for a newer one of its credential, after LIMIT_REACHED. */
async function expectReplaced(client: StreamClient): Promise<void> {
  expect((await client.closed).code).toBe(WsCloseCodes.REPLACED.code);
  expect(client.all("error").map((message) => message.payload.code)).toEqual(["LIMIT_REACHED"]);
}

async function expectRefused(client: StreamClient): Promise<void> {
  const closed = await client.closed;
  expect(closed.code).toBe(WsCloseCodes.TOO_MANY_SOCKETS.code);
  expect(client.all("error").map((message) => message.payload.code)).toEqual(["LIMIT_REACHED"]);
}

async function pusher(address: string): Promise<RawPusherClient> {
  const client = await RawPusherClient.connect(base, `/app/${server.config.pusherAppKey}?protocol=7`, {
    headers: { "x-forwarded-for": address },
  });
  sockets.push(client);
  return client;
}

const stream = () => server.nativeStream;

/** A Pusher socket from `address` once connected, with its socket id. */
async function pusherSocket(address: string): Promise<{ client: RawPusherClient; socketId: string }> {
  const client = await pusher(address);
  return { client, socketId: await client.socketId() };
}

/** Grants `channel` to the socket with `token` and subscribes; answers the subscription's outcome. */
async function subscribeChannel(
  socket: { client: RawPusherClient; socketId: string },
  token: string,
  channel: string,
): Promise<PusherMessage> {
  const grant = await channelGrant(base, token, socket.socketId, channel);
  socket.client.send("pusher:subscribe", { channel, auth: grant.auth, channel_data: grant.channel_data });
  return socket.client.next(
    (message) =>
      message.channel === channel &&
      (message.event === "pusher_internal:subscription_succeeded" || message.event === "pusher:subscription_error"),
  );
}

function expectLimitReached(outcome: PusherMessage, limit: RegExp): void {
  expect(outcome.event).toBe("pusher:subscription_error");
  expect(outcome.data).toMatchObject({ type: "LimitReached", status: 429 });
  expect(outcome.data.error).toMatch(limit);
}

describe("native sockets per user and per API key", () => {
  it("a user's socket past 20 is refused with LIMIT_REACHED and 4030, by ?token= or by authorize; once one closes the next is accepted", async () => {
    const user = await signUp(server);
    const address = newAddress();
    const limit = DEFAULT_STREAM_LIMITS.maxSocketsPerUser;
    expect(limit).toBe(20);
    const open: StreamClient[] = [];
    for (let index = 0; index < limit; index += 1) open.push(await authorised(address, user.token));
    expect(stream().openSockets("user", user.userId)).toBe(limit);

    // Another session of the user's (another device): refused.
    const tablet = await anotherSession(user);
    await expectRefused(await native(address, tablet));
    const byMessage = await native(address, null);
    byMessage.send("authorize", { token: tablet }, "a1");
    await expectRefused(byMessage);
    expect(byMessage.all("error")[0]!.id).toBe("a1");
    // Another user from the same address is not affected.
    const other = await signUp(server);
    await authorised(address, other.token);

    await open[0]!.close();
    await until(() => stream().openSockets("user", user.userId) === limit - 1, 3000, "the closed socket released");
    await authorised(address, tablet);
    expect(stream().openSockets("user", user.userId)).toBe(limit);
  });

  // Found by the audit of a mobile client's journey of 7 December (seventh session): a phone whose network died
  // silently held its dead sockets until the server's pings missed, 25 to 45 s, and every reconnect meanwhile was
  // refused. A socket of the same session now takes the place of its oldest.
  it("at the user's bound, a new socket of a session that holds one takes the place of its oldest, which closes with 4031", async () => {
    const user = await signUp(server);
    const address = newAddress();
    const limit = DEFAULT_STREAM_LIMITS.maxSocketsPerUser;
    const tablet = await anotherSession(user);
    const tabletSocket = await authorised(address, tablet);
    const open: StreamClient[] = [];
    for (let index = 0; index < limit - 1; index += 1) open.push(await authorised(address, user.token));
    expect(stream().openSockets("user", user.userId)).toBe(limit);
    // The phone reconnects twice: each time its oldest socket gives way, never the tablet's.
    const first = await authorised(address, user.token);
    await expectReplaced(open[0]!);
    const second = await authorised(address, user.token);
    await expectReplaced(open[1]!);
    expect(stream().openSockets("user", user.userId)).toBe(limit);
    await tabletSocket.expectOpen();
    await first.expectOpen();
    await second.expectOpen();
  });

  it("an API key's socket past 10 is refused with 4030, and its sockets count toward its user's 20", async () => {
    const user = await signUp(server);
    const address = newAddress();
    const key = await createApiKey(server, user, "trade");
    const secondKey = await createApiKey(server, user, "read");
    expect(DEFAULT_STREAM_LIMITS.maxSocketsPerApiKey).toBe(10);
    const keySockets: StreamClient[] = [];
    for (let index = 0; index < 10; index += 1) keySockets.push(await authorised(address, key.key));
    // The key's 11th takes the place of its oldest (a bot reconnecting while its old socket's network is dead).
    await authorised(address, key.key);
    await expectReplaced(keySockets[0]!);
    expect(stream().openSockets("apiKey", key.id)).toBe(10);
    // The key's 10 and 10 sessions' sockets fill the user's 20: the second key gets none, nor another session.
    for (let index = 0; index < 10; index += 1) await authorised(address, user.token);
    await expectRefused(await native(address, secondKey.key));
    await expectRefused(await native(address, await anotherSession(user)));
  });
});

describe("sockets per client address", () => {
  it("past 20 sockets from one address waiting for authorize the next is refused with 4030; authorising one makes room", async () => {
    const address = newAddress();
    const limit = stream().limits.maxUnauthorizedSocketsPerAddress;
    expect(limit).toBe(20);
    const waiting: StreamClient[] = [];
    for (let index = 0; index < limit; index += 1) waiting.push(await native(address, null));
    expect(stream().openSockets("unauthorized", address)).toBe(limit);
    await expectRefused(await native(address, null));
    // Another address is not affected.
    await native(newAddress(), null);

    const user = await signUp(server);
    waiting[0]!.send("authorize", { token: user.token }, "a1");
    await waiting[0]!.nextOf("authorized");
    expect(stream().openSockets("unauthorized", address)).toBe(limit - 1);
    const accepted = await native(address, null);
    await until(() => stream().openSockets("unauthorized", address) === limit, 3000, "the new socket counted");
    expect(accepted.ws.readyState).toBe(accepted.ws.OPEN);
  });

  it("one address holds at most 100 sockets, Pusher and native together: the next Pusher socket gets pusher:error and 4100, the next native one 4030", async () => {
    const address = newAddress();
    const limit = stream().limits.maxSocketsPerAddress;
    expect(limit).toBe(100);
    const user = await signUp(server);
    const open: RawPusherClient[] = [];
    for (let index = 0; index < limit - 10; index += 1) {
      const client = await pusher(address);
      await client.socketId();
      open.push(client);
    }
    for (let index = 0; index < 10; index += 1) await authorised(address, user.token);
    expect(stream().openSockets("address", address)).toBe(limit);

    const refused = await pusher(address);
    const error = await refused.event("pusher:error");
    expect(error.data.code).toBe(PusherCodes.OVER_CAPACITY.code);
    expect((await refused.closed).code).toBe(PusherCodes.OVER_CAPACITY.code);
    expect(refused.messages.some((message) => message.event === "pusher:connection_established")).toBe(false);
    await expectRefused(await native(address, user.token));
    // Another address is not affected.
    await (await pusher(newAddress())).socketId();

    open[0]!.close();
    await until(() => stream().openSockets("address", address) === limit - 1, 3000, "the closed socket released");
    await (await pusher(address)).socketId();
  });
});

describe("sockets per user and per API key, native and Pusher together", () => {
  it("a Pusher socket takes a user slot with its first channel of the user, once however many it holds; the user's 21st socket is refused on either face; unsubscribing the last channel or closing frees the slot", async () => {
    const user = await signUp(server);
    const address = newAddress();
    const limit = DEFAULT_STREAM_LIMITS.maxSocketsPerUser;
    const privateChannel = `private-account.${user.login}`;
    const presenceChannel = `presence-account.${user.login}`;
    const open: StreamClient[] = [];
    for (let index = 0; index < limit - 2; index += 1) open.push(await authorised(address, user.token));

    // A public channel takes no user slot; two channels of the user take one.
    const first = await pusherSocket(address);
    first.client.send("pusher:subscribe", { channel: "quotes.EURUSD" });
    await first.client.event("pusher_internal:subscription_succeeded", "quotes.EURUSD");
    expect(stream().openSockets("user", user.userId)).toBe(limit - 2);
    expect((await subscribeChannel(first, user.token, privateChannel)).event).toBe(
      "pusher_internal:subscription_succeeded",
    );
    expect((await subscribeChannel(first, user.token, presenceChannel)).event).toBe(
      "pusher_internal:subscription_succeeded",
    );
    expect(stream().openSockets("user", user.userId)).toBe(limit - 1);
    const second = await pusherSocket(address);
    expect((await subscribeChannel(second, user.token, privateChannel)).event).toBe(
      "pusher_internal:subscription_succeeded",
    );
    expect(stream().openSockets("user", user.userId)).toBe(limit);

    // Full: the next Pusher socket's channel is refused (the socket stays open), and the next native socket.
    const third = await pusherSocket(address);
    expectLimitReached(await subscribeChannel(third, user.token, privateChannel), /20 sockets per user/);
    expect(stream().openSockets("user", user.userId)).toBe(limit);
    third.client.send("pusher:ping", {});
    await third.client.event("pusher:pong");
    await expectRefused(await native(address, await anotherSession(user)));

    // The second Pusher socket lets go of its only channel of the user: a native socket fits again.
    second.client.send("pusher:unsubscribe", { channel: privateChannel });
    await until(() => stream().openSockets("user", user.userId) === limit - 1, 3000, "the unsubscribed slot released");
    open.push(await authorised(address, user.token));
    expect(stream().openSockets("user", user.userId)).toBe(limit);
    // The first lets go of one of its two channels: it still holds its slot.
    first.client.send("pusher:unsubscribe", { channel: presenceChannel });
    first.client.send("pusher:ping", {});
    await first.client.event("pusher:pong");
    expect(stream().openSockets("user", user.userId)).toBe(limit);

    // A native socket closes: the third Pusher socket's channel fits; closing that socket frees its slot.
    await open[0]!.close();
    await until(() => stream().openSockets("user", user.userId) === limit - 1, 3000, "the closed socket released");
    expect((await subscribeChannel(third, user.token, privateChannel)).event).toBe(
      "pusher_internal:subscription_succeeded",
    );
    expect(stream().openSockets("user", user.userId)).toBe(limit);
    third.client.close();
    await until(
      () => stream().openSockets("user", user.userId) === limit - 1,
      3000,
      "the closed Pusher socket released",
    );
  });

  it("an API key's 11th socket across native and Pusher is refused, and the refusal keeps no user slot", async () => {
    const user = await signUp(server);
    const address = newAddress();
    const key = await createApiKey(server, user, "read");
    const limit = DEFAULT_STREAM_LIMITS.maxSocketsPerApiKey;
    const channel = `private-account.${user.login}`;
    for (let index = 0; index < limit - 1; index += 1) await authorised(address, key.key);
    const first = await pusherSocket(address);
    expect((await subscribeChannel(first, key.key, channel)).event).toBe("pusher_internal:subscription_succeeded");
    expect(stream().openSockets("apiKey", key.id)).toBe(limit);
    expect(stream().openSockets("user", user.userId)).toBe(limit);

    const second = await pusherSocket(address);
    expectLimitReached(await subscribeChannel(second, key.key, channel), /10 sockets per API key/);
    expect(stream().openSockets("apiKey", key.id)).toBe(limit);
    expect(stream().openSockets("user", user.userId)).toBe(limit);
    // A native socket of the key takes the place of its oldest native one; its Pusher socket has none to give.
    const keySocketsBefore = stream().openSockets("apiKey", key.id);
    await authorised(address, key.key);
    expect(stream().openSockets("apiKey", key.id)).toBe(keySocketsBefore);
    // The user's session is not the key: it authorises the same channel on that socket.
    expect((await subscribeChannel(second, user.token, channel)).event).toBe("pusher_internal:subscription_succeeded");
    expect(stream().openSockets("user", user.userId)).toBe(limit + 1);

    first.client.close();
    await until(() => stream().openSockets("apiKey", key.id) === limit - 1, 3000, "the closed Pusher socket released");
    await authorised(address, key.key);
    expect(stream().openSockets("apiKey", key.id)).toBe(limit);
  });

  it("a channel its session's logout ends gives back the Pusher socket's user slot", async () => {
    const user = await signUp(server);
    const socket = await pusherSocket(newAddress());
    const channel = `private-account.${user.login}`;
    expect((await subscribeChannel(socket, user.token, channel)).event).toBe("pusher_internal:subscription_succeeded");
    expect(stream().openSockets("user", user.userId)).toBe(1);
    expect((await call(server, "POST", "/api/v1/logout", { token: user.token })).status).toBe(200);
    expect((await socket.client.event("pusher:subscription_error", channel)).data.status).toBe(401);
    expect(stream().openSockets("user", user.userId)).toBe(0);
  });
});
