/**
 * A session's expiry reaches open sockets, with real clients: the native stream closes with 4003
 * (TOKEN_EXPIRED) after an `error`; a Pusher channel the session authorised ends with
 * `pusher:subscription_error` (401) while the socket and its public channels go on. The clock is the test's
 * manual clock: each test moves it to a little before the session's end, and the sockets' timers run out
 * in real time.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signUp, type TestServer } from "./helpers.ts";
import {
  channelGrant,
  deposit,
  nextQuote,
  pusherSocket,
  socketsClosedAfterEach,
  startStreamServers,
  type StreamServers,
} from "./stream-fixture.ts";
import { StreamClient } from "./ws-helpers.ts";
import { WsCloseCodes } from "../src/ws-codes.ts";

/** How long before its end each test's session is used: long enough to subscribe, short enough to wait for. */
const LEFT_MS = 1_200;
const WAIT_MS = 5_000;

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

/** Moves the manual clock to `LEFT_MS` before the end of a session issued now. */
function nearlyExpire(): void {
  server.clock.advance(server.config.sessionTtlSeconds * 1000 - LEFT_MS);
}

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not happen`)), WAIT_MS)),
  ]);
}

describe("session expiry on open streams", () => {
  it("closes a native socket with 4003 (TOKEN_EXPIRED) when its session ends", async () => {
    const user = await signUp(server);
    nearlyExpire();
    const client = await StreamClient.connect(streams.url, user.token);
    sockets.push(client);
    client.send("subscribe", { events: ["balanceEvent"] }, "balance");
    await client.nextOf("subscribed", (message) => message.id === "balance");
    const started = Date.now();
    const { code } = await within(client.closed, "the close");
    expect(Date.now() - started).toBeLessThan(WAIT_MS);
    expect(code).toBe(WsCloseCodes.TOKEN_EXPIRED.code);
    expect(code).toBe(4003);
    expect(client.messages.at(-1)).toMatchObject({ type: "error", payload: { code: "TOKEN_EXPIRED" } });
  });

  it("ends the Pusher account channel a session authorised when the session ends; public channels go on", async () => {
    const user = await signUp(server);
    nearlyExpire();
    const { client, socketId } = await pusherSocket(streams, sockets);
    client.send("pusher:subscribe", { channel: "quotes.EURUSD" });
    await client.event("pusher_internal:subscription_succeeded", "quotes.EURUSD");
    const channel = `presence-account.${user.login}`;
    const grant = await channelGrant(streams.base, user.token, socketId, channel);
    client.send("pusher:subscribe", { channel, auth: grant.auth, channel_data: grant.channel_data });
    await client.event("pusher_internal:subscription_succeeded", channel);
    expect(server.pusherStream.stats().presenceChannels).toBe(1);

    const ended = await within(client.event("pusher:subscription_error", channel), "the channel's end");
    expect(ended.data).toEqual({ type: "AuthError", error: expect.stringContaining("expired"), status: 401 });
    expect(server.pusherStream.stats().presenceChannels).toBe(0);
    // Nothing more on the channel; the socket and its public channel carry on.
    await deposit(server, user);
    const quote = await nextQuote(server);
    await client.next((message) => message.event === "quoteEvent" && message.data.bid === quote);
    expect(client.messages.filter((message) => message.channel === channel).at(-1)!.event).toBe(
      "pusher:subscription_error",
    );
    expect(client.ws.readyState).toBe(client.ws.OPEN);
  });

  it("refuses to subscribe with a grant whose session ended after it was given", async () => {
    const user = await signUp(server);
    nearlyExpire();
    const { client, socketId } = await pusherSocket(streams, sockets);
    const channel = `private-account.${user.login}`;
    const grant = await channelGrant(streams.base, user.token, socketId, channel);
    server.clock.advance(LEFT_MS);
    client.send("pusher:subscribe", { channel, auth: grant.auth });
    const refused = await client.event("pusher:subscription_error", channel);
    expect(refused.data).toEqual({ type: "AuthError", error: expect.stringContaining("expired"), status: 401 });
    expect(client.messages.some((message) => message.event === "pusher_internal:subscription_succeeded")).toBe(false);
  });
});
