/**
 * A platform store newer than its journal: a backup pair restored with the platform store copied after the journal,
 * or a journal restored alone. Found by the audit of an operator's journey of 7 December (sixth session): users saw
 * notifications of fills the books did not hold, and the next real fill got no notification (its journal sequence
 * was taken by one of those). The journal is the truth: a start deletes the notifications of events past its end.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createPlatformStore } from "@bourse/store";
import { afterAll, describe, expect, it } from "vitest";
import { call, pushQuote, settle, signUp, startTestServer, tableObjects } from "./helpers.ts";

const directory = mkdtempSync(path.join(tmpdir(), "bourse-platform-newer-"));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

async function buy(server: Awaited<ReturnType<typeof startTestServer>>, user: { login: number; token: string }) {
  const order = await call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
    token: user.token,
    body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01 },
  });
  expect(order.status).toBe(200);
}

async function titles(server: Awaited<ReturnType<typeof startTestServer>>, user: { token: string }) {
  await settle(server);
  const page = await call(server, "GET", "/api/v1/notifications?limit=100", { token: user.token });
  return tableObjects(page.body).map((row) => row.title as string);
}

describe("a platform store newer than its journal", () => {
  it("loses the notifications of events the journal does not hold, and the next fill gets its own", async () => {
    const first = await startTestServer({ dataDirectory: directory });
    const user = await signUp(first);
    await pushQuote(first, "EURUSD", "1.08430", "1.08440");
    await buy(first, user);
    const before = await titles(first, user);
    expect(before).toHaveLength(1);
    const journalEnd = first.platform.durableSequence;
    await first.close();

    // What a platform store copied after the journal holds: notifications of the next events, and the mark past them.
    const store = createPlatformStore(path.join(directory, "platform.sqlite"));
    await store.open();
    const [stored] = await store.listNotifications(user.userId, { limit: 1 }).then((page) => page.rows);
    const ahead = [1, 2, 3, 4, 5, 6, 7, 8].map((step) => ({
      userId: user.userId,
      accountId: user.login,
      kind: "ORDER_FILLED" as const,
      level: "info" as const,
      title: `a fill the journal does not hold ${step}`,
      createdAt: stored!.createdAt,
      journalSequence: journalEnd + step,
    }));
    await store.addNotifications(ahead, journalEnd + 8);
    await store.close();

    const second = await startTestServer({ dataDirectory: directory });
    try {
      expect(await titles(second, user)).toEqual(before);
      await pushQuote(second, "EURUSD", "1.08430", "1.08440");
      await buy(second, user);
      const after = await titles(second, user);
      expect(after).toHaveLength(2);
      expect(after.slice(1)).toEqual(before);
    } finally {
      await second.close();
    }
  });
});
