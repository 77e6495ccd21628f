/**
 * The Pusher endpoint driven by the real clients, unchanged: pusher-js 8 (its Node build, on the `ws`
 * transport) and Laravel Echo 2 on top of it. Bootstrap through /api/v2/ws/session, connect with what it
 * answers, receive a pushed quote on a public channel, authorise a presence channel at /api/v2/ws/auth
 * and receive the executions of an order placed over REST, see a logout end that channel (and nothing
 * after), fail to authorise another user's channel, and survive a server-initiated reconnect (4200):
 * pusher-js reconnects, resubscribes and receives again.
 */
import Echo from "laravel-echo";
import PusherPackage, { type Channel, type Options } from "pusher-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { admin, call, pushQuote, signUp, startTestServer, type TestServer } from "./helpers.ts";
import { http, listenHttp, until } from "./pusher-helpers.ts";

// The package's types declare an ES default export; its Node build is CommonJS whose module.exports is the class.
const Pusher = PusherPackage as unknown as typeof PusherPackage.default;
type Pusher = InstanceType<typeof Pusher>;

let server: TestServer;
let base: string;
let alice: Awaited<ReturnType<typeof signUp>>;
let bob: Awaited<ReturnType<typeof signUp>>;
const clients: { disconnect(): void }[] = [];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Event = { name: string; channel: string; data: any };

beforeAll(async () => {
  server = await startTestServer();
  base = await listenHttp(server);
  await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  alice = await signUp(server);
  bob = await signUp(server);
});

afterEach(() => {
  for (const client of clients.splice(0)) client.disconnect();
});

afterAll(async () => {
  await server?.close();
});

interface Session {
  connection: {
    wsHost: string;
    wsPort: number;
    appKey: string;
    forceTls: boolean;
    cluster: string;
    authEndpoint: string;
  };
  channels: string[];
}

async function session(token: string, streams: unknown[]): Promise<Session> {
  const answer = await http(base, "POST", "/api/v2/ws/session", { token, body: { streams } });
  expect(answer.status).toBe(200);
  return answer.body as Session;
}

/** pusher-js options from a session, as a front end would write them. */
function pusherOptions(connection: Session["connection"], token: string): Options {
  return {
    cluster: connection.cluster,
    wsHost: connection.wsHost,
    wsPort: connection.wsPort,
    forceTLS: connection.forceTls,
    enabledTransports: ["ws"],
    channelAuthorization: {
      endpoint: base + connection.authEndpoint,
      transport: "ajax",
      headers: { Authorization: `Bearer ${token}` },
    },
  };
}

function connected(pusher: Pusher): Promise<void> {
  return new Promise((resolve, reject) => {
    if (pusher.connection.state === "connected") return resolve();
    const timer = setTimeout(() => reject(new Error(`not connected: ${pusher.connection.state}`)), 5000);
    pusher.connection.bind("connected", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function subscribed(channel: Channel): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (channel.subscribed) return resolve(undefined);
    const timer = setTimeout(() => reject(new Error(`${channel.name} not subscribed`)), 5000);
    channel.bind("pusher:subscription_succeeded", (data: unknown) => {
      clearTimeout(timer);
      resolve(data);
    });
    channel.bind("pusher:subscription_error", (error: unknown) => {
      clearTimeout(timer);
      reject(new Error(`${channel.name}: ${JSON.stringify(error)}`));
    });
  });
}

/** Every event of the pusher client, with its channel. */
function record(pusher: Pusher): Event[] {
  const events: Event[] = [];
  pusher.bind_global((name: string, data: unknown) => {
    if (!name.startsWith("pusher")) events.push({ name, channel: "", data });
  });
  return events;
}

describe("pusher-js", () => {
  it("bootstraps, connects and receives a pushed quote on a public channel", async () => {
    const { connection, channels } = await session(alice.token, [{ name: "quotes", filters: { symbol: "EURUSD" } }]);
    expect(channels).toEqual(["quotes.EURUSD"]);
    expect(connection).toMatchObject({ wsHost: "127.0.0.1", forceTls: false, cluster: "bourse" });
    expect(connection.wsPort).toBe(Number(new URL(base).port));
    const pusher = new Pusher(connection.appKey, pusherOptions(connection, alice.token));
    clients.push(pusher);
    await connected(pusher);
    expect(pusher.connection.socket_id).toMatch(/^[0-9]+\.[0-9]+$/);
    const channel = pusher.subscribe("quotes.EURUSD");
    const quotes: { bid: number; ask: number; symbol: string; ts: string }[] = [];
    channel.bind("quoteEvent", (data: (typeof quotes)[number]) => quotes.push(data));
    await subscribed(channel);
    await pushQuote(server, "EURUSD", "1.08501", "1.08512");
    await until(() => quotes.some((quote) => quote.bid === 1.08501), 3000, "the pushed quote");
    expect(quotes.find((quote) => quote.bid === 1.08501)).toEqual({
      symbol: "EURUSD",
      bid: 1.08501,
      ask: 1.08512,
      ts: expect.any(String),
    });
  });

  it("authorises its own presence channel and receives the executions of an order placed over REST", async () => {
    const { connection, channels } = await session(alice.token, [{ name: "executions" }, { name: "metrics" }]);
    expect(channels).toEqual([`presence-account.${alice.login}`]);
    const pusher = new Pusher(connection.appKey, pusherOptions(connection, alice.token));
    clients.push(pusher);
    const events = record(pusher);
    const channel = pusher.subscribe(channels[0]!);
    const members = (await subscribed(channel)) as { count: number; me: { id: string; info: unknown } };
    expect(members.count).toBe(1);
    expect(members.me).toEqual({ id: `user-${alice.userId}`, info: { kind: "session" } });

    const order = await call(server, "POST", `/api/v1/accounts/${alice.login}/orders`, {
      token: alice.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 },
    });
    expect(order.status).toBe(200);
    await until(
      () => events.some((event) => event.name === "executionEvent" && event.data.event === "DEAL"),
      3000,
      "the DEAL execution",
    );
    const executions = events.filter((event) => event.name === "executionEvent").map((event) => event.data);
    expect(executions.map((event) => event.event)).toEqual(
      expect.arrayContaining(["ORDER_ACCEPTED", "DEAL", "ORDER_STATUS"]),
    );
    const deal = executions.find((event) => event.event === "DEAL")!;
    expect(deal).toMatchObject({ accountId: alice.login, symbol: "EURUSD", seq: expect.any(Number) });
    expect(deal.deal).toMatchObject({ side: "BUY", volume: 0.1, price: 1.08512 });
    await until(() => events.some((event) => event.name === "portfolioEvent"), 3000, "the portfolio event");
    expect(events.find((event) => event.name === "portfolioEvent")!.data).toMatchObject({
      accountId: alice.login,
      event: "DEAL",
      effect: "OPEN",
      volume: 0.1,
    });
    // The account's metrics arrive on the same channel (a snapshot on subscribe, then changes).
    await until(() => events.some((event) => event.name === "metricsEvent"), 3000, "metrics");
    expect(events.find((event) => event.name === "metricsEvent")!.data).toMatchObject({ accountId: alice.login });
  });

  it("a logout ends its presence channel: the channel's subscription_error fires, no event comes after", async () => {
    const user = await signUp(server);
    const { connection, channels } = await session(user.token, [
      { name: "account" },
      { name: "quotes", filters: { symbol: "EURUSD" } },
    ]);
    const pusher = new Pusher(connection.appKey, pusherOptions(connection, user.token));
    clients.push(pusher);
    const account = pusher.subscribe(`presence-account.${user.login}`);
    const quotes = pusher.subscribe("quotes.EURUSD");
    expect(channels).toEqual([account.name, quotes.name]);
    await subscribed(account);
    await subscribed(quotes);
    const balances: unknown[] = [];
    account.bind("balanceEvent", (data: unknown) => balances.push(data));
    const bids: number[] = [];
    quotes.bind("quoteEvent", (data: { bid: number }) => bids.push(data.bid));
    const ended: { type: string; status: number }[] = [];
    account.bind("pusher:subscription_error", (error: { type: string; status: number }) => ended.push(error));
    await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: "5" });
    await until(() => balances.length === 1, 3000, "the deposit's balance event");

    expect((await call(server, "POST", "/api/v1/logout", { token: user.token })).status).toBe(200);
    await until(() => ended.length === 1, 3000, "the channel's end");
    expect(ended[0]).toMatchObject({ type: "AuthError", status: 401 });
    // A deposit, then a quote: once the quote came, the deposit would have come before it.
    await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: "5" });
    await pushQuote(server, "EURUSD", "1.08777", "1.08787");
    await until(() => bids.includes(1.08777), 3000, "the quote after the logout");
    expect(balances).toHaveLength(1);
    expect(pusher.connection.state).toBe("connected");
  });

  it("cannot authorise another user's account channel (403), and the socket refuses a forged auth", async () => {
    const { connection } = await session(alice.token, []);
    const pusher = new Pusher(connection.appKey, pusherOptions(connection, alice.token));
    clients.push(pusher);
    const channel = pusher.subscribe(`presence-account.${bob.login}`);
    const error = await new Promise<{ type: string; status: number }>((resolve) =>
      channel.bind("pusher:subscription_error", resolve),
    );
    expect(error).toMatchObject({ type: "AuthError", status: 403 });
    expect(channel.subscribed).toBe(false);
    // The same channel with a signature made for another socket: refused by the socket itself.
    await connected(pusher);
    const forged = await http(base, "POST", "/api/v2/ws/auth", {
      token: bob.token,
      form: { socket_id: "1.1", channel_name: `private-account.${bob.login}` },
    });
    expect(forged.status).toBe(200);
    const refusal = new Promise<{ type: string; status: number; error: string }>((resolve) =>
      pusher.bind("pusher:subscription_error", resolve),
    );
    pusher.send_event("pusher:subscribe", { channel: `private-account.${bob.login}`, auth: forged.body.auth });
    expect(await refusal).toMatchObject({ type: "AuthError", status: 401 });
  });

  it("survives a server-initiated reconnect (4200): reconnects, resubscribes and receives again", async () => {
    const { connection, channels } = await session(alice.token, [
      { name: "quotes", filters: { symbol: "EURUSD" } },
      { name: "account" },
    ]);
    expect(channels).toEqual(["quotes.EURUSD", `presence-account.${alice.login}`]);
    const pusher = new Pusher(connection.appKey, pusherOptions(connection, alice.token));
    clients.push(pusher);
    const events = record(pusher);
    const errors: { data?: { code?: number } }[] = [];
    pusher.connection.bind("error", (error: (typeof errors)[number]) => errors.push(error));
    const subscriptions = channels.map((name) => pusher.subscribe(name));
    await Promise.all(subscriptions.map(subscribed));
    await connected(pusher);
    const firstSocket = pusher.connection.socket_id;
    const states: string[] = [];
    pusher.connection.bind("state_change", ({ current }: { current: string }) => states.push(current));
    let resubscribed = 0;
    for (const channel of subscriptions) channel.bind("pusher:subscription_succeeded", () => (resubscribed += 1));

    server.pusherStream.reconnectAll();
    await until(() => pusher.connection.socket_id !== firstSocket && resubscribed === 2, 5000, "the resubscription");
    expect(states).toContain("connecting");
    expect(pusher.connection.state).toBe("connected");
    expect(errors.some((error) => error.data?.code === 4200)).toBe(true);

    await pushQuote(server, "EURUSD", "1.08611", "1.08622");
    await until(
      () => events.some((event) => event.name === "quoteEvent" && event.data.bid === 1.08611),
      3000,
      "a quote after the reconnect",
    );
    const order = await call(server, "POST", `/api/v1/accounts/${alice.login}/orders`, {
      token: alice.token,
      body: { symbol: "EURUSD", side: "SELL", type: "MARKET", volume: 0.01 },
    });
    expect(order.status).toBe(200);
    await until(
      () =>
        events.some(
          (event) => event.name === "executionEvent" && event.data.event === "DEAL" && event.data.deal?.side === "SELL",
        ),
      3000,
      "an execution after the reconnect",
    );
  });
});

describe("Laravel Echo on pusher-js", () => {
  function echoFor(connection: Session["connection"], token: string) {
    const echo = new Echo({
      broadcaster: "pusher",
      Pusher: PusherPackage,
      key: connection.appKey,
      cluster: connection.cluster,
      wsHost: connection.wsHost,
      wsPort: connection.wsPort,
      forceTLS: connection.forceTls,
      enabledTransports: ["ws"],
      authEndpoint: base + connection.authEndpoint,
      bearerToken: token,
    });
    clients.push(echo);
    return echo;
  }

  it("listens to a public channel and joins its own presence channel", async () => {
    const { connection } = await session(alice.token, [{ name: "quotes", filters: { symbol: "EURUSD" } }]);
    const echo = echoFor(connection, alice.token);
    const quotes: { bid: number }[] = [];
    echo.channel("quotes.EURUSD").listen(".quoteEvent", (quote: { bid: number }) => quotes.push(quote));
    const here = new Promise<unknown[]>((resolve) => {
      echo
        .join(`account.${alice.login}`)
        .here(resolve)
        .listen(".executionEvent", (event: { event: string }) => executions.push(event.event));
    });
    const executions: string[] = [];
    expect(await here).toEqual([{ kind: "session" }]);
    await until(() => echo.connector.pusher.channel("quotes.EURUSD")?.subscribed === true, 3000, "quotes");
    await pushQuote(server, "EURUSD", "1.08701", "1.08712");
    await until(() => quotes.some((quote) => quote.bid === 1.08701), 3000, "the quote");
    const order = await call(server, "POST", `/api/v1/accounts/${alice.login}/orders`, {
      token: alice.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01 },
    });
    expect(order.status).toBe(200);
    await until(() => executions.includes("DEAL"), 3000, "the execution");
  });

  it("reports an error joining another user's account", async () => {
    const { connection } = await session(bob.token, []);
    const echo = echoFor(connection, bob.token);
    const error = await new Promise<{ type: string; status: number }>((resolve) =>
      echo.join(`account.${alice.login}`).error(resolve),
    );
    expect(error).toMatchObject({ type: "AuthError", status: 403 });
  });
});
