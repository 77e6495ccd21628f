/**
 * What a phone reconnecting to the native stream is told when the server, not its token, is the trouble (found by the
 * audit of a mobile client's journey of 7 December, seventh session): a database stall while the stream checked a
 * token closed with 4001 "sign in again", and a phone reconnecting while a deploy recovered was authorised with no
 * accounts. Now the first closes with 1013 (try again later) and the token is kept; the second is refused 503 at the
 * upgrade, as while the server stops. And the per-address bounds, which a carrier's NAT shares among its phones, are
 * settings with room for one.
 */
import { StorageUnavailableError } from "@bourse/store";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { ManualClock } from "../src/clock.ts";
import { loadServerConfig } from "../src/config.ts";
import { createServer } from "../src/server.ts";
import { WsCloseCodes } from "../src/ws-codes.ts";
import { DEFAULT_STREAM_LIMITS, PONG_MARGIN_MS } from "../src/ws-stream.ts";
import { TUESDAY_NOON, call, signUp, startTestServer, type TestServer } from "./helpers.ts";
import { until } from "./pusher-helpers.ts";
import { StreamClient, listenStream, streamServer } from "./ws-helpers.ts";

const fixture = streamServer();

describe("a stream whose token cannot be checked just now", () => {
  it("closes with 1013 (try again later) after the 503's error, and the same token works once the store is back", async () => {
    const { server } = fixture;
    const user = await signUp(server);
    // A sign-in whose session the server has not cached yet: a phone back after a deploy.
    const signedIn = await call(server, "POST", "/api/v1/login", {
      body: { email: user.email, password: user.password },
    });
    const token = signedIn.body.data.token as string;
    const store = (server.platform as unknown as { platformStore: { findSession: (id: string) => Promise<unknown> } })
      .platformStore;
    const findSession = store.findSession;
    store.findSession = () => Promise.reject(new StorageUnavailableError("statement timeout", false));
    try {
      const phone = await StreamClient.connect(fixture.url, token);
      const error = await phone.nextOf("error");
      expect(error.payload).toEqual({
        code: "ENGINE_UNAVAILABLE",
        message: "The database is unavailable: nothing was changed; try again shortly",
      });
      expect(await phone.closed).toMatchObject({ code: WsCloseCodes.TRY_AGAIN_LATER.code });
    } finally {
      store.findSession = findSession;
    }
    const again = await StreamClient.connect(fixture.url, token);
    await again.expectOpen();
    await again.close();
  });
});

describe("a stream upgrade before the engine is ready", () => {
  it("is refused 503, as while the server stops; once started, the same request is taken", async () => {
    const dataDirectory = mkdtempSync(path.join(tmpdir(), "bourse-starting-"));
    const config = loadServerConfig({
      BOURSE_DATA_DIR: dataDirectory,
      BOURSE_FEED: "push",
      BOURSE_ADMIN_TOKEN: "test-admin-token-0000",
      BOURSE_JWT_SECRET: "test-jwt-secret-of-enough-length-000000",
    });
    const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
    const starting = await createServer({ config, clock: new ManualClock(TUESDAY_NOON), log: quiet });
    try {
      // As `listen` does: the listener first, then the recovery.
      await starting.app.listen({ port: 0, host: "127.0.0.1" });
      const { port } = starting.app.server.address() as AddressInfo;
      const url = `ws://127.0.0.1:${port}/api/v1/ws`;
      const status = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(url);
        ws.on("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0));
        ws.on("open", () => reject(new Error("the upgrade was taken before the engine was ready")));
        ws.on("error", () => undefined);
      });
      expect(status).toBe(503);
      await starting.start();
      // Opened: the upgrade is taken.
      const client = await StreamClient.connect(url, null);
      await client.close();
    } finally {
      await starting.close();
      rmSync(dataDirectory, { recursive: true, force: true });
    }
  });
});

describe("the stream's bounds per client address", () => {
  it("leave room for a carrier's NAT by default (1,000 open, 100 waiting for authorize), and are settings", () => {
    const dataDirectory = mkdtempSync(path.join(tmpdir(), "bourse-limits-"));
    try {
      const defaults = loadServerConfig({ BOURSE_DATA_DIR: dataDirectory });
      expect([defaults.streamSocketsPerAddress, defaults.streamUnauthorizedSocketsPerAddress]).toEqual([1000, 100]);
      expect([
        DEFAULT_STREAM_LIMITS.maxSocketsPerAddress,
        DEFAULT_STREAM_LIMITS.maxUnauthorizedSocketsPerAddress,
      ]).toEqual([1000, 100]);
      const set = loadServerConfig({
        BOURSE_DATA_DIR: dataDirectory,
        BOURSE_STREAM_SOCKETS_PER_ADDRESS: "5000",
        BOURSE_STREAM_UNAUTHORIZED_SOCKETS_PER_ADDRESS: "300",
      });
      expect([set.streamSocketsPerAddress, set.streamUnauthorizedSocketsPerAddress]).toEqual([5000, 300]);
      expect(() =>
        loadServerConfig({ BOURSE_DATA_DIR: dataDirectory, BOURSE_STREAM_SOCKETS_PER_ADDRESS: "0" }),
      ).toThrow(/BOURSE_STREAM_SOCKETS_PER_ADDRESS/);
    } finally {
      rmSync(dataDirectory, { recursive: true, force: true });
    }
  });

  it("are what the server's native and Pusher streams hold to", () => {
    const { server } = fixture;
    expect(server.nativeStream.limits.maxSocketsPerAddress).toBe(1000);
    expect(server.pusherStream.limits.maxSocketsPerAddress).toBe(1000);
  });
});

describe("the stream's replay window", () => {
  it("is a setting, 10,000 journal events by default, and the native stream holds to it", async () => {
    const dataDirectory = mkdtempSync(path.join(tmpdir(), "bourse-window-"));
    try {
      expect(loadServerConfig({ BOURSE_DATA_DIR: dataDirectory }).streamReplayWindowEvents).toBe(10_000);
      const set = loadServerConfig({ BOURSE_DATA_DIR: dataDirectory, BOURSE_STREAM_REPLAY_WINDOW_EVENTS: "100000" });
      expect(set.streamReplayWindowEvents).toBe(100_000);
      expect(() =>
        loadServerConfig({ BOURSE_DATA_DIR: dataDirectory, BOURSE_STREAM_REPLAY_WINDOW_EVENTS: "10" }),
      ).toThrow(/BOURSE_STREAM_REPLAY_WINDOW_EVENTS/);
    } finally {
      rmSync(dataDirectory, { recursive: true, force: true });
    }
    expect(fixture.server.nativeStream.limits.replayWindowEvents).toBe(10_000);
    const wide = await startTestServer({ environment: { BOURSE_STREAM_REPLAY_WINDOW_EVENTS: "50000" } });
    try {
      expect(wide.nativeStream.limits.replayWindowEvents).toBe(50_000);
    } finally {
      await wide.close();
    }
  });
});

describe("a socket replaced by a newer one of its credential (found by the review of 7 December, seventh session)", () => {
  /** The client's network "dies": it reads nothing more, so it never answers a ping or the server's close frame. */
  function goDead(client: StreamClient): void {
    (client.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  async function authorisedFrom(url: string, address: string, token: string) {
    const client = await StreamClient.connect(url, token, { headers: { "x-forwarded-for": address } });
    client.send("ping", {}, "alive");
    await client.nextOf("pong");
    return client;
  }

  /**
   * Runs `test` on a server of its own whose user may hold 2 sockets, both open: one live, one whose network died; the
   * server closes after.
   */
  async function withLiveAndDead(
    test: (context: {
      server: TestServer;
      url: string;
      user: Awaited<ReturnType<typeof signUp>>;
      live: StreamClient;
    }) => Promise<void>,
  ): Promise<void> {
    const server = await startTestServer();
    try {
      const url = await listenStream(server);
      server.nativeStream.limits.maxSocketsPerUser = 2;
      const user = await signUp(server);
      const live = await authorisedFrom(url, "127.0.0.1", user.token);
      goDead(await authorisedFrom(url, "127.0.0.1", user.token));
      await test({ server, url, user, live });
    } finally {
      await server.close();
    }
  }

  it("keeps its address slot until it is gone, so one address never holds more sockets than its bound", async () => {
    const server = await startTestServer({ environment: { BOURSE_TRUST_PROXY: "loopback" } });
    try {
      const url = await listenStream(server);
      const stream = server.nativeStream;
      stream.limits.maxSocketsPerUser = 2;
      const user = await signUp(server);
      const address = "198.51.100.7";
      for (let index = 0; index < 2; index += 1) goDead(await authorisedFrom(url, address, user.token));
      await authorisedFrom(url, address, user.token);
      // The replaced socket's peer never answers the close: it is still open, and still counted for its address.
      expect(stream.closes.REPLACED).toBe(1);
      expect(stream.openSockets("user", user.userId)).toBe(2);
      expect(stream.openSockets("address", address)).toBe(3);
      expect(stream.connectionCount).toBe(3);
    } finally {
      await server.close();
    }
  });

  it("a reconnect takes the place of a socket the server's ping already gave up on, still closing", async () => {
    const server = await startTestServer();
    try {
      const url = await listenStream(server);
      const stream = server.nativeStream;
      stream.limits.maxSocketsPerUser = 2;
      const user = await signUp(server);
      for (let index = 0; index < 2; index += 1) goDead(await authorisedFrom(url, "127.0.0.1", user.token));
      stream.setPingInterval(100);
      await until(() => (stream.closes.PING_TIMEOUT ?? 0) >= 2, 3000, "the server's pings gave up on both");
      stream.setPingInterval(20_000);
      const phone = await authorisedFrom(url, "127.0.0.1", user.token);
      await phone.expectOpen();
      // The phone, and the other dead socket until its close's grace ends.
      expect(stream.openSockets("user", user.userId)).toBe(2);
    } finally {
      await server.close();
    }
  });

  it("prefers a socket silent since the last ping to a live one", async () => {
    await withLiveAndDead(async ({ server, url, user, live }) => {
      const stream = server.nativeStream;
      // One ping round: the live socket answers, the dead one does not, and its ping ages past the pong's margin.
      stream.setPingInterval(150);
      await new Promise((resolve) => setTimeout(resolve, 200));
      stream.setPingInterval(20_000);
      server.clock.advance(PONG_MARGIN_MS + 1);
      await authorisedFrom(url, "127.0.0.1", user.token);
      await live.expectOpen();
      expect(stream.closes.REPLACED ?? 0).toBe(1);
    });
  });

  // For a round trip after each ping round every socket awaited its pong and looked silent: a reconnect then took the
  // place of the oldest socket, a live one, before the one the round had just closed for silence.
  it("right after a ping round, takes the place of the socket that stopped answering, not of a live one awaiting its pong", async () => {
    await withLiveAndDead(async ({ server, url, user, live }) => {
      const stream = server.nativeStream;
      const liveSocket = (live.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
      // The first round: the live socket answers, then its network slows (its next pong is a long round trip away).
      const firstPing = new Promise((resolve) => live.ws.once("ping", resolve));
      stream.setPingInterval(300);
      await firstPing;
      liveSocket.pause();
      // The second round closes the dead socket for silence (it stays in its close's grace, holding its slot) and pings
      // the live one, whose pong is still on its way when the phone reconnects.
      await until(() => (stream.closes.PING_TIMEOUT ?? 0) >= 1, 3000, "the second ping round");
      stream.setPingInterval(20_000);
      const phone = await authorisedFrom(url, "127.0.0.1", user.token);
      liveSocket.resume();
      await live.expectOpen();
      await phone.expectOpen();
      expect(stream.closes.REPLACED ?? 0).toBe(0);
      expect(stream.openSockets("user", user.userId)).toBe(2);
    });
  });
});
