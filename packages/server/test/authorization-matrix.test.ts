/**
 * The authorization matrix: every route the router holds (from `app.routeRegistry`, so a new route
 * cannot escape) against {no token, expired token, revoked token, another user's token}. It fails on
 * any 2xx where there must be none, on any trace of the victim's data in an answer, and on any change
 * to the victim's state. Every user route needs a valid example request in REQUESTS below, so the
 * attacker's request reaches the ownership check instead of stopping at validation.
 */
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegisteredRoute } from "../src/app.ts";
import { admin, call, createApiKey, pushQuote, settle, signUp, startTestServer, type TestServer } from "./helpers.ts";

interface Victim {
  /** Kept signed in: the forged refresh tokens below must leave it working. */
  refreshToken: string;
  email: string;
  userId: string;
  login: number;
  token: string;
  orderId: number;
  positionId: number;
  scriptId: string;
  alertId: string;
  alertLogId: number;
  apiKeyId: string;
  notificationId: number;
}

let server: TestServer;
let victim: Victim;
let attackerToken: string;
let attackerLogin: number;
let attackerEmail: string;
const ATTACKER_PASSWORD = "attacker password 123";

async function attackerSignIn(): Promise<string> {
  const answer = await call(server, "POST", "/api/v1/login", {
    body: { email: attackerEmail, password: ATTACKER_PASSWORD },
  });
  if (answer.status !== 200) throw new Error(`the attacker cannot sign in again: ${JSON.stringify(answer.body)}`);
  return answer.body.data.token as string;
}
let expiredToken: string;
let revokedToken: string;
/** The attacker's own API key (a valid key of another user) and a well-formed key that does not exist. */
let attackerApiKey: string;
const UNKNOWN_API_KEY = `tk_live_0123456789abcdef_${"A".repeat(43)}`;

/** Strings only the victim's data contains: none may appear in an answer to anyone else. */
const VICTIM_MARKERS = ["victim-order-comment", "victim-script-name", "victim-alert-message", "victim-key-name"];

/** Marks a route that takes no body. */
const NO_BODY = Symbol("no body");

/** A valid body per route ("METHOD url"), written so it would succeed for the victim's own token. */
function exampleBody(route: RegisteredRoute): unknown {
  const key = `${route.method} ${route.url}`;
  const bodies: Record<string, unknown> = {
    "POST /api/v1/password": { currentPassword: "victim password 123", newPassword: "attacker chose this" },
    "PUT /api/v1/accounts": { currency: "USD", leverage: 100, mode: "HEDGING" },
    "POST /api/v1/accounts/:accountId/orders": { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01 },
    "POST /api/v1/accounts/:accountId/orders/check": { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01 },
    "POST /api/v1/accounts/:accountId/orders/:orderId": { sl: 1.05 },
    "POST /api/v1/accounts/:accountId/positions/:positionId": { sl: 1.05 },
    "POST /api/v1/accounts/:accountId/positions/:positionId/close": {},
    "PUT /api/v1/watchlist": { symbol: "GBPUSD" },
    "POST /api/v1/watchlist": { symbols: ["EURUSD"] },
    "PUT /api/v1/scripts": { name: "attacker script", language: "javascript", source: "x" },
    "POST /api/v1/scripts/:id": { name: "renamed by attacker" },
    "PUT /api/v1/settings": { theme: "dark" },
    "POST /api/v1/settings": { theme: "dark" },
    "PUT /api/v1/alerts": { symbol: "EURUSD", side: "BID", condition: "GREATER_THAN", targetPrice: 1.2 },
    "POST /api/v1/alerts/:id": { status: "disabled" },
    "PUT /api/v1/api-keys": { name: "attacker key", accountId: victim.login, scope: "full" },
    "POST /api/v2/ws/session": {
      streams: [
        { name: "quotes", filters: { symbol: "EURUSD" } },
        { name: "account", filters: { accountId: victim.login } },
      ],
    },
    "POST /api/v2/ws/auth": { socket_id: "1234.5678", channel_name: `presence-account.${victim.login}` },
    // Routes that take no body.
    "POST /api/v1/logout": NO_BODY,
    "POST /api/v1/session/refresh": NO_BODY,
    "POST /api/v1/notifications/:id/read": NO_BODY,
    "POST /api/v1/notifications/read": NO_BODY,
    "POST /api/v1/api-keys/:id/rotate": NO_BODY,
  };
  return bodies[key];
}

/** The victim's value for each path parameter; an unknown parameter fails the test (add it here). */
function victimParameter(route: RegisteredRoute, name: string): string {
  switch (name) {
    case "accountId":
      return String(victim.login);
    case "orderId":
      return String(victim.orderId);
    case "positionId":
      return String(victim.positionId);
    case "logId":
      return String(victim.alertLogId);
    case "symbol":
      return "EURUSD";
    case "userId":
      return victim.userId;
    case "keyId":
      return victim.apiKeyId;
    case "id":
      if (route.url.startsWith("/api/v1/scripts")) return victim.scriptId;
      if (route.url.startsWith("/api/v1/alerts")) return victim.alertId;
      if (route.url.startsWith("/api/v1/api-keys")) return victim.apiKeyId;
      if (route.url.startsWith("/api/v1/notifications")) return String(victim.notificationId);
  }
  throw new Error(`no victim value for :${name} of ${route.method} ${route.url}: add one to the matrix`);
}

function pathParameters(url: string): string[] {
  return [...url.matchAll(/:([A-Za-z]+)/g)].map((match) => match[1]!);
}

function concreteUrl(route: RegisteredRoute): string {
  return route.url.replace(/:([A-Za-z]+)/g, (_whole, name: string) => encodeURIComponent(victimParameter(route, name)));
}

/** Routes whose example body names the victim's account. */
const BODY_TARGETS_VICTIM = new Set(["PUT /api/v1/api-keys", "POST /api/v2/ws/session", "POST /api/v2/ws/auth"]);

/**
 * Routes a user's JWT opens (`userOrApiKey` also takes an API key: the attacker's own key is tried too;
 * `userOrRefreshToken` a refresh token in the body: a forged one for the victim's session is tried too).
 */
function takesUserToken(route: RegisteredRoute): boolean {
  return route.auth === "user" || route.auth === "userOrApiKey" || route.auth === "userOrRefreshToken";
}

/** True when the route's parameters (or its example body) point at the victim's data (not a public symbol). */
function targetsVictimData(route: RegisteredRoute): boolean {
  return (
    BODY_TARGETS_VICTIM.has(`${route.method} ${route.url}`) ||
    pathParameters(route.url).some((name) => name !== "symbol")
  );
}

/** Everything the victim can see of their own state, to compare before and after the attacks. */
async function victimState(): Promise<unknown> {
  const paths = [
    `/api/v1/accounts/${victim.login}`,
    `/api/v1/accounts/${victim.login}/orders`,
    `/api/v1/accounts/${victim.login}/positions`,
    `/api/v1/accounts/${victim.login}/ledger`,
    "/api/v1/accounts",
    "/api/v1/watchlist",
    "/api/v1/scripts",
    "/api/v1/settings",
    "/api/v1/alerts",
    "/api/v1/alerts/logs",
    "/api/v1/api-keys",
    "/api/v1/notifications",
    "/api/v1/notifications/unread-count",
  ];
  const answers = await Promise.all(paths.map((path) => call(server, "GET", path, { token: victim.token })));
  return answers.map((answer, index) => ({ path: paths[index], status: answer.status, body: answer.body }));
}

beforeAll(async () => {
  server = await startTestServer();
  await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  const victimUser = await signUp(server, { password: "victim password 123", keepSignedIn: true });
  const attacker = await signUp(server, { password: ATTACKER_PASSWORD });
  attackerEmail = attacker.email;
  attackerToken = attacker.token;
  attackerLogin = attacker.login;
  attackerApiKey = (await createApiKey(server, attacker, "read")).key;
  const token = victimUser.token;
  const login = victimUser.login;
  const ok = (response: { status: number; body: unknown }) => {
    if (response.status !== 200) throw new Error(`setup failed: ${response.status} ${JSON.stringify(response.body)}`);
    return response.body as { data: Record<string, unknown> };
  };
  const pending = ok(
    await call(server, "POST", `/api/v1/accounts/${login}/orders`, {
      token,
      body: {
        symbol: "EURUSD",
        side: "BUY",
        type: "LIMIT",
        volume: 0.01,
        price: 1.05,
        comment: "victim-order-comment",
      },
    }),
  );
  ok(
    await call(server, "POST", `/api/v1/accounts/${login}/orders`, {
      token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01, comment: "victim-order-comment" },
    }),
  );
  const positions = ok(await call(server, "GET", `/api/v1/accounts/${login}/positions`, { token })) as unknown as {
    structure: string[];
    rows: unknown[][];
  };
  const positionId = positions.rows[0]![positions.structure.indexOf("id")] as number;
  const script = ok(
    await call(server, "PUT", "/api/v1/scripts", {
      token,
      body: { name: "victim-script-name", language: "javascript", source: "// secret" },
    }),
  );
  const alert = ok(
    await call(server, "PUT", "/api/v1/alerts", {
      token,
      body: {
        symbol: "EURUSD",
        side: "BID",
        condition: "GREATER_THAN",
        targetPrice: 1.0844,
        message: "victim-alert-message",
      },
    }),
  );
  // A second alert that fires at once, for a log row.
  ok(
    await call(server, "PUT", "/api/v1/alerts", {
      token,
      body: {
        symbol: "EURUSD",
        side: "BID",
        condition: "LESS_THAN",
        targetPrice: 1.09,
        message: "victim-alert-message",
      },
    }),
  );
  await pushQuote(server, "EURUSD", "1.08431", "1.08441");
  // The trigger's log row and the notifications are written behind the notification queue: wait for it.
  await settle(server);
  const logs = ok(await call(server, "GET", "/api/v1/alerts/logs", { token })) as unknown as {
    structure: string[];
    rows: unknown[][];
  };
  const key = ok(
    await call(server, "PUT", "/api/v1/api-keys", {
      token,
      body: { name: "victim-key-name", accountId: login, scope: "full" },
    }),
  );
  const notifications = ok(await call(server, "GET", "/api/v1/notifications", { token })) as unknown as {
    structure: string[];
    rows: unknown[][];
  };
  victim = {
    refreshToken: victimUser.refreshToken,
    email: victimUser.email,
    userId: victimUser.userId,
    login,
    token,
    orderId: (pending.data.order as { id: number } | undefined)?.id ?? (pending.data.id as number),
    positionId,
    scriptId: script.data.id as string,
    alertId: alert.data.id as string,
    alertLogId: logs.rows[0]![logs.structure.indexOf("id")] as number,
    apiKeyId: (key.data.key as { id: string } | undefined)?.id ?? (key.data.id as string),
    notificationId: notifications.rows[0]![notifications.structure.indexOf("id")] as number,
  };
  // A revoked token: a second session of the victim, ended.
  revokedToken = ok(
    await call(server, "POST", "/api/v1/login", { body: { email: victim.email, password: "victim password 123" } }),
  ).data.token as string;
  ok(await call(server, "POST", "/api/v1/logout", { token: revokedToken }));
  // An expired token: correctly signed for the victim's live session, but past its expiry.
  const [, payload] = victim.token.split(".");
  const claims = JSON.parse(Buffer.from(payload!, "base64url").toString()) as { jti: string };
  expiredToken = await new SignJWT({})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(victim.userId)
    .setJti(claims.jti)
    .setIssuer("bourse")
    .setAudience("bourse-client")
    .setIssuedAt(Math.floor(server.clock.now() / 1000) - 7200)
    .setExpirationTime(Math.floor(server.clock.now() / 1000) - 3600)
    .sign(server.config.jwtSecret);
});

afterAll(async () => {
  await server?.close();
});

describe("authorization matrix", () => {
  it("covers a non-trivial set of routes", () => {
    const userRoutes = server.app.routeRegistry.filter((route) => route.auth === "user");
    expect(userRoutes.length).toBeGreaterThan(30);
  });

  it("refuses every protected route without a valid token, and never leaks the victim's data", async () => {
    const before = await victimState();
    const failures: string[] = [];
    for (const route of server.app.routeRegistry) {
      if (route.auth === "public" || route.auth === "apiKey") continue;
      const url = concreteUrl(route);
      const example = exampleBody(route);
      const body = example === NO_BODY ? undefined : example;
      if (takesUserToken(route) && (route.method === "POST" || route.method === "PUT") && example === undefined)
        failures.push(`${route.method} ${route.url}: no example body in the matrix`);
      const attempts: [string, string | null][] = [
        ["no token", null],
        ["expired token", expiredToken],
        ["revoked token", revokedToken],
        ["another user's token", attackerToken],
      ];
      // The attacker's own session must stay alive, or every later check would pass trivially (logout ends it).
      if ((await call(server, "GET", "/api/v1/session", { token: attackerToken })).status !== 200)
        attackerToken = await attackerSignIn();
      attempts[3] = ["another user's token", attackerToken];
      if (route.auth === "userOrApiKey")
        attempts.push(
          ["another user's API key", `Bearer ${attackerApiKey}`],
          ["an unknown API key", `Bearer ${UNKNOWN_API_KEY}`],
        );
      for (const [who, token] of attempts) {
        const answer = await call(server, route.method, url, { token, body });
        const text = typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body);
        const label = `${route.method} ${url} with ${who}: ${answer.status} ${text.slice(0, 200)}`;
        if (answer.status >= 500) failures.push(`${label} (server error)`);
        const attackerOwn = token === attackerToken || token === `Bearer ${attackerApiKey}`;
        const mayPass = takesUserToken(route) && attackerOwn && !targetsVictimData(route);
        if (answer.status < 300 && !mayPass) failures.push(`${label} (allowed)`);
        if (answer.status === 400 && attackerOwn && takesUserToken(route) && targetsVictimData(route))
          failures.push(`${label} (stopped by validation: fix the example body so ownership is tested)`);
        for (const marker of [...VICTIM_MARKERS, victim.email, victim.userId])
          if (text.includes(marker)) failures.push(`${label} (leaks ${marker})`);
        if (new RegExp(`\\b${victim.login}\\b`).test(text.replace(url, "")) && token !== null)
          failures.push(`${label} (leaks the victim's login)`);
      }
      if (route.auth === "userOrRefreshToken") {
        // A refresh token forged for the victim's session (its id is the JWT's readable `jti`), alone and beside the
        // attacker's own token: refused, the victim's session untouched (victimState below).
        const victimSessionId = JSON.parse(Buffer.from(victim.token.split(".")[1]!, "base64url").toString()).jti;
        const forged = { refreshToken: `rt_${victimSessionId}.0.${"A".repeat(43)}` };
        for (const token of [null, attackerToken]) {
          const answer = await call(server, route.method, url, { token, body: forged });
          const text = JSON.stringify(answer.body);
          if (answer.status !== 401)
            failures.push(`${route.method} ${url} with a forged refresh token: ${answer.status} ${text}`);
          for (const marker of [...VICTIM_MARKERS, victim.email, victim.userId])
            if (text.includes(marker))
              failures.push(`${route.method} ${url} with a forged refresh token (leaks ${marker})`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(await victimState()).toEqual(before);
    expect(attackerLogin).not.toBe(victim.login);
    // The forged refresh tokens ended nothing: the victim's own still renews the session.
    const renewed = await call(server, "POST", "/api/v1/session/refresh", {
      body: { refreshToken: victim.refreshToken },
    });
    expect(renewed.status, JSON.stringify(renewed.body)).toBe(200);
  });

  it("refuses the admin API with any user token", async () => {
    for (const route of server.app.routeRegistry.filter((each) => each.auth === "admin")) {
      const answer = await call(server, route.method, concreteUrl(route), { token: `Bearer ${victim.token}` });
      expect(answer.status, `${route.method} ${route.url}`).toBe(401);
    }
    expect((await admin(server, "GET", "/admin/v1/accounts")).status).toBe(200);
  });
});
