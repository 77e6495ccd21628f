/**
 * A snapshot answer (an account, its positions, its working orders) names in `Bourse-Seq` the seq of the last account
 * event it reflects, so a terminal joins it to the stream without double-counting or missing a deal. Found by the
 * audit of a terminal's journey of 7 December (sixth session): no answer said where it stood.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { SNAPSHOT_SEQ_HEADER } from "../src/schemas.ts";
import { call, pushQuote, signUp, startTestServer, type TestServer } from "./helpers.ts";
import { listenStream, StreamClient } from "./ws-helpers.ts";

let server: TestServer;
let url: string;
beforeAll(async () => {
  server = await startTestServer({ environment: { BOURSE_CORS_ORIGINS: "https://terminal.example" } });
  url = await listenStream(server);
  await pushQuote(server, "EURUSD", "1.08430", "1.08440");
});
afterAll(async () => server.close());

const ACCOUNT_EVENTS = ["executionEvent", "portfolioEvent", "balanceEvent"];

it("names the seq through which the snapshot is current: the stream's events after it are exactly what it lacks", async () => {
  const user = await signUp(server);
  const base = `/api/v1/accounts/${user.login}`;
  const buy = (volume: number) =>
    call(server, "POST", `${base}/orders`, {
      token: user.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume },
    });
  expect((await buy(0.1)).status).toBe(200);

  const positions = await call(server, "GET", `${base}/positions`, {
    token: user.token,
    headers: { origin: "https://terminal.example" },
  });
  const seq = Number(positions.headers[SNAPSHOT_SEQ_HEADER]);
  expect(seq).toBeGreaterThan(0);
  expect(positions.body.rows).toHaveLength(1);
  // A browser may read it.
  expect(positions.headers["access-control-expose-headers"]).toContain("Bourse-Seq");
  for (const path of [`${base}/orders`, base, "/api/v1/account"]) {
    const answer = await call(server, "GET", path, { token: user.token });
    expect(Number(answer.headers[SNAPSHOT_SEQ_HEADER]), path).toBe(seq);
  }

  // What came after the snapshot: a second buy. Resuming from the header's seq gives its events and nothing before.
  const second = await buy(0.2);
  const client = await StreamClient.connect(url, user.token);
  try {
    client.send("subscribe", { events: ACCOUNT_EVENTS, sinceSeq: seq }, "s");
    await client.next((message) => message.type === "executionEvent" && message.payload.event === "DEAL");
    await client.next((message) => message.type === "portfolioEvent" && message.payload.event === "DEAL");
    const replayed = client.messages.filter((message) => ACCOUNT_EVENTS.includes(message.type));
    expect(replayed.length).toBeGreaterThan(0);
    for (const message of replayed) expect(message.payload.seq).toBeGreaterThan(seq);
    const orderIds = new Set(replayed.map((message) => message.payload.orderId).filter((id) => id !== undefined));
    expect([...orderIds]).toEqual([second.body.data.order.id]);
  } finally {
    await client.close();
  }
  const after = await call(server, "GET", `${base}/positions`, { token: user.token });
  expect(Number(after.headers[SNAPSHOT_SEQ_HEADER])).toBeGreaterThan(seq);
  expect(after.body.rows).toHaveLength(2);
});

// Found by the audit of a mobile client's journey of 7 December (seventh session): the three snapshots, loaded apart,
// could each stand at another seq.
it("answers the account, its positions and its orders together at one seq, as the three snapshots answer them", async () => {
  const user = await signUp(server);
  const base = `/api/v1/accounts/${user.login}`;
  expect(
    (
      await call(server, "POST", `${base}/orders`, {
        token: user.token,
        body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 },
      })
    ).status,
  ).toBe(200);
  expect(
    (
      await call(server, "POST", `${base}/orders`, {
        token: user.token,
        body: { symbol: "EURUSD", side: "BUY", type: "LIMIT", volume: 0.1, price: 1.07 },
      })
    ).status,
  ).toBe(200);
  const snapshot = await call(server, "GET", `${base}/snapshot`, { token: user.token });
  expect(snapshot.status).toBe(200);
  const seq = Number(snapshot.headers[SNAPSHOT_SEQ_HEADER]);
  expect(seq).toBeGreaterThan(0);
  const get = (path: string) => call(server, "GET", path, { token: user.token });
  const [account, positions, orders] = [await get(base), await get(`${base}/positions`), await get(`${base}/orders`)];
  for (const answer of [account, positions, orders]) expect(Number(answer.headers[SNAPSHOT_SEQ_HEADER])).toBe(seq);
  expect(snapshot.body.data).toEqual({ account: account.body.data, positions: positions.body, orders: orders.body });
  expect(snapshot.body.data.positions.rows).toHaveLength(1);
  expect(snapshot.body.data.orders.rows).toHaveLength(1);
  const other = await signUp(server);
  expect((await call(server, "GET", `${base}/snapshot`, { token: other.token })).status).toBe(403);
});
