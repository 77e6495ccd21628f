/**
 * The back office as a broker's support desk uses it: a client who forgot their password (there is no e-mail reset)
 * gets a new one set, a client who lost their phone is signed out everywhere, and an account's positions, orders and
 * histories are read as its client sees them. Before, support could read an account's balance and ledger, nothing of
 * its trading, and had no way at all to let a client back in who had forgotten a password.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { admin, call, pushQuote, signUp, tableObjects } from "./helpers.ts";
import { WsCloseCodes } from "../src/ws-codes.ts";
import { streamServer } from "./ws-helpers.ts";

const fixture = streamServer();

describe("a password set by the back office", () => {
  it("lets the client sign in with it, ends every session of theirs, closes their streams, and lifts the lock", async () => {
    const { server } = fixture;
    const user = await signUp(server);
    const stream = await fixture.connect(user.token);
    // Locked out by five wrong passwords.
    for (let attempt = 0; attempt < server.config.loginMaxFailures; attempt++)
      await call(server, "POST", "/api/v1/login", { body: { email: user.email, password: "wrong password!" } });
    expect(
      (await call(server, "POST", "/api/v1/login", { body: { email: user.email, password: user.password } })).status,
    ).toBe(429);

    const reset = await admin(server, "POST", `/admin/v1/users/${user.userId}/password`, {
      password: "a new password for you",
    });
    expect(reset.status, JSON.stringify(reset.body)).toBe(200);
    expect(reset.body).toEqual({ data: { sessionsEnded: 1 } });
    expect((await call(server, "GET", "/api/v1/session", { token: user.token })).status).toBe(401);
    const closing = await stream.nextOf("error");
    expect(closing.payload).toEqual({
      code: "SESSION_REVOKED",
      message: "The broker set a new password, which ended this session: sign in with it",
    });
    expect((await stream.closed).code).toBe(WsCloseCodes.REVOKED.code);

    expect(
      (await call(server, "POST", "/api/v1/login", { body: { email: user.email, password: user.password } })).status,
    ).toBe(401);
    const signedIn = await call(server, "POST", "/api/v1/login", {
      body: { email: user.email, password: "a new password for you" },
    });
    expect(signedIn.status).toBe(200);
  });

  it("is refused when too short, for an unknown user, or without the admin token, and changes nothing", async () => {
    const { server } = fixture;
    const user = await signUp(server);
    const short = await admin(server, "POST", `/admin/v1/users/${user.userId}/password`, { password: "short" });
    expect(short.status).toBe(400);
    expect(short.body.error).toBe("INVALID_DATA");
    const unknown = await admin(server, "POST", "/admin/v1/users/no-such-user/password", {
      password: "a new password for you",
    });
    expect(unknown.status).toBe(404);
    const asClient = await call(server, "POST", `/admin/v1/users/${user.userId}/password`, {
      token: user.token,
      body: { password: "a new password for you" },
    });
    expect(asClient.status).toBe(401);
    expect((await call(server, "GET", "/api/v1/session", { token: user.token })).status).toBe(200);
    expect(
      (await call(server, "POST", "/api/v1/login", { body: { email: user.email, password: user.password } })).status,
    ).toBe(200);
  });
});

describe("a user's sessions ended by the back office", () => {
  it("signs them out everywhere and closes their streams; their password and API keys still work", async () => {
    const { server } = fixture;
    const user = await signUp(server);
    const second = await call(server, "POST", "/api/v1/login", {
      body: { email: user.email, password: user.password },
    });
    const key = await call(server, "PUT", "/api/v1/api-keys", {
      token: user.token,
      body: { name: "bot", accountId: user.login, scope: "read" },
    });
    expect(key.status).toBe(200);
    const stream = await fixture.connect(user.token);
    const ended = await admin(server, "DELETE", `/admin/v1/users/${user.userId}/sessions`);
    expect(ended.body).toEqual({ data: { sessionsEnded: 2 } });
    expect((await stream.nextOf("error")).payload.message).toBe("The broker ended this user's sessions: sign in again");
    expect((await stream.closed).code).toBe(WsCloseCodes.REVOKED.code);
    for (const token of [user.token, second.body.data.token as string])
      expect((await call(server, "GET", "/api/v1/session", { token })).status).toBe(401);
    const automation = await call(server, "GET", "/v1/api/account", { token: `Bearer ${key.body.data.key}` });
    expect(automation.status).toBe(200);
    expect(
      (await call(server, "POST", "/api/v1/login", { body: { email: user.email, password: user.password } })).status,
    ).toBe(200);
    expect((await admin(server, "DELETE", "/admin/v1/users/no-such-user/sessions")).status).toBe(404);
  });
});

describe("an account's trading as the back office reads it", () => {
  it("answers the positions, orders and histories the client sees, and 404 for an account that does not exist", async () => {
    const { server } = fixture;
    const user = await signUp(server);
    const account = `/api/v1/accounts/${user.login}`;
    await pushQuote(server, "EURUSD", "1.08000", "1.08010");
    const bought = await call(server, "POST", `${account}/orders`, {
      token: user.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 },
    });
    expect(bought.status).toBe(200);
    const pending = await call(server, "POST", `${account}/orders`, {
      token: user.token,
      body: { symbol: "EURUSD", side: "BUY", type: "LIMIT", volume: 0.1, price: 1.07 },
    });
    expect(pending.status).toBe(200);

    for (const [clientPath, adminPath] of [
      [`${account}/positions`, `/admin/v1/accounts/${user.login}/positions`],
      [`${account}/orders`, `/admin/v1/accounts/${user.login}/orders`],
      [`${account}/history/orders?direction=desc`, `/admin/v1/accounts/${user.login}/history/orders?direction=desc`],
      [`${account}/history/deals`, `/admin/v1/accounts/${user.login}/history/deals`],
      [`${account}/history/positions?limit=1`, `/admin/v1/accounts/${user.login}/history/positions?limit=1`],
    ]) {
      const asClient = await call(server, "GET", clientPath!, { token: user.token });
      const asOffice = await admin(server, "GET", adminPath!);
      expect(asOffice.status, adminPath).toBe(200);
      expect(asOffice.body, adminPath).toEqual(asClient.body);
      expect(tableObjects(asOffice.body).length, adminPath).toBeGreaterThan(0);
    }
    expect((await admin(server, "GET", "/admin/v1/accounts/999999999/positions")).status).toBe(404);
    expect((await admin(server, "GET", `/admin/v1/accounts/${user.login}/history/deals?limit=0`)).status).toBe(400);
    expect(
      (await call(server, "GET", `/admin/v1/accounts/${user.login}/positions`, { token: user.token })).status,
    ).toBe(401);
  });
});

describe("a position closed by the dealing desk", () => {
  it("closes it for the client as their own close would, records DEALER on its order and deal, and tells the client", async () => {
    const { server } = fixture;
    const user = await signUp(server);
    const account = `/api/v1/accounts/${user.login}`;
    await pushQuote(server, "EURUSD", "1.08000", "1.08010");
    const bought = await call(server, "POST", `${account}/orders`, {
      token: user.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.3 },
    });
    const positionId = bought.body.data.positionId as number;
    const stream = await fixture.connect(user.token);
    stream.send("subscribe", { events: ["executionEvent", "notificationEvent"], accountId: user.login });
    await stream.nextOf("subscribed");
    await pushQuote(server, "EURUSD", "1.08100", "1.08110");

    const path = `/admin/v1/accounts/${user.login}/positions/${positionId}/close`;
    const part = await admin(server, "POST", path, { volume: 0.1, clientOrderId: "desk-1" });
    expect(part.status, JSON.stringify(part.body)).toBe(200);
    expect(part.body.data).toMatchObject({ positionId, duplicate: false, position: { volume: 0.2 } });
    expect(part.body.data.deals).toMatchObject([{ entry: "OUT", volume: 0.1, price: 1.081, reason: "DEALER" }]);
    // A retry of the desk's close closes nothing again.
    const retried = await admin(server, "POST", path, { volume: 0.1, clientOrderId: "desk-1" });
    expect(retried.body.data).toMatchObject({ orderId: part.body.data.orderId, duplicate: true });
    // No body: the rest.
    const rest = await admin(server, "POST", path);
    expect(rest.status).toBe(200);
    expect(rest.body.data.position).toBeNull();

    const deals = tableObjects((await call(server, "GET", `${account}/history/deals`, { token: user.token })).body);
    expect(deals.map((deal) => [deal.entry, deal.volume, deal.reason])).toEqual([
      ["IN", 0.3, "CLIENT"],
      ["OUT", 0.1, "DEALER"],
      ["OUT", 0.2, "DEALER"],
    ]);
    const orders = tableObjects((await call(server, "GET", `${account}/history/orders`, { token: user.token })).body);
    expect(orders.map((order) => order.reason)).toEqual(["CLIENT", "DEALER", "DEALER"]);
    const notification = await stream.nextOf("notificationEvent", (message) => message.payload.kind === "DEALER_CLOSE");
    expect(notification.payload).toMatchObject({
      kind: "DEALER_CLOSE",
      level: "warning",
      title: `Position #${positionId}: 0.1 lots closed by your broker`,
      positionId,
    });
    // The client's stream shows the desk's order as it shows theirs: placed by the DEALER, then filled.
    const ofRest = (status: string) =>
      stream.nextOf(
        "executionEvent",
        (message) => message.payload.orderId === rest.body.data.orderId && message.payload.status === status,
      );
    expect((await ofRest("PLACED")).payload.order.reason).toBe("DEALER");
    await ofRest("FILLED");

    // The same rules: a closed position is not found, a bad volume refused, another account's position not found.
    expect((await admin(server, "POST", path)).status).toBe(404);
    const other = await signUp(server);
    const theirs = await call(server, "POST", `/api/v1/accounts/${other.login}/orders`, {
      token: other.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 },
    });
    const theirPosition = theirs.body.data.positionId as number;
    expect(
      (await admin(server, "POST", `/admin/v1/accounts/${user.login}/positions/${theirPosition}/close`)).status,
    ).toBe(404);
    const badVolume = await admin(
      server,
      "POST",
      `/admin/v1/accounts/${other.login}/positions/${theirPosition}/close`,
      {
        volume: 0.5,
      },
    );
    expect(badVolume.status).toBe(400);
    expect(badVolume.body.error).toBe("INVALID_VOLUME");
    expect(
      (
        await call(server, "POST", `/admin/v1/accounts/${other.login}/positions/${theirPosition}/close`, {
          token: other.token,
          body: {},
        })
      ).status,
    ).toBe(401);
  });
});

describe("a user disabled by the back office", () => {
  it("cannot sign in, loses every session and API key at once, keeps their accounts, and signs in again once enabled", async () => {
    const { server } = fixture;
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08000", "1.08010");
    const bought = await call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
      token: user.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 },
    });
    expect(bought.status).toBe(200);
    const key = await call(server, "PUT", "/api/v1/api-keys", {
      token: user.token,
      body: { name: "bot", accountId: user.login, scope: "trade" },
    });
    const bot = `Bearer ${key.body.data.key as string}`;
    const stream = await fixture.connect(user.token);
    const botStream = await fixture.connect(key.body.data.key as string);

    const disabled = await admin(server, "POST", `/admin/v1/users/${user.userId}`, { disabled: true });
    expect(disabled.status, JSON.stringify(disabled.body)).toBe(200);
    expect(disabled.body.data).toMatchObject({
      user: { id: user.userId, disabledAt: "2026-06-02T12:00:00.000Z" },
      sessionsEnded: 1,
      apiKeysRevoked: 1,
    });
    expect((await stream.nextOf("error")).payload.message).toBe(
      "The broker disabled this user, which ended this session",
    );
    expect((await botStream.nextOf("error")).payload).toEqual({
      code: "INVALID_API_KEY",
      message: "The broker disabled this key's user, which revoked the key",
    });
    expect((await call(server, "GET", "/api/v1/session", { token: user.token })).status).toBe(401);
    expect((await call(server, "GET", "/v1/api/account", { token: bot })).status).toBe(403);
    // The right password learns it is disabled; a wrong one learns nothing more than for anyone.
    const signIn = await call(server, "POST", "/api/v1/login", {
      body: { email: user.email, password: user.password },
    });
    expect(signIn.status).toBe(403);
    expect(signIn.body).toEqual({
      error: "USER_DISABLED",
      message: "This user has been disabled by the broker: contact them",
    });
    const guess = await call(server, "POST", "/api/v1/login", {
      body: { email: user.email, password: "not the one!" },
    });
    expect(guess.status).toBe(401);
    expect(guess.body.error).toBe("INVALID_CREDENTIALS");
    // The account and its position stay; the back office still reads and closes them.
    const positions = await admin(server, "GET", `/admin/v1/accounts/${user.login}/positions`);
    expect(tableObjects(positions.body)).toHaveLength(1);
    const listed = tableObjects((await admin(server, "GET", "/admin/v1/users?limit=1000")).body).find(
      (row) => row.id === user.userId,
    );
    expect(listed?.disabledAt).toBe("2026-06-02T12:00:00.000Z");
    // Disabling again ends what a half-done first time left, and changes nothing else.
    const again = await admin(server, "POST", `/admin/v1/users/${user.userId}`, { disabled: true });
    expect(again.body.data).toMatchObject({ sessionsEnded: 0, apiKeysRevoked: 0 });

    const enabled = await admin(server, "POST", `/admin/v1/users/${user.userId}`, { disabled: false });
    expect(enabled.body.data.user.disabledAt).toBeNull();
    const back = await call(server, "POST", "/api/v1/login", { body: { email: user.email, password: user.password } });
    expect(back.status).toBe(200);
    // The revoked key stays revoked: the user makes a new one.
    expect((await call(server, "GET", "/v1/api/account", { token: bot })).status).toBe(403);
    expect((await admin(server, "POST", "/admin/v1/users/no-such-user", { disabled: true })).status).toBe(404);
    expect((await admin(server, "POST", `/admin/v1/users/${user.userId}`, { disabled: "yes" })).status).toBe(400);
  });
});

/** Holds `store[method]` at a gate: answers when a call reached it, and the function that lets it (and later ones) on. */
function holdAt<Name extends "createApiKey" | "createSession" | "recordFailedLogin">(
  store: Record<Name, (...args: never[]) => Promise<unknown>>,
  method: Name,
): { reached: Promise<void>; release: () => void } {
  const original = store[method];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let reached!: () => void;
  const atGate = new Promise<void>((resolve) => (reached = resolve));
  store[method] = (async (...args: never[]) => {
    store[method] = original;
    reached();
    await gate;
    return (original as (...inner: never[]) => Promise<unknown>).apply(store, args);
  }) as never;
  return { reached: atGate, release };
}

describe("found by the review of 7 December (seventh session)", () => {
  it("an API key a request was making as its user was disabled is revoked, and the request refused", async () => {
    const { server } = fixture;
    const user = await signUp(server);
    const held = holdAt(server.platform.store as never, "createApiKey");
    const creating = call(server, "PUT", "/api/v1/api-keys", {
      token: user.token,
      body: { name: "bot", accountId: user.login, scope: "full" },
    });
    await held.reached;
    const disabled = await admin(server, "POST", `/admin/v1/users/${user.userId}`, { disabled: true });
    expect(disabled.body.data).toMatchObject({ sessionsEnded: 1, apiKeysRevoked: 0 });
    held.release();
    const created = await creating;
    expect(created.status).toBe(403);
    expect(created.body.error).toBe("USER_DISABLED");
    const keys = tableObjects((await admin(server, "GET", `/admin/v1/users/${user.userId}/api-keys`)).body);
    expect(keys.map((key) => key.status)).toEqual(["revoked"]);
  });

  it("a disabled user without an account cannot sign in through sign-up's unfinished path", async () => {
    const { server } = fixture;
    // A sign-up whose account was never opened leaves a user without one: made in the store alone here.
    const email = `unfinished-${randomUUID()}@example.com`;
    const password = "correct horse battery";
    const user = await server.platform.store.createUser({
      id: randomUUID(),
      email,
      name: "Unfinished",
      passwordHash: await server.context.auth.hashPassword(password),
      createdAt: server.clock.now(),
    });
    expect((await admin(server, "POST", `/admin/v1/users/${user.id}`, { disabled: true })).status).toBe(200);
    const signup = await call(server, "POST", "/api/v1/signup", { body: { email, password, name: "Unfinished" } });
    expect(signup.status).toBe(403);
    expect(signup.body.error).toBe("USER_DISABLED");
    expect(server.platform.accountIdsOf(user.id)).toEqual([]);
  });

  it("signing a user out everywhere waits for a sign-in under way, and ends its session too", async () => {
    const { server } = fixture;
    const user = await signUp(server);
    const held = holdAt(server.platform.store as never, "createSession");
    const signingIn = call(server, "POST", "/api/v1/login", { body: { email: user.email, password: user.password } });
    await held.reached;
    const ending = admin(server, "DELETE", `/admin/v1/users/${user.userId}/sessions`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    held.release();
    const signedIn = await signingIn;
    expect((await ending).body.data.sessionsEnded).toBe(2);
    expect((await call(server, "GET", "/api/v1/session", { token: signedIn.body.data.token })).status).toBe(401);
  });

  it("the back office lists a user's API keys and revokes one, whose sockets close", async () => {
    const { server } = fixture;
    const user = await signUp(server);
    const made = await call(server, "PUT", "/api/v1/api-keys", {
      token: user.token,
      body: { name: "bot", accountId: user.login, scope: "read" },
    });
    const keyId = made.body.data.id as string;
    const bot = await fixture.connect(made.body.data.key as string);
    const listed = await admin(server, "GET", `/admin/v1/users/${user.userId}/api-keys`);
    expect(tableObjects(listed.body)).toMatchObject([{ id: keyId, name: "bot", status: "active" }]);
    expect(JSON.stringify(listed.body)).not.toContain(made.body.data.key as string);
    // Another user's id with the key's: not found, and the key stays.
    const other = await signUp(server);
    expect((await admin(server, "DELETE", `/admin/v1/users/${other.userId}/api-keys/${keyId}`)).status).toBe(404);
    expect((await call(server, "GET", "/v1/api/account", { token: `Bearer ${made.body.data.key}` })).status).toBe(200);
    const revoked = await admin(server, "DELETE", `/admin/v1/users/${user.userId}/api-keys/${keyId}`);
    expect(revoked.body).toEqual({ data: "OK" });
    expect((await bot.closed).code).toBe(WsCloseCodes.REVOKED.code);
    expect((await call(server, "GET", "/v1/api/account", { token: `Bearer ${made.body.data.key}` })).status).toBe(403);
    expect((await admin(server, "DELETE", `/admin/v1/users/${user.userId}/api-keys/${keyId}`)).status).toBe(404);
    expect((await admin(server, "GET", "/admin/v1/users/no-such-user/api-keys")).status).toBe(404);
  });

  it("signing a user out everywhere is not refused while someone fills the user's queue with sign-in guesses", async () => {
    const { server } = fixture;
    const user = await signUp(server);
    // The first guess holds the user's turn (its failure being counted), and the others queue behind it.
    const held = holdAt(server.platform.store as never, "recordFailedLogin");
    const guesses = Array.from({ length: 30 }, () =>
      call(server, "POST", "/api/v1/login", { body: { email: user.email, password: "guess guess guess" } }),
    );
    await held.reached;
    await new Promise((resolve) => setTimeout(resolve, 100));
    const ending = admin(server, "DELETE", `/admin/v1/users/${user.userId}/sessions`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    held.release();
    const [ended, ...answers] = await Promise.all([ending, ...guesses]);
    // Some guesses were refused for the queue: it was full when the back office came.
    expect(answers.some((answer) => answer.body.message === "Too many sign-in attempts at once")).toBe(true);
    expect(ended.status, JSON.stringify(ended.body)).toBe(200);
    expect((await admin(server, "POST", `/admin/v1/users/${user.userId}/unlock`)).status).toBe(200);
  });

  it("the OpenAPI document lists sign-in's 403 (USER_DISABLED)", async () => {
    const document = await call(fixture.server, "GET", "/docs/json");
    expect(Object.keys(document.body.paths["/api/v1/login"].post.responses)).toContain("403");
  });
});
