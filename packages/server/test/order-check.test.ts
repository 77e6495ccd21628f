/**
 * `POST /api/v1/accounts/{accountId}/orders/check` and the stream's `checkOrder`: what placing an order would do now
 * (MetaTrader 5's OrderCheck), nothing placed. Found by the audit of a terminal's journey of 7 December (sixth
 * session): an order ticket could learn an order's margin and commission only by placing it.
 */
import { describe, expect, it } from "vitest";
import { SNAPSHOT_SEQ_HEADER } from "../src/schemas.ts";
import { call, signUp, tableObjects } from "./helpers.ts";
import { streamServer } from "./ws-helpers.ts";

const fixture = streamServer();
type User = Awaited<ReturnType<typeof signUp>>;

const base = (user: User) => `/api/v1/accounts/${user.login}`;
const marketBuy = { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.5 };

function check(user: User, body: Record<string, unknown>, token = user.token) {
  return call(fixture.server, "POST", `${base(user)}/orders/check`, { token, body });
}

async function accountNow(user: User) {
  const response = await call(fixture.server, "GET", base(user), { token: user.token });
  expect(response.status).toBe(200);
  return { account: response.body.data, seq: Number(response.headers[SNAPSHOT_SEQ_HEADER]) };
}

describe("checking an order", () => {
  it("answers the margin, the commission and the account after, places nothing, and agrees with placing it", async () => {
    const user = await signUp(fixture.server);
    const before = await accountNow(user);
    const checked = await check(user, marketBuy);
    expect(checked.status, JSON.stringify(checked.body)).toBe(200);
    // 50,000 EUR at the EURUSD bid 1.08000 at the demo account's leverage.
    const margin = Number(((50_000 * 1.08) / before.account.leverage).toFixed(2));
    expect(checked.body.data).toMatchObject({
      accepted: true,
      error: null,
      message: null,
      duplicateOfOrderId: null,
      executesNow: true,
      volume: 0.5,
      marginChange: margin,
      commission: 0,
      realisedProfit: 0,
    });
    // Nothing journaled, nothing placed; the answer names the seq of the state it read, as the account's does.
    const unchanged = await accountNow(user);
    expect(unchanged.seq).toBe(before.seq);
    expect(Number(checked.headers[SNAPSHOT_SEQ_HEADER])).toBe(before.seq);
    expect(unchanged.account).toEqual(before.account);
    const positions = await call(fixture.server, "GET", `${base(user)}/positions`, { token: user.token });
    expect(tableObjects(positions.body)).toEqual([]);
    // Placed, the account is what the check said it would be.
    const placed = await call(fixture.server, "POST", `${base(user)}/orders`, { token: user.token, body: marketBuy });
    expect(placed.status).toBe(200);
    const after = (await accountNow(user)).account;
    expect(checked.body.data.after).toEqual({
      balance: after.balance,
      credit: after.credit,
      equity: after.equity,
      margin: after.margin,
      freeMargin: after.freeMargin,
      marginLevel: after.marginLevel,
      profit: after.profit,
    });
  });

  it("answers a refusal by the trading rules as the check's answer, with the code placing gets", async () => {
    const user = await signUp(fixture.server);
    const tooLarge = { ...marketBuy, volume: 100 };
    const checked = await check(user, tooLarge);
    expect(checked.status).toBe(200);
    expect(checked.body.data).toMatchObject({ accepted: false, error: "NO_MONEY", after: null, marginChange: null });
    const placed = await call(fixture.server, "POST", `${base(user)}/orders`, { token: user.token, body: tooLarge });
    expect(placed.body.error).toBe("NO_MONEY");
    expect(checked.body.data.message).toBe(placed.body.message);
  });

  it("a pending order: its margin at its price and the account with it, nothing placed", async () => {
    const user = await signUp(fixture.server);
    const checked = await check(user, { symbol: "EURUSD", side: "BUY", type: "LIMIT", volume: 0.5, price: 1.07 });
    expect(checked.status).toBe(200);
    expect(checked.body.data).toMatchObject({ accepted: true, executesNow: false, volume: 0.5 });
    expect(checked.body.data.after.margin).toBe(checked.body.data.marginChange);
    const orders = await call(fixture.server, "GET", `${base(user)}/orders`, { token: user.token });
    expect(tableObjects(orders.body)).toEqual([]);
  });

  it("refuses what the order route refuses to read: a bad body 400, no token 401, another user's account 403", async () => {
    const user = await signUp(fixture.server);
    const other = await signUp(fixture.server);
    const bad = await check(user, { side: "BUY", type: "MARKET", volume: 0.5 });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: "INVALID_DATA", message: 'the body lacks the required field "symbol"' });
    expect((await check(user, marketBuy, "")).status).toBe(401);
    const foreign = await check(user, marketBuy, other.token);
    expect(foreign.status).toBe(403);
    expect(foreign.body.data).toBeUndefined();
  });

  it("on the stream: checkOrder answers what the REST route answers", async () => {
    const user = await signUp(fixture.server);
    const client = await fixture.connect(user.token);
    const answer = await client.request("checkOrder", { accountId: user.login, ...marketBuy });
    expect(answer.type).toBe("result");
    const rest = await check(user, marketBuy);
    expect(answer.payload).toEqual(rest.body);
  });
});
