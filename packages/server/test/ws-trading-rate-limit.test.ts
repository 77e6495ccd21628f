/**
 * Trading over the native stream ignored the per-user and per-key rate limits (found by an audit): with
 * BOURSE_RATE_LIMIT_PER_SECOND=100, REST cut a burst of 200 orders at 100, but 20 sockets × 40 `createOrder` of one
 * user filled 800 orders in 0.58 s, with the JWT or with an API key; the stream's only limit was 50 messages per
 * second per socket. Now a JWT socket's trading and history requests count toward the user's budget of that
 * setting (the very counter the user's REST requests spend), and an API-key socket's toward the key's Automation
 * budget (the limiter the Automation API uses): past it the request answers `error` RATE_LIMITED, places nothing,
 * and the socket stays open.
 */
import { describe, expect, it } from "vitest";
import { automationRateLimiterOf } from "../src/routes/automation.ts";
import { automation, call, createApiKey, signUp } from "./helpers.ts";
import { streamServer, type Message } from "./ws-helpers.ts";

const USER_LIMIT = 10;
const KEY_LIMIT = 5;

const stream = streamServer({
  BOURSE_RATE_LIMIT_PER_SECOND: String(USER_LIMIT),
  BOURSE_AUTOMATION_RATE_LIMIT_PER_SECOND: String(KEY_LIMIT),
});
const connect = stream.connect;

function outcomes(answers: Message[]): string[] {
  return answers.map((answer) => (answer.type === "result" ? "result" : `error ${answer.payload.code}`));
}

async function openPositions(user: { token: string; login: number }): Promise<number> {
  const positions = await call(stream.server, "GET", `/api/v1/accounts/${user.login}/positions`, { token: user.token });
  expect(positions.status).toBe(200);
  return positions.body.rows.length as number;
}

describe("the per-user limit on JWT sockets", () => {
  it("orders past the user's limit, over several sockets, answer RATE_LIMITED and place nothing; another user is unaffected; the next second trades again", async () => {
    const user = await signUp(stream.server);
    const other = await signUp(stream.server);
    const sockets = [await connect(user.token), await connect(user.token), await connect(user.token)];
    // The limiter counts on the platform's clock, which the test stream.server holds still: one window for the burst.
    const answers = await Promise.all(
      Array.from({ length: USER_LIMIT + 5 }, (_, index) => sockets[index % sockets.length]!.buyEurusd(user.login)),
    );
    const counted = outcomes(answers);
    expect(counted.filter((outcome) => outcome === "result")).toHaveLength(USER_LIMIT);
    expect(counted.filter((outcome) => outcome !== "result")).toEqual(Array(5).fill("error RATE_LIMITED"));
    // History reads are requests REST counts too.
    expect((await sockets[0]!.request("positionHistory", { accountId: user.login })).payload.code).toBe("RATE_LIMITED");
    for (const socket of sockets) await socket.expectOpen();
    // One budget: the user's REST requests are past it in this second as well.
    const rest = await call(stream.server, "GET", `/api/v1/accounts/${user.login}/positions`, { token: user.token });
    expect(rest.status).toBe(429);
    expect(rest.body.error).toBe("RATE_LIMITED");

    const bystander = await connect(other.token);
    expect((await bystander.buyEurusd(other.login)).type).toBe("result");
    expect(await openPositions(other)).toBe(1);

    stream.server.clock.advance(1000);
    expect(await openPositions(user)).toBe(USER_LIMIT);
    expect((await sockets[0]!.buyEurusd(user.login)).type).toBe("result");
    expect(await openPositions(user)).toBe(USER_LIMIT + 1);
  });

  // REST's budget lived inside @fastify/rate-limit, and the stream counted the same user against a second one: a
  // user spending both got twice BOURSE_RATE_LIMIT_PER_SECOND. Now there is one counter.
  it("REST requests and stream requests of a user spend one budget, and every REST answer says what is left", async () => {
    stream.server.clock.advance(1000);
    const user = await signUp(stream.server);
    const socket = await connect(user.token);
    const remaining: number[] = [];
    for (let index = 0; index < USER_LIMIT - 3; index += 1) {
      const answer = await call(stream.server, "GET", "/api/v1/accounts", { token: user.token });
      expect(answer.status).toBe(200);
      expect(answer.headers["ratelimit-limit"]).toBe(String(USER_LIMIT));
      remaining.push(Number(answer.headers["ratelimit-remaining"]));
    }
    expect(remaining).toEqual(Array.from({ length: USER_LIMIT - 3 }, (_, index) => USER_LIMIT - 1 - index));
    // A malformed body is refused after it counts: a flood of them is limited like any other request.
    const malformed = await call(stream.server, "POST", `/api/v1/accounts/${user.login}/orders`, {
      token: user.token,
      body: { symbol: "EURUSD", side: "SIDEWAYS" },
    });
    expect(malformed.status).toBe(400);
    expect(malformed.headers["ratelimit-remaining"]).toBe("2");
    const answers = await Promise.all([
      socket.buyEurusd(user.login),
      socket.buyEurusd(user.login),
      socket.buyEurusd(user.login),
    ]);
    expect(outcomes(answers)).toEqual(["result", "result", "error RATE_LIMITED"]);
    const refused = await call(stream.server, "GET", "/api/v1/accounts", { token: user.token });
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual({
      error: "RATE_LIMITED",
      message: `Rate limit of ${USER_LIMIT} requests per second exceeded`,
    });
    expect(refused.headers["ratelimit-remaining"]).toBe("0");
    expect(refused.headers["retry-after"]).toBe("1");
  });
});

describe("the address's budget before sign-in", () => {
  // A route hook of each route ran after authentication: a refused token, and a request for no route, spent nothing,
  // so a flood of bad tokens was never limited (the session's review). They spend their address's budget now.
  it("requests refused by authentication and requests for no route spend their address's budget: past it, 429", async () => {
    stream.server.clock.advance(1000);
    const from = (url: string, headers: Record<string, string> = {}) =>
      stream.server.app.inject({ method: "GET", url, remoteAddress: "198.51.100.77", headers });
    const answers = [];
    for (let index = 0; index < USER_LIMIT / 2; index += 1)
      answers.push(await from("/api/v1/accounts", { authorization: "not-a-token" }));
    for (let index = 0; index < USER_LIMIT / 2; index += 1) answers.push(await from("/api/v1/no-such-route"));
    expect(answers.map((answer) => answer.statusCode)).toEqual([
      ...Array(USER_LIMIT / 2).fill(401),
      ...Array(USER_LIMIT / 2).fill(404),
    ]);
    expect(answers.map((answer) => answer.headers["ratelimit-remaining"])).toEqual(
      Array.from({ length: USER_LIMIT }, (_, index) => String(USER_LIMIT - 1 - index)),
    );
    const refused = await from("/api/v1/accounts", { authorization: "not-a-token" });
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toEqual({
      error: "RATE_LIMITED",
      message: `Rate limit of ${USER_LIMIT} requests per second exceeded`,
    });
    expect(refused.headers["retry-after"]).toBe("1");
    // Another address has a budget of its own.
    const elsewhere = await stream.server.app.inject({
      method: "GET",
      url: "/api/v1/no-such-route",
      remoteAddress: "198.51.100.78",
    });
    expect(elsewhere.statusCode).toBe(404);
  });
});

describe("the per-key Automation limit on API-key sockets", () => {
  it("an API-key socket spends the key's Automation budget with the REST calls: past it RATE_LIMITED on the stream and 429 on REST", async () => {
    const user = await signUp(stream.server);
    const key = await createApiKey(stream.server, user, "trade");
    const socket = await connect(key.key);
    await socket.expectOpen();
    // The Automation limiter's window is one second from its first request; all of this takes a few milliseconds.
    for (let index = 0; index < 2; index += 1)
      expect((await automation(stream.server, "GET", "/v1/api/account", key.key)).status).toBe(200);
    const answers = await Promise.all(Array.from({ length: KEY_LIMIT }, () => socket.buyEurusd(user.login)));
    expect(outcomes(answers)).toEqual([...Array(KEY_LIMIT - 2).fill("result"), ...Array(2).fill("error RATE_LIMITED")]);
    expect((await automation(stream.server, "GET", "/v1/api/account", key.key)).status).toBe(429);
    expect(automationRateLimiterOf(stream.server.platform).blocked(key.id)).not.toBeNull();
    expect(await openPositions(user)).toBe(KEY_LIMIT - 2);
    await socket.expectOpen();
    // The key's user, on a JWT socket, has a budget of their own.
    expect((await (await connect(user.token)).buyEurusd(user.login)).type).toBe("result");
  });
});
