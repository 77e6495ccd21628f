/**
 * Slow consumers: a client that stops reading keeps the server's memory bounded (quotes conflate, the
 * send buffer stays near the high-water mark) and ends closed with SLOW_CONSUMER (4008), while a client
 * reading the same topics keeps receiving promptly. Account events are never dropped: a client that
 * falls too far behind on them is closed, and what it got before is complete.
 */
import type { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BusTopics } from "../src/bus.ts";
import { WsCloseCodes } from "../src/ws-codes.ts";
import { signUp, startTestServer, type TestServer } from "./helpers.ts";
import { listenStream, StreamClient } from "./ws-helpers.ts";

const HIGH_WATER = 64 * 1024;
const MAX_BUFFERED = 512 * 1024;
const SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "USDCHF", "AUDUSD", "USDCAD", "EURJPY", "EURGBP"];
const PADDING = "x".repeat(4000);

let server: TestServer;
let url: string;
beforeAll(async () => {
  server = await startTestServer({});
  url = await listenStream(server);
  Object.assign(server.nativeStream.limits, {
    highWaterBytes: HIGH_WATER,
    maxBufferedBytes: MAX_BUFFERED,
    slowConsumerMs: 300,
    closeGraceMs: 10_000,
  });
});
afterAll(async () => {
  await server.close();
});

const rawSocket = (client: StreamClient) => (client.ws as unknown as { _socket: Socket })._socket;
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("slow consumers", () => {
  it("conflates quotes for a client that stops reading, bounds memory, closes it with 4008; others stay prompt", async () => {
    const user = await signUp(server);
    const slow = await StreamClient.connect(url, user.token);
    const fast = await StreamClient.connect(url, user.token);
    for (const client of [slow, fast]) {
      client.send("subscribe", { symbols: SYMBOLS, events: ["quoteEvent"] });
      await client.nextOf("subscribed");
    }
    rawSocket(slow).pause();
    const latencies: number[] = [];
    fast.ws.on("message", (data) => {
      const message = JSON.parse(data.toString());
      if (message.type === "quoteEvent" && message.payload.sentAt)
        latencies.push(performance.now() - message.payload.sentAt);
    });
    let maxBuffered = 0;
    let maxQueued = 0;
    let sequence = 0;
    const started = performance.now();
    // A fast feed (straight onto the bus, as market data publishes): 8 symbols × ~4 KB per turn.
    while (server.nativeStream.closes.SLOW_CONSUMER === undefined && performance.now() - started < 10_000) {
      for (const symbol of SYMBOLS) {
        sequence += 1;
        server.platform.bus.publish(BusTopics.quotes(symbol), {
          type: "quoteEvent",
          payload: {
            symbol,
            bid: 1,
            ask: 1.0001,
            ts: "2026-06-02T12:00:00.000Z",
            sentAt: performance.now(),
            sequence,
            PADDING,
          },
        });
      }
      await tick();
      const stats = server.nativeStream.stats();
      maxBuffered = Math.max(maxBuffered, stats.maxBufferedBytes);
      maxQueued = Math.max(maxQueued, stats.maxQueuedBytes);
    }
    expect(server.nativeStream.closes.SLOW_CONSUMER).toBe(1);
    // Bounded: the send buffer never passes the high-water mark by more than one flush of conflated quotes.
    expect(maxBuffered).toBeLessThanOrEqual(HIGH_WATER + SYMBOLS.length * 4200 + 64 * 1024);
    expect(maxQueued).toBeLessThanOrEqual(MAX_BUFFERED);
    // The fast client kept up: the last quote of each symbol arrived, and promptly.
    await fast.next((message) => message.type === "quoteEvent" && message.payload.sequence === sequence);
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.floor(latencies.length * 0.99)]!;
    expect(latencies.length).toBeGreaterThan(100);
    expect(p99).toBeLessThan(250);
    // The slow client, reading again, finds the close code after what was buffered.
    rawSocket(slow).resume();
    expect((await slow.closed).code).toBe(WsCloseCodes.SLOW_CONSUMER.code);
    expect(fast.ws.readyState).toBe(fast.ws.OPEN);
    await fast.close();
  });

  it("never drops account events: a client too far behind is closed, and what it got has no gap", async () => {
    const user = await signUp(server);
    const slow = await StreamClient.connect(url, user.token);
    slow.send("subscribe", { events: ["balanceEvent"] });
    await slow.nextOf("subscribed");
    rawSocket(slow).pause();
    const before = server.nativeStream.closes.SLOW_CONSUMER ?? 0;
    const topic = BusTopics.account(user.login);
    let seq = 1_000_000;
    const started = performance.now();
    while ((server.nativeStream.closes.SLOW_CONSUMER ?? 0) === before && performance.now() - started < 10_000) {
      for (let index = 0; index < 20; index += 1) {
        seq += 1;
        server.platform.bus.publish(topic, {
          type: "balanceEvent",
          seq,
          payload: { accountId: user.login, seq, event: "BALANCE_OPERATION", time: "", comment: PADDING },
        });
      }
      await tick();
      expect(server.nativeStream.stats().maxQueuedBytes).toBeLessThanOrEqual(MAX_BUFFERED);
    }
    expect(server.nativeStream.closes.SLOW_CONSUMER).toBe(before + 1);
    rawSocket(slow).resume();
    expect((await slow.closed).code).toBe(4008);
    const seqs = slow.all("balanceEvent").map((message) => message.payload.seq as number);
    expect(seqs.length).toBeGreaterThan(10);
    seqs.forEach((value, index) => expect(value).toBe(1_000_001 + index));
  });
});
