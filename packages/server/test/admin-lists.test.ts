/**
 * The back office's lists, found by the audit of the back office of 7 December: GET /admin/v1/users read every user
 * with one query each at once (a PostgreSQL pool refused it past 1,000 users, and every request meanwhile), listed
 * only users with an account, and showed no sign-in lock; GET /admin/v1/accounts took no page and answered every
 * account. Both page now (limit, cursor → nextCursor).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { admin, call, signUp, startTestServer, tableObjects, type TestServer } from "./helpers.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ environment: { BOURSE_LOGIN_MAX_FAILURES: "2" } });
});
afterAll(async () => {
  await server.close();
});

describe("back-office lists", () => {
  it("pages the accounts by login and the users by id, to the end", async () => {
    const users = [await signUp(server), await signUp(server), await signUp(server)];
    const logins: number[] = [];
    for (let cursor: string | null = null; ;) {
      const page = await admin(server, "GET", `/admin/v1/accounts?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.status).toBe(200);
      expect(page.body.rows.length).toBeLessThanOrEqual(2);
      logins.push(...tableObjects(page.body).map((row) => row.login as number));
      cursor = page.body.nextCursor ?? null;
      if (cursor === null) break;
    }
    expect(logins).toEqual([...logins].sort((a, b) => a - b));
    expect(logins).toEqual(expect.arrayContaining(users.map((user) => user.login)));
    const ids: string[] = [];
    for (let cursor: string | null = null; ;) {
      const page = await admin(
        server,
        "GET",
        `/admin/v1/users?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      );
      expect(page.status).toBe(200);
      const rows = tableObjects(page.body);
      ids.push(...rows.map((row) => row.id as string));
      for (const row of rows) expect(Object.keys(row)).not.toContain("passwordHash");
      cursor = page.body.nextCursor ?? null;
      if (cursor === null) break;
    }
    expect(ids).toHaveLength(new Set(ids).size);
    expect(ids).toEqual(expect.arrayContaining(users.map((user) => user.userId)));
    const bad = await admin(server, "GET", "/admin/v1/accounts?limit=1001");
    expect(bad.status).toBe(400);
    expect((await admin(server, "GET", "/admin/v1/accounts?cursor=abc")).status).toBe(400);
    expect((await admin(server, "GET", "/admin/v1/users?size=2")).status).toBe(400);
  });

  it("shows a user's sign-in lock, and its lifting", async () => {
    const user = await signUp(server);
    for (let attempt = 0; attempt < 2; attempt += 1)
      await call(server, "POST", "/api/v1/login", { body: { email: user.email, password: "wrong password" } });
    const locked = await admin(server, "GET", `/admin/v1/users/${user.userId}`);
    expect(locked.body.data.user).toMatchObject({
      id: user.userId,
      failedLoginCount: 2,
      lockedUntil: new Date(server.clock.now() + server.config.loginLockSeconds * 1000).toISOString(),
    });
    expect((await admin(server, "POST", `/admin/v1/users/${user.userId}/unlock`)).status).toBe(200);
    const lifted = await admin(server, "GET", `/admin/v1/users/${user.userId}`);
    expect(lifted.body.data.user).toMatchObject({ failedLoginCount: 0, lockedUntil: null });
  });
});
