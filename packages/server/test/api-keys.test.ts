/**
 * API keys: the routes (create, list, rotate, revoke) and the service the Automation API calls
 * (`authenticate`): the secret is shown once and stored only as its SHA-256, rotation and revocation
 * stop the old key at once, last use is recorded at most once a minute, and another user's key is
 * untouchable.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ApiKeyService } from "../src/api-keys.ts";
import { call, signUp, startTestServer, tableObjects, TUESDAY_NOON, type TestServer } from "./helpers.ts";

type User = Awaited<ReturnType<typeof signUp>>;

let server: TestServer;
let keys: ApiKeyService;
beforeAll(async () => {
  server = await startTestServer();
  keys = ApiKeyService.for(server.platform);
});
afterAll(async () => {
  await server.close();
});

/** The client address the service counts refusals for (a documentation address, RFC 5737). */
const ADDRESS = "192.0.2.1";
const KEY = /^tk_live_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$/;

async function createKey(user: User, body: Record<string, unknown> = {}) {
  const response = await call(server, "PUT", "/api/v1/api-keys", {
    token: user.token,
    body: { name: "bot", accountId: user.login, scope: "trade", ...body },
  });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.data as Record<string, unknown> & { id: string; key: string };
}

describe("creating and listing keys", () => {
  it("answers the whole key once; the list and the store never hold it", async () => {
    const user = await signUp(server);
    const response = await call(server, "PUT", "/api/v1/api-keys", {
      token: user.token,
      body: { name: "my bot", accountId: user.login, scope: "read" },
    });
    expect(response.status).toBe(200);
    const data = response.body.data;
    expect(data).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: "my bot",
      accountId: user.login,
      scope: "read",
      prefix: expect.stringMatching(/^[0-9a-f]{16}$/),
      status: "active",
      createdAt: new Date(TUESDAY_NOON).toISOString(),
      lastUsedAt: null,
      revokedAt: null,
      rotatedFrom: null,
      key: expect.stringMatching(KEY),
    });
    expect(KEY.exec(data.key)![1]).toBe(data.prefix);

    const list = await call(server, "GET", "/api/v1/api-keys", { token: user.token });
    expect(list.status).toBe(200);
    expect(list.body.structure).toEqual([
      "id",
      "name",
      "accountId",
      "scope",
      "prefix",
      "status",
      "createdAt",
      "lastUsedAt",
      "revokedAt",
      "rotatedFrom",
    ]);
    const { key, ...shown } = data;
    expect(tableObjects(list.body)).toEqual([shown]);
    const secret = (key as string).split("_").slice(3).join("_");
    expect(JSON.stringify(list.body)).not.toContain(secret);
    expect(JSON.stringify(list.body)).not.toContain("sha256");

    const [stored] = await server.platform.store.listApiKeys(user.userId);
    expect(stored!.secretHash).toBe(
      `sha256:${createHash("sha256")
        .update(key as string)
        .digest("hex")}`,
    );
    expect(stored!.secretHash).not.toContain(secret);
  });

  it("makes keys with at least 256 random bits: no two alike", async () => {
    const user = await signUp(server);
    const made = new Set<string>();
    for (let index = 0; index < 5; index++) made.add((await createKey(user)).key);
    expect(made.size).toBe(5);
  });

  it("refuses a bad scope, a missing name, unknown fields, and an account the user does not own (403)", async () => {
    const user = await signUp(server);
    const other = await signUp(server);
    for (const body of [
      { name: "x", accountId: user.login, scope: "admin" },
      { accountId: user.login, scope: "read" },
      { name: "", accountId: user.login, scope: "read" },
      { name: "x", accountId: user.login, scope: "read", secret: "mine" },
      { name: "x", accountId: "abc", scope: "read" },
    ]) {
      const response = await call(server, "PUT", "/api/v1/api-keys", { token: user.token, body });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error).toBe("INVALID_DATA");
    }
    for (const accountId of [other.login, 99_999_999]) {
      const response = await call(server, "PUT", "/api/v1/api-keys", {
        token: user.token,
        body: { name: "x", accountId, scope: "full" },
      });
      expect(response.status).toBe(403);
      expect(response.body.error).toBe("FORBIDDEN");
    }
    expect((await call(server, "GET", "/api/v1/api-keys", { token: user.token })).body.rows).toEqual([]);
  });

  it("holds at most 50 active keys per user (LIMIT_REACHED); a revoked one frees a place", async () => {
    const user = await signUp(server);
    const made = [];
    for (let index = 0; index < 50; index++) made.push(await createKey(user, { name: `k${index}` }));
    const refused = await call(server, "PUT", "/api/v1/api-keys", {
      token: user.token,
      body: { name: "one more", accountId: user.login, scope: "read" },
    });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toBe("LIMIT_REACHED");
    await call(server, "DELETE", `/api/v1/api-keys/${made[0]!.id}`, { token: user.token });
    await createKey(user, { name: "one more" });
  });
});

describe("authenticate, rotate, revoke", () => {
  it("authenticates the key for its user, account and scope; refuses a wrong secret or a malformed key", async () => {
    const user = await signUp(server);
    const created = await createKey(user, { scope: "full" });
    const result = await keys.authenticate(created.key, ADDRESS);
    expect(result).toMatchObject({ ok: true, userId: user.userId, accountId: user.login, scope: "full" });
    const forged = created.key.slice(0, -4) + (created.key.endsWith("AAAA") ? "BBBB" : "AAAA");
    expect(await keys.authenticate(forged, ADDRESS)).toEqual({ ok: false, reason: "INVALID" });
    expect(await keys.authenticate("tk_live_0000000000000000_" + "A".repeat(43), ADDRESS)).toEqual({
      ok: false,
      reason: "INVALID",
    });
    for (const bad of ["", "Bearer x", "tk_live_", created.key + "x", created.key.replace("tk_live_", "tk_test_")])
      expect(await keys.authenticate(bad, ADDRESS)).toEqual({ ok: false, reason: "MALFORMED" });
  });

  it("records the last use at most once a minute per key", async () => {
    const user = await signUp(server);
    const created = await createKey(user);
    const touch = vi.spyOn(server.platform.store, "touchApiKey");
    try {
      for (let index = 0; index < 5; index++) expect((await keys.authenticate(created.key, ADDRESS)).ok).toBe(true);
      expect(touch).toHaveBeenCalledTimes(1);
      await new Promise((resolve) => setImmediate(resolve));
      let [row] = tableObjects((await call(server, "GET", "/api/v1/api-keys", { token: user.token })).body);
      expect(row!.lastUsedAt).toBe(new Date(server.clock.now()).toISOString());
      server.clock.advance(61_000);
      await keys.authenticate(created.key, ADDRESS);
      expect(touch).toHaveBeenCalledTimes(2);
      await new Promise((resolve) => setImmediate(resolve));
      [row] = tableObjects((await call(server, "GET", "/api/v1/api-keys", { token: user.token })).body);
      expect(row!.lastUsedAt).toBe(new Date(server.clock.now()).toISOString());
    } finally {
      touch.mockRestore();
    }
  });

  it("rotation answers a new key once and the old key fails at once", async () => {
    const user = await signUp(server);
    const created = await createKey(user, { name: "rotating", scope: "read" });
    expect((await keys.authenticate(created.key, ADDRESS)).ok).toBe(true);
    const response = await call(server, "POST", `/api/v1/api-keys/${created.id}/rotate`, { token: user.token });
    expect(response.status).toBe(200);
    const rotated = response.body.data;
    expect(rotated).toMatchObject({
      name: "rotating",
      scope: "read",
      accountId: user.login,
      status: "active",
      rotatedFrom: created.id,
      key: expect.stringMatching(KEY),
    });
    expect(rotated.id).not.toBe(created.id);
    expect(await keys.authenticate(created.key, ADDRESS)).toEqual({ ok: false, reason: "INVALID" });
    expect(await keys.authenticate(rotated.key, ADDRESS)).toMatchObject({ ok: true, userId: user.userId });
    const list = tableObjects((await call(server, "GET", "/api/v1/api-keys", { token: user.token })).body);
    expect(list.map((row) => [row.id, row.status])).toEqual(
      expect.arrayContaining([
        [created.id, "revoked"],
        [rotated.id, "active"],
      ]),
    );
    const again = await call(server, "POST", `/api/v1/api-keys/${created.id}/rotate`, { token: user.token });
    expect(again.status).toBe(404);
  });

  it("revocation stops the key at once; revoking again is 404", async () => {
    const user = await signUp(server);
    const created = await createKey(user);
    const response = await call(server, "DELETE", `/api/v1/api-keys/${created.id}`, { token: user.token });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ data: "OK" });
    expect(await keys.authenticate(created.key, ADDRESS)).toEqual({ ok: false, reason: "INVALID" });
    const [row] = tableObjects((await call(server, "GET", "/api/v1/api-keys", { token: user.token })).body);
    expect(row).toMatchObject({ status: "revoked", revokedAt: new Date(server.clock.now()).toISOString() });
    expect((await call(server, "DELETE", `/api/v1/api-keys/${created.id}`, { token: user.token })).status).toBe(404);
    expect((await call(server, "DELETE", "/api/v1/api-keys/not%20an%20id", { token: user.token })).status).toBe(400);
  });

  it("another user can neither see, rotate nor revoke a key (404), and the key keeps working", async () => {
    const owner = await signUp(server);
    const other = await signUp(server);
    const created = await createKey(owner, { name: "owner-key" });
    for (const [method, url] of [
      ["POST", `/api/v1/api-keys/${created.id}/rotate`],
      ["DELETE", `/api/v1/api-keys/${created.id}`],
    ] as const) {
      const response = await call(server, method, url, { token: other.token });
      expect(response.status, method).toBe(404);
      expect(response.body.error).toBe("NOT_FOUND");
    }
    const list = await call(server, "GET", "/api/v1/api-keys", { token: other.token });
    expect(list.body.rows).toEqual([]);
    expect(JSON.stringify(list.body)).not.toContain("owner-key");
    expect(await keys.authenticate(created.key, ADDRESS)).toMatchObject({ ok: true, userId: owner.userId });
    const [row] = tableObjects((await call(server, "GET", "/api/v1/api-keys", { token: owner.token })).body);
    expect(row).toMatchObject({ id: created.id, status: "active" });
  });

  it("answers 401 without a token on every route", async () => {
    for (const [method, url, body] of [
      ["GET", "/api/v1/api-keys", undefined],
      ["PUT", "/api/v1/api-keys", { name: "x", accountId: 1, scope: "read" }],
      ["POST", "/api/v1/api-keys/abc/rotate", undefined],
      ["DELETE", "/api/v1/api-keys/abc", undefined],
    ] as const) {
      expect((await call(server, method, url, { body })).status, `${method} ${url}`).toBe(401);
    }
  });
});
