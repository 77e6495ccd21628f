/**
 * Resume after reconnect: a client goes away, orders fill and a stop loss triggers meanwhile, the server
 * even restarts on the same data directory; reconnecting with `sinceSeq` it receives every missed account
 * event once, in order, exactly as a client that stayed connected received them, and then the live ones.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.ts";
import { BusTopics } from "../src/bus.ts";
import { admin, call, pushQuote, signUp, startTestServer, TUESDAY_NOON, type TestServer } from "./helpers.ts";
import { listenStream, StreamClient, type Message } from "./ws-helpers.ts";

const dataDirectory = mkdtempSync(path.join(tmpdir(), "bourse-ws-resume-"));
const servers: TestServer[] = [];
afterAll(async () => {
  for (const server of servers) await server.close().catch(() => undefined);
  rmSync(dataDirectory, { recursive: true, force: true });
});

const ACCOUNT_EVENTS = ["executionEvent", "portfolioEvent", "balanceEvent"];
const accountEvents = (client: StreamClient) =>
  client.messages.filter((message) => ACCOUNT_EVENTS.includes(message.type));
const key = (message: Message) => `${message.type}:${message.payload.event}:${message.payload.seq}`;

describe("resume with sinceSeq", () => {
  it("replays what a client missed across a restart, once and in order, then streams live", async () => {
    const clock = new ManualClock(TUESDAY_NOON);
    let server = await startTestServer({ dataDirectory, clock });
    servers.push(server);
    let url = await listenStream(server);
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const base = `/api/v1/accounts/${user.login}`;

    const subscribe = { events: ACCOUNT_EVENTS };
    const witness = await StreamClient.connect(url, user.token);
    witness.send("subscribe", subscribe);
    await witness.nextOf("subscribed");
    const client = await StreamClient.connect(url, user.token);
    client.send("subscribe", subscribe);
    await client.nextOf("subscribed");

    // Seen by both: a market buy with a stop loss.
    const buy = await call(server, "POST", `${base}/orders`, {
      token: user.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.5, sl: 1.08 },
    });
    expect(buy.status).toBe(200);
    await client.next((message) => message.type === "executionEvent" && message.payload.status === "FILLED");
    const lastSeen = Math.max(...accountEvents(client).map((message) => message.payload.seq));
    await client.close();

    // While away: a limit order placed and filled, the stop loss triggered, a deposit.
    const limit = await call(server, "POST", `${base}/orders`, {
      token: user.token,
      body: { symbol: "EURUSD", side: "SELL", type: "LIMIT", volume: 0.2, price: 1.085 },
    });
    expect(limit.status).toBe(200);
    await pushQuote(server, "EURUSD", "1.08510", "1.08520");
    await pushQuote(server, "EURUSD", "1.07990", "1.08000");
    expect(
      (await admin(server, "POST", `${base.replace("/api/v1", "/admin/v1")}/deposit`, { amount: 100 })).status,
    ).toBe(200);
    await witness.next((message) => message.type === "balanceEvent" && message.payload.kind === "DEPOSIT");
    const missedBeforeRestart = accountEvents(witness).filter((message) => message.payload.seq > lastSeen);
    const events = missedBeforeRestart.map((message) => message.payload.event);
    expect(events).toContain("ORDER_ACCEPTED");
    expect(missedBeforeRestart.some((message) => message.payload.deal?.reason === "STOP_LOSS")).toBe(true);

    // The server restarts on the same data directory.
    await server.close();
    expect((await witness.closed).code).toBe(1001);
    server = await startTestServer({ dataDirectory, clock });
    servers.push(server);
    url = await listenStream(server);
    // One more while still away, after the restart. Money leaves only once the open position has a live price
    // again (the kept one is hours old in production): the feed quotes it first, at the last price (no event).
    await pushQuote(server, "EURUSD", "1.07990", "1.08000");
    const withdrawal = await admin(server, "POST", `/admin/v1/accounts/${user.login}/withdraw`, { amount: 30 });
    expect(withdrawal.status).toBe(200);

    const back = await StreamClient.connect(url, user.token);
    back.send("subscribe", { ...subscribe, sinceSeq: lastSeen }, "resume");
    expect(await back.nextOf("subscribed")).toEqual({
      type: "subscribed",
      payload: { ...subscribe, sinceSeq: lastSeen },
      id: "resume",
    });
    await back.next((message) => message.type === "balanceEvent" && message.payload.kind === "WITHDRAWAL");
    const replayed = accountEvents(back);
    // Exactly what the connected witness got, in the same order, then the withdrawal after the restart.
    expect(replayed.slice(0, missedBeforeRestart.length)).toEqual(missedBeforeRestart);
    const afterRestart = replayed.slice(missedBeforeRestart.length);
    expect(afterRestart.map((message) => [message.type, message.payload.event])).toEqual([
      ["balanceEvent", "BALANCE_OPERATION"],
      ["portfolioEvent", "BALANCE"],
    ]);
    expect(afterRestart[0]!.payload).toMatchObject({ kind: "WITHDRAWAL", amount: -30 });
    // Once each, in journal order.
    const keys = replayed.map(key);
    expect(new Set(keys).size).toBe(keys.length);
    const seqs = replayed.map((message) => message.payload.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);

    // Live from here, with events racing the replay of a second resuming socket: no duplicate, no gap.
    const racer = await StreamClient.connect(url, user.token);
    racer.send("subscribe", { ...subscribe, sinceSeq: lastSeen });
    const deposits = [1, 2, 3].map((amount) =>
      admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount }),
    );
    await Promise.all(deposits);
    await back.next((message) => message.type === "balanceEvent" && message.payload.amount === 3);
    await racer.next((message) => message.type === "balanceEvent" && message.payload.amount === 3);
    const live = accountEvents(back).slice(replayed.length);
    expect(live.map((message) => message.payload.amount).filter((amount) => amount !== undefined)).toEqual([
      1, 1, 2, 2, 3, 3,
    ]);
    const raced = accountEvents(racer);
    expect(raced).toEqual(accountEvents(back));

    await back.close();
    await racer.close();
  });

  // One seq per account for every stream: a second subscribe with sinceSeq for other event types started after the
  // highest seq the first one had delivered, and their missed events were lost without a word (audit of the stream
  // of 7 December).
  it("a second subscribe with sinceSeq replays the new event types' missed events too, and nothing twice", async () => {
    const server = await startTestServer();
    servers.push(server);
    const url = await listenStream(server);
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const since = (await server.platform.lastJournalSequence()) as number;
    for (let index = 0; index < 2; index += 1) {
      const bought = await call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
        token: user.token,
        body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 },
      });
      expect(bought.status).toBe(200);
    }
    await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: 5 });
    const client = await StreamClient.connect(url, user.token);
    client.send("subscribe", { events: ["balanceEvent"], sinceSeq: since }, 1);
    expect((await client.nextOf("balanceEvent")).payload.amount).toBe(5);
    client.send("subscribe", { events: ["executionEvent", "portfolioEvent", "balanceEvent"], sinceSeq: since }, 2);
    await client.next((message) => message.type === "subscribed" && message.id === 2);
    await client.expectOpen();
    const executions = client.all("executionEvent").map((message) => message.payload.event);
    expect(executions).toEqual(["ORDER_ACCEPTED", "DEAL", "ORDER_STATUS", "ORDER_ACCEPTED", "DEAL", "ORDER_STATUS"]);
    expect(client.all("portfolioEvent").map((message) => message.payload.event)).toEqual(["DEAL", "DEAL", "BALANCE"]);
    expect(client.all("balanceEvent")).toHaveLength(1);
    await client.close();
  });

  // The journal is readable once a batch commits, before the batch is published: a replay could read a record
  // and the live bus then carry it again, and the client got the batch twice, out of order (audit of the stream
  // of 7 December). Here the live copy is published by hand after the replay sent the record.
  it("a live copy of an event the replay already sent is not sent again; later events are", async () => {
    const server = await startTestServer();
    servers.push(server);
    const url = await listenStream(server);
    const user = await signUp(server);
    const since = (await server.platform.lastJournalSequence()) as number;
    await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: 5 });
    const client = await StreamClient.connect(url, user.token);
    client.send("subscribe", { events: ["balanceEvent", "portfolioEvent"], sinceSeq: since });
    const replayed = await client.nextOf("balanceEvent");
    await client.nextOf("portfolioEvent");
    for (const type of ["balanceEvent", "portfolioEvent"]) {
      const copy = client.all(type)[0]!;
      server.platform.bus.publish(BusTopics.account(user.login), {
        type: copy.type,
        seq: copy.payload.seq,
        payload: copy.payload,
      });
    }
    await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: 6 });
    expect((await client.nextOf("balanceEvent", (message) => message.payload.amount === 6)).payload.seq).toBe(
      replayed.payload.seq + 1,
    );
    await client.expectOpen();
    expect(client.all("balanceEvent").map((message) => message.payload.amount)).toEqual([5, 6]);
    expect(client.all("portfolioEvent").map((message) => message.payload.amount)).toEqual([5, 6]);
    await client.close();
  });

  it("answers resyncRequired beyond the replay window, then streams live", async () => {
    const server = await startTestServer();
    servers.push(server);
    const url = await listenStream(server);
    const user = await signUp(server);
    for (let index = 0; index < 5; index += 1)
      await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: 1 });
    server.nativeStream.limits.replayWindowEvents = 3;
    const client = await StreamClient.connect(url, user.token);
    client.send("subscribe", { events: ["balanceEvent"], sinceSeq: 0 }, "resume-1");
    await client.nextOf("subscribed");
    const resync = await client.nextOf("resyncRequired");
    // It answers that subscribe: its id is echoed (it was not).
    expect(resync.id).toBe("resume-1");
    expect(resync.payload).toMatchObject({ accountId: user.login, sinceSeq: 0, windowEvents: 3 });
    expect(resync.payload.lastSeq).toBeGreaterThanOrEqual(5);
    const future = await StreamClient.connect(url, user.token);
    future.send("subscribe", { events: ["balanceEvent"], sinceSeq: 1_000_000 });
    expect((await future.nextOf("resyncRequired")).payload.sinceSeq).toBe(1_000_000);
    await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: 7 });
    expect((await client.nextOf("balanceEvent")).payload.amount).toBe(7);
    expect(client.all("balanceEvent")).toHaveLength(1);
    await client.close();
    await future.close();
  });
});
