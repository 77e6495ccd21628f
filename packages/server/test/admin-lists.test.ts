/**
 * The back office's lists, found by the audit of the back office of 7 December: GET /admin/v1/users read every user
 * with one query each at once (a PostgreSQL pool refused it past 1,000 users, and every request meanwhile), listed
 * only users with an account, and showed no sign-in lock; GET /admin/v1/accounts took no page and answered every
 * account. Both page now (limit, cursor → nextCursor).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
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

  it("pages the accounts opened between two pages too (the logins in order are kept, and sorted again on an opening)", async () => {
    const first = await signUp(server);
    const page = await admin(server, "GET", `/admin/v1/accounts?limit=1&cursor=${first.login - 1}`);
    expect(tableObjects(page.body).map((row) => row.login)).toEqual([first.login]);
    expect(page.body.nextCursor).toBeNull();
    const second = await signUp(server);
    const next = await admin(server, "GET", `/admin/v1/accounts?limit=5&cursor=${first.login}`);
    expect(tableObjects(next.body).map((row) => row.login)).toEqual([second.login]);
    expect(next.body.nextCursor).toBeNull();
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

// Found by the audit of the back office of 7 December: a payment bridge that retried a deposit after a lost answer
// (a timeout, an OUTCOME_UNKNOWN) deposited it twice, and the answer did not even say which operation it made.
describe("balance operations with a reference", () => {
  it("answer a retry with the first operation and move no money again; another use is 409", async () => {
    const user = await signUp(server);
    const url = `/admin/v1/accounts/${user.login}`;
    const first = await admin(server, "POST", `${url}/deposit`, { amount: "100.00", reference: "psp-42" });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.data).toMatchObject({ balance: 10100, operationId: expect.any(Number), duplicate: false });
    const again = await admin(server, "POST", `${url}/deposit`, { amount: "100.00", reference: "psp-42" });
    expect(again.body.data).toMatchObject({
      balance: 10100,
      operationId: first.body.data.operationId,
      duplicate: true,
    });
    const other = await admin(server, "POST", `${url}/deposit`, { amount: "100.01", reference: "psp-42" });
    expect(other.status).toBe(409);
    expect(other.body.error).toBe("DUPLICATE_REFERENCE");
    const credit = await admin(server, "POST", `${url}/credit`, { amount: "20", reference: "bonus-1" });
    const removed = await admin(server, "POST", `${url}/credit/remove`, { amount: "20", reference: "bonus-1" });
    expect(removed.status).toBe(409);
    expect(
      (await admin(server, "POST", `${url}/credit`, { amount: "20", reference: "bonus-1" })).body.data,
    ).toMatchObject({
      credit: 20,
      operationId: credit.body.data.operationId,
      duplicate: true,
    });
    const ledger = await call(server, "GET", `/api/v1/accounts/${user.login}/ledger`, { token: user.token });
    expect(tableObjects(ledger.body).filter((row) => row.kind === "DEPOSIT")).toHaveLength(2); // funding and psp-42
    // The back office reads the same ledger (it could read none: the audit of 7 December), a page at a time.
    const backOffice = await admin(server, "GET", `${url}/ledger?limit=2`);
    expect(backOffice.status).toBe(200);
    expect(backOffice.body.structure).toEqual(ledger.body.structure);
    expect(backOffice.body.rows).toEqual(ledger.body.rows.slice(0, 2));
    expect(backOffice.body.nextCursor).toEqual(expect.any(String));
    expect((await call(server, "GET", `${url}/ledger`, { token: user.token })).status).toBe(401);
    expect((await admin(server, "GET", "/admin/v1/accounts/999999/ledger")).status).toBe(404);
    expect((await admin(server, "POST", `${url}/deposit`, { amount: "1", reference: "x".repeat(65) })).status).toBe(
      400,
    );
  });
});

describe("a balance reference across a restart", () => {
  it("is kept in the journal: the retry after a restart moves no money", async () => {
    const directory = mkdtempSync(path.join(tmpdir(), "bourse-reference-"));
    try {
      const first = await startTestServer({ dataDirectory: directory });
      const user = await signUp(first);
      const deposit = { amount: "75.00", reference: "psp-restart" };
      const url = `/admin/v1/accounts/${user.login}/deposit`;
      const done = await admin(first, "POST", url, deposit);
      expect(done.body.data).toMatchObject({ balance: 10075, duplicate: false });
      await first.close();
      const second = await startTestServer({ dataDirectory: directory });
      try {
        const retried = await admin(second, "POST", url, deposit);
        expect(retried.body.data).toMatchObject({
          balance: 10075,
          duplicate: true,
          operationId: done.body.data.operationId,
        });
      } finally {
        await second.close();
      }
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
