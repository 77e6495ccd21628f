/**
 * Reads while a batch is being written (DESIGN.md section 2: nothing that depends on an unjournaled
 * event leaves the process; issue 3: nothing unacknowledged is reported as done). The engine runs a
 * batch before its append; a snapshot route answered meanwhile must show the state as of the last
 * durable event, not the batch in flight, which the journal may still refuse.
 */
import { JournalWriteError, type EventJournal } from "@bourse/store";
import { afterAll, beforeAll, expect, it } from "vitest";
import { admin, call, pushQuote, signUp, startTestServer, type TestServer } from "./helpers.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

/** Holds the journal's next append until the test lets it go on or fail (the platform keeps its journal private). */
function holdNextAppend(testServer: TestServer) {
  const journal = (testServer.platform as unknown as { journal: EventJournal }).journal;
  const append = journal.append.bind(journal);
  let reached: () => void = () => undefined;
  const appendReached = new Promise<void>((resolve) => (reached = resolve));
  let settle: (outcome: "commit" | Error) => void = () => undefined;
  const outcome = new Promise<"commit" | Error>((resolve) => (settle = resolve));
  journal.append = async (records) => {
    journal.append = append;
    reached();
    const decided = await outcome;
    if (decided instanceof Error) throw decided;
    return append(records);
  };
  return { appendReached, commit: () => settle("commit"), fail: (error: Error) => settle(error) };
}

async function waitUntilReady(): Promise<void> {
  for (let attempt = 0; attempt < 200 && !server.platform.ready; attempt += 1)
    await new Promise((resolve) => setTimeout(resolve, 10));
  expect(server.platform.ready).toBe(true);
}

function snapshots(login: number, token: string) {
  return Promise.all([
    call(server, "GET", `/api/v1/accounts/${login}`, { token }),
    call(server, "GET", `/api/v1/accounts/${login}/positions`, { token }),
    call(server, "GET", `/api/v1/accounts/${login}/orders`, { token }),
    admin(server, "GET", `/admin/v1/accounts/${login}`),
  ]);
}

it("a read while the batch of an order is being written does not show the order the journal then refuses", async () => {
  const user = await signUp(server);
  await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  const before = await snapshots(user.login, user.token);

  const held = holdNextAppend(server);
  const order = call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
    token: user.token,
    body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 },
  });
  const limit = call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
    token: user.token,
    body: { symbol: "EURUSD", side: "BUY", type: "LIMIT", volume: 0.1, price: 1.07 },
  });
  await held.appendReached;
  const during = await snapshots(user.login, user.token);
  expect(during.map((answer) => answer.body)).toEqual(before.map((answer) => answer.body));

  held.fail(new JournalWriteError("disk full (test)", false));
  expect((await order).status).toBe(503);
  expect((await limit).status).toBe(503);
  await waitUntilReady();
  const after = await snapshots(user.login, user.token);
  expect(after.map((answer) => answer.body)).toEqual(before.map((answer) => answer.body));
});

it("a read while the batch of a deposit is being written shows the balance before it, and after it once durable", async () => {
  const user = await signUp(server);
  const held = holdNextAppend(server);
  const deposit = admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: 250 });
  await held.appendReached;
  const during = await call(server, "GET", `/api/v1/accounts/${user.login}`, { token: user.token });
  expect(during.body.data.balance).toBe(10000);

  held.commit();
  expect((await deposit).status).toBe(200);
  const after = await call(server, "GET", `/api/v1/accounts/${user.login}`, { token: user.token });
  expect(after.body.data.balance).toBe(10250);
});
