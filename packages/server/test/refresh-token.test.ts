/**
 * The session's refresh token: a phone back from the background past its token's hour renews the session with it, no
 * password asked (POST /api/v1/session/refresh with `{refreshToken}`). Found by the audit of a mobile app's reconnects
 * of 7 December (seventh session): an expired token could not be refreshed, so every phone left in a pocket for an
 * hour had to sign in again. Single use, rotated on each refresh; the one replaced is taken again only within a grace,
 * then ends the session (a copied token's use); never past the session's 7 days.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REFRESH_TOKEN_REUSE_GRACE_MS, SESSION_MAX_LIFETIME_MS } from "../src/auth.ts";
import { WsCloseCodes } from "../src/ws-codes.ts";
import { admin, call, signUp, startTestServer, TUESDAY_NOON, type TestServer } from "./helpers.ts";
import { listenStream, StreamClient } from "./ws-helpers.ts";

const HOUR_MS = 3_600_000;

let server: TestServer;
let url: string;
beforeAll(async () => {
  server = await startTestServer();
  url = await listenStream(server);
});
afterAll(async () => server.close());

/** A refresh with the refresh token in the body, and whatever `Authorization` is given (none by default). */
const refreshWith = (refreshToken: unknown, token: string | null = null) =>
  call(server, "POST", "/api/v1/session/refresh", { token, body: { refreshToken } });
const sessionOf = (token: string) => call(server, "GET", "/api/v1/session", { token });

/** A user signed up at TUESDAY_NOON, kept signed in (a refresh token). */
async function signedUpAtNoon() {
  server.clock.set(TUESDAY_NOON);
  return signUp(server, { keepSignedIn: true });
}
const signIn = (user: { email: string; password: string }, keepSignedIn?: boolean) =>
  call(server, "POST", "/api/v1/login", {
    body: { email: user.email, password: user.password, ...(keepSignedIn === undefined ? {} : { keepSignedIn }) },
  });

describe("a sign-in's refresh token", () => {
  it("is answered by sign-up and sign-in kept signed in, with when it ends (7 days), and not by a refresh with the token", async () => {
    const user = await signedUpAtNoon();
    expect(user.refreshToken).toMatch(/^rt_[0-9a-f-]{36}\.0\.[A-Za-z0-9_-]{43}$/);
    const login = await signIn(user, true);
    expect(login.body.data).toMatchObject({
      refreshToken: expect.stringMatching(/^rt_/),
      refreshExpiresAt: new Date(TUESDAY_NOON + SESSION_MAX_LIFETIME_MS).toISOString(),
    });
    expect(login.body.data.refreshToken).not.toBe(user.refreshToken);
    const byToken = await call(server, "POST", "/api/v1/session/refresh", { token: user.token });
    expect(byToken.status).toBe(200);
    expect(byToken.body.data).not.toHaveProperty("refreshToken");
    expect(byToken.body.data).not.toHaveProperty("refreshExpiresAt");
    // The refresh token held still works after it.
    expect((await refreshWith(user.refreshToken)).status).toBe(200);
  });

  it("is not answered unless asked for: such a session ends with its token, as before", async () => {
    const user = await signedUpAtNoon();
    for (const answer of [await signIn(user), await signIn(user, false), await signUp(server)]) {
      const data = "body" in answer ? answer.body.data : answer;
      expect(data).not.toHaveProperty("refreshExpiresAt");
      expect(data.refreshToken).toBeUndefined();
    }
  });
});

describe("a refresh with the refresh token", () => {
  it("renews a session whose token expired, with no password, and answers the next refresh token", async () => {
    const user = await signedUpAtNoon();
    server.clock.set(TUESDAY_NOON + 3 * HOUR_MS);
    expect((await sessionOf(user.token)).body.error).toBe("TOKEN_EXPIRED");
    const renewed = await refreshWith(user.refreshToken);
    expect(renewed.status, JSON.stringify(renewed.body)).toBe(200);
    expect(renewed.body.data).toMatchObject({
      expiresAt: new Date(TUESDAY_NOON + 4 * HOUR_MS).toISOString(),
      refreshExpiresAt: new Date(TUESDAY_NOON + SESSION_MAX_LIFETIME_MS).toISOString(),
      user: { email: user.email },
      account: { login: user.login },
    });
    expect(renewed.body.data.refreshToken).toMatch(/^rt_[0-9a-f-]{36}\.1\./);
    expect(renewed.body.data.refreshToken).not.toBe(user.refreshToken);
    const session = await sessionOf(renewed.body.data.token);
    expect(session.status).toBe(200);
    expect(session.body.data.expiresAt).toBe(renewed.body.data.expiresAt);
    // The same session: its logout ends the refresh token answered too.
    expect((await call(server, "POST", "/api/v1/logout", { token: renewed.body.data.token })).status).toBe(200);
    expect((await refreshWith(renewed.body.data.refreshToken)).body.error).toBe("SESSION_REVOKED");
  });

  it("is taken beside an expired token in Authorization (a client sends its token with every request)", async () => {
    const user = await signedUpAtNoon();
    server.clock.set(TUESDAY_NOON + 2 * HOUR_MS);
    const renewed = await refreshWith(user.refreshToken, user.token);
    expect(renewed.status, JSON.stringify(renewed.body)).toBe(200);
    // Without a refresh token, the expired token is answered as ever.
    const plain = await call(server, "POST", "/api/v1/session/refresh", { token: user.token });
    expect(plain).toMatchObject({ status: 401, body: { error: "TOKEN_EXPIRED" } });
  });

  it("takes the replaced token again within the grace (the answer was lost) and answers the same next token", async () => {
    const user = await signedUpAtNoon();
    server.clock.set(TUESDAY_NOON + 2 * HOUR_MS);
    const lost = await refreshWith(user.refreshToken);
    expect(lost.status).toBe(200);
    server.clock.set(TUESDAY_NOON + 2 * HOUR_MS + REFRESH_TOKEN_REUSE_GRACE_MS);
    const retried = await refreshWith(user.refreshToken);
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    expect(retried.body.data.refreshToken).toBe(lost.body.data.refreshToken);
    expect((await refreshWith(retried.body.data.refreshToken)).status).toBe(200);
  });

  // Found by the review of 7 December (ninth session): the session remembered one replaced token, so a thief who
  // renewed twice made the owner's token merely unknown, and kept the session.
  it("ends the session when the owner's token comes back after a thief renewed with a copy of it twice", async () => {
    const user = await signedUpAtNoon();
    server.clock.set(TUESDAY_NOON + HOUR_MS);
    const first = await refreshWith(user.refreshToken);
    const second = await refreshWith(first.body.data.refreshToken);
    expect(second.status).toBe(200);
    server.clock.set(TUESDAY_NOON + 3 * HOUR_MS);
    expect((await refreshWith(user.refreshToken)).body.error).toBe("REFRESH_TOKEN_REUSED");
    expect((await refreshWith(second.body.data.refreshToken)).body.error).toBe("SESSION_REVOKED");
  });

  it("answers two refreshes with one token at once the same next token (two tabs)", async () => {
    const user = await signedUpAtNoon();
    server.clock.set(TUESDAY_NOON + 2 * HOUR_MS);
    const [first, second] = await Promise.all([refreshWith(user.refreshToken), refreshWith(user.refreshToken)]);
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(first.body.data.refreshToken).toBe(second.body.data.refreshToken);
    expect((await refreshWith(first.body.data.refreshToken)).status).toBe(200);
  });

  it("ends the session when a replaced token comes back after the grace, and closes its streams", async () => {
    const user = await signedUpAtNoon();
    const client = await StreamClient.connect(url, user.token);
    try {
      server.clock.set(TUESDAY_NOON + 10 * 60_000);
      const rotated = await refreshWith(user.refreshToken);
      expect(rotated.status).toBe(200);
      server.clock.set(TUESDAY_NOON + 10 * 60_000 + REFRESH_TOKEN_REUSE_GRACE_MS + 1);
      const reused = await refreshWith(user.refreshToken);
      expect(reused.status).toBe(401);
      expect(reused.body.error).toBe("REFRESH_TOKEN_REUSED");
      // Every token of the session is done: the current refresh token, the access tokens, the stream.
      expect((await refreshWith(rotated.body.data.refreshToken)).body.error).toBe("SESSION_REVOKED");
      expect((await sessionOf(rotated.body.data.token)).body.error).toBe("SESSION_REVOKED");
      const { code } = await client.closed;
      expect(code).toBe(WsCloseCodes.REVOKED.code);
      expect(client.messages.at(-1)).toMatchObject({
        type: "error",
        payload: { message: expect.stringMatching(/used again/) },
      });
    } finally {
      await client.close();
    }
  });

  it("never renews a session past 7 days from its sign-in", async () => {
    const user = await signedUpAtNoon();
    const end = TUESDAY_NOON + SESSION_MAX_LIFETIME_MS;
    server.clock.set(end - 10 * 60_000);
    const last = await refreshWith(user.refreshToken);
    expect(last.status).toBe(200);
    expect(last.body.data.expiresAt).toBe(new Date(end).toISOString());
    server.clock.set(end);
    const over = await refreshWith(last.body.data.refreshToken);
    expect(over.status).toBe(401);
    expect(over.body.error).toBe("SESSION_EXPIRED");
    expect(over.body.message).toMatch(/7 days/);
    // A forged token for it learns nothing: not that the session is over.
    const forged = last.body.data.refreshToken.replace(/\.[A-Za-z0-9_-]{43}$/, `.${"A".repeat(43)}`);
    expect((await refreshWith(forged)).body.error).toBe("UNAUTHORIZED");
  });

  // The review of 7 December (ninth session): the session that changed the password kept its refresh tokens, so a
  // thief's copy of the caller's own outlived the change.
  it("ends with a password change, the changing session's too, which keeps its token and asks for new ones if it wants", async () => {
    const user = await signedUpAtNoon();
    const phone = await signIn(user, true);
    const changed = await call(server, "POST", "/api/v1/password", {
      token: user.token,
      body: { currentPassword: user.password, newPassword: "a new long password" },
    });
    expect(changed.status).toBe(200);
    expect(changed.body).toEqual({ data: "OK" });
    expect((await refreshWith(phone.body.data.refreshToken)).body.error).toBe("SESSION_REVOKED");
    // The caller's refresh token (and a thief's copy of it) is done; its token still works.
    expect((await refreshWith(user.refreshToken)).body.error).toBe("UNAUTHORIZED");
    expect((await sessionOf(user.token)).status).toBe(200);

    // Kept signed in: a new session, answered as a sign-in's (7 days from the change); the old one ends with its tokens.
    const tablet = await signIn({ email: user.email, password: "a new long password" }, true);
    server.clock.set(TUESDAY_NOON + HOUR_MS / 2);
    const kept = await call(server, "POST", "/api/v1/password", {
      token: tablet.body.data.token,
      body: { currentPassword: "a new long password", newPassword: "a third long password", keepSignedIn: true },
    });
    expect(kept.status, JSON.stringify(kept.body)).toBe(200);
    expect(kept.body.data).toMatchObject({
      token: expect.any(String),
      refreshToken: expect.stringMatching(/^rt_[0-9a-f-]{36}\.0\.[A-Za-z0-9_-]{43}$/),
      refreshExpiresAt: new Date(TUESDAY_NOON + HOUR_MS / 2 + SESSION_MAX_LIFETIME_MS).toISOString(),
      user: expect.objectContaining({ email: user.email }),
    });
    expect((await sessionOf(tablet.body.data.token)).body.error).toBe("SESSION_REVOKED");
    expect((await refreshWith(tablet.body.data.refreshToken)).body.error).toBe("SESSION_REVOKED");
    expect((await sessionOf(kept.body.data.token)).status).toBe(200);
    const renewed = await refreshWith(kept.body.data.refreshToken);
    expect(renewed.status).toBe(200);
    expect(renewed.body.data.refreshToken).toMatch(/\.1\./);
  });

  // The review of 7 December (ninth session): a thief who had renewed the session with a copied refresh token before
  // the change held a token of the session the change kept, and renewed it by token for its 7 days.
  it("signs out a thief who renewed the session with a copy before a password change kept signed in", async () => {
    const user = await signedUpAtNoon();
    server.clock.set(TUESDAY_NOON + HOUR_MS / 6);
    const stolen = await refreshWith(user.refreshToken);
    expect(stolen.status).toBe(200);
    server.clock.set(TUESDAY_NOON + HOUR_MS / 3);
    const changed = await call(server, "POST", "/api/v1/password", {
      token: user.token,
      body: { currentPassword: user.password, newPassword: "a brand new long password", keepSignedIn: true },
    });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    expect((await refreshWith(stolen.body.data.refreshToken)).body.error).toBe("SESSION_REVOKED");
    server.clock.set(TUESDAY_NOON + HOUR_MS / 2);
    const byToken = await call(server, "POST", "/api/v1/session/refresh", { token: stolen.body.data.token });
    expect(byToken.body.error).toBe("SESSION_REVOKED");
    expect((await sessionOf(changed.body.data.token)).status).toBe(200);
  });

  it("is refused once the broker disabled the user, reset the password or ended the user's sessions", async () => {
    for (const change of [
      (userId: string) => admin(server, "POST", `/admin/v1/users/${userId}`, { disabled: true }),
      (userId: string) => admin(server, "POST", `/admin/v1/users/${userId}/password`, { password: "another long one" }),
      (userId: string) => admin(server, "DELETE", `/admin/v1/users/${userId}/sessions`),
    ]) {
      const user = await signedUpAtNoon();
      const answer = await change(user.userId);
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect((await refreshWith(user.refreshToken)).body.error).toBe("SESSION_REVOKED");
    }
  });

  // Found by the review of 7 December (ninth session): a disable that failed halfway (its sessions not ended) left
  // the refresh token renewing the session for 7 days.
  it("ends a disabled user's session it meets, and answers USER_DISABLED", async () => {
    const user = await signedUpAtNoon();
    const store = server.platform.store;
    const original = store.revokeOtherSessions.bind(store);
    store.revokeOtherSessions = async () => {
      throw new Error("the database went away");
    };
    try {
      expect((await admin(server, "POST", `/admin/v1/users/${user.userId}`, { disabled: true })).status).toBe(500);
    } finally {
      store.revokeOtherSessions = original;
    }
    expect((await refreshWith(user.refreshToken)).body.error).toBe("USER_DISABLED");
    expect((await refreshWith(user.refreshToken)).body.error).toBe("SESSION_REVOKED");
    await admin(server, "POST", `/admin/v1/users/${user.userId}`, { disabled: false });
  });

  it("outlives the hourly purge of sessions while it can renew the session", async () => {
    const user = await signedUpAtNoon();
    server.clock.set(TUESDAY_NOON + 3 * 86_400_000);
    await server.context.auth.purgeSessions();
    expect((await refreshWith(user.refreshToken)).status).toBe(200);
  });
});

describe("a sign-out with the refresh token", () => {
  // Found by the review of 7 December (ninth session): a phone whose token expired had to renew the session to end it.
  it("ends the session whose token expired, without renewing it; a forged token ends nothing", async () => {
    const user = await signedUpAtNoon();
    server.clock.set(TUESDAY_NOON + 3 * HOUR_MS);
    const forged = user.refreshToken.replace(/\.[A-Za-z0-9_-]{43}$/, `.${"A".repeat(43)}`);
    const logout = (refreshToken: string) =>
      call(server, "POST", "/api/v1/logout", { token: user.token, body: { refreshToken } });
    expect(await logout(forged)).toMatchObject({ status: 401, body: { error: "UNAUTHORIZED" } });
    expect(await logout(user.refreshToken)).toMatchObject({ status: 200, body: { data: "OK" } });
    expect((await refreshWith(user.refreshToken)).body.error).toBe("SESSION_REVOKED");
    expect((await logout(user.refreshToken)).body.error).toBe("SESSION_REVOKED");
  });
});

describe("a refresh refused", () => {
  it("answers 401 for no credential at all, and for a malformed or forged refresh token, ending nothing", async () => {
    const user = await signedUpAtNoon();
    const none = await call(server, "POST", "/api/v1/session/refresh", {});
    expect(none).toMatchObject({ status: 401, body: { error: "UNAUTHORIZED" } });
    // Empty and past 200 characters (a JWT sent as one) are refused by the schema; the others by the service.
    for (const [bad, status] of [
      ["", 400],
      [user.token, 400],
      ["rt_nope", 401],
      [`${user.refreshToken}x`, 401],
      [user.refreshToken.replace("rt_", "rt-"), 401],
    ] as const)
      expect((await refreshWith(bad)).status, bad).toBe(status);
    // A forged secret for a real session (its id is in the token anyone holding it can read): refused, nothing ends.
    const forged = `${user.refreshToken.slice(0, user.refreshToken.indexOf(".") + 1)}${"A".repeat(43)}`;
    expect(await refreshWith(forged)).toMatchObject({ status: 401, body: { error: "UNAUTHORIZED" } });
    expect((await sessionOf(user.token)).status).toBe(200);
    expect((await refreshWith(user.refreshToken)).status).toBe(200);
  });

  it("refuses a body with another field, and a refresh token that is not a string, changing nothing", async () => {
    const user = await signedUpAtNoon();
    expect(
      (
        await call(server, "POST", "/api/v1/session/refresh", {
          body: { refreshToken: user.refreshToken, userId: "x" },
        })
      ).status,
    ).toBe(400);
    expect((await refreshWith(42)).status).toBe(400);
    expect((await refreshWith(user.refreshToken)).status).toBe(200);
  });
});
