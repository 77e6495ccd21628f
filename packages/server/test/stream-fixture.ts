/**
 * What the tests of open streams with real clients share (stream-expiry, stream-revocation): a server with the
 * native and Pusher streams listening, sockets closed after each test, fresh quotes, deposits, Pusher sockets and
 * channel grants.
 */
import { afterEach, expect } from "vitest";
import { admin, pushQuote, startTestServer, type TestServer } from "./helpers.ts";
import { RawPusherClient, http, listenHttp } from "./pusher-helpers.ts";
import { listenStream } from "./ws-helpers.ts";

export interface StreamServers {
  readonly server: TestServer;
  /** The HTTP base (Pusher sockets, channel grants). */
  readonly base: string;
  /** The native stream's WebSocket URL. */
  readonly url: string;
}

const FIRST_BID = 1.0843;
/** The last EURUSD bid pushed on each server. */
const lastBids = new WeakMap<TestServer, number>();

/** Starts a test server with both streams listening and a first EURUSD quote, so trading and quotes flow. */
export async function startStreamServers(): Promise<StreamServers> {
  const server = await startTestServer();
  const base = await listenHttp(server);
  const url = await listenStream(server);
  await pushQuote(server, "EURUSD", FIRST_BID.toFixed(5), (FIRST_BID + 0.0001).toFixed(5));
  lastBids.set(server, FIRST_BID);
  return { server, base, url };
}

/** Sockets pushed onto the returned list are closed after each test. */
export function socketsClosedAfterEach(): { close(): unknown }[] {
  const sockets: { close(): unknown }[] = [];
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.close();
  });
  return sockets;
}

/** Pushes a new EURUSD quote, one step above the last (each differs, so each is published); resolves with its bid. */
export async function nextQuote(server: TestServer): Promise<number> {
  const bid = Math.round(((lastBids.get(server) ?? FIRST_BID) + 0.0001) * 1e5) / 1e5;
  lastBids.set(server, bid);
  await pushQuote(server, "EURUSD", bid.toFixed(5), (bid + 0.0001).toFixed(5));
  return bid;
}

/** Deposits into the user's account through the admin API (checked). */
export async function deposit(server: TestServer, user: { login: number }, amount = "10"): Promise<void> {
  expect((await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount })).status).toBe(200);
}

/** A raw Pusher client on the server's app key (closed after the test) and its socket id. */
export async function pusherSocket(
  streams: StreamServers,
  sockets: { close(): unknown }[],
): Promise<{ client: RawPusherClient; socketId: string }> {
  const appKey = streams.server.config.pusherAppKey;
  const client = await RawPusherClient.connect(streams.base, `/app/${appKey}?protocol=7&client=js&version=8.6.0`);
  sockets.push(client);
  return { client, socketId: await client.socketId() };
}

/** Asks `/api/v2/ws/auth` to grant `channel` to the socket, with `token` (JWT or API key); checks the 200. */
export async function channelGrant(
  base: string,
  token: string,
  socketId: string,
  channel: string,
): Promise<{ auth: string; channel_data?: string }> {
  const granted = await http(base, "POST", "/api/v2/ws/auth", {
    token,
    form: { socket_id: socketId, channel_name: channel },
  });
  expect(granted.status).toBe(200);
  return granted.body;
}
