/**
 * PostgreSQL that stalls rather than fails (the audit of 6 December): a statement waiting on a lock another session
 * holds, a network partition that drops packets without a reset (a TCP proxy that stops forwarding), a backend
 * paused with SIGSTOP. Before the drivers bounded their waits (postgres-timeouts.ts) every one of these hung the call
 * forever: a stalled append hung its commands with the engine still "ready", and a stuck platform statement held its
 * pooled connection, and its locks, for good.
 *
 * Each test runs against BOURSE_TEST_PG_URL in a schema of its own, with a short statement timeout, and releases
 * whatever it stalled (the lock, the proxy, SIGCONT) in a finally.
 */
import { defaultEngineConfig } from "@bourse/core";
import { createServer, connect, type Server, type Socket } from "node:net";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import {
  DurableEngine,
  EngineUnavailableError,
  PostgresJournal,
  PostgresPlatformStore,
  StorageUnavailableError,
  type DurableCommandResult,
} from "../src/index.ts";
import { TUESDAY_NOON } from "./trading-session.ts";
import { dropSchema, freshSchemaName, withClient } from "./postgres-test.ts";

const connectionString = process.env.BOURSE_TEST_PG_URL;
if (!connectionString)
  console.warn(
    "postgres-stall.test.ts: skipped, BOURSE_TEST_PG_URL is unset (e.g. postgres://postgres@127.0.0.1:5432/test)",
  );

/** Short, so a stall ends within a test: the client's own limit is this plus ANSWER_GRACE_MILLISECONDS (2 s). */
const STATEMENT_TIMEOUT_MILLISECONDS = 500;
/** Long enough for the client's answer timeout, the refusal and a rebuild; far below "forever". */
const STALL_VERDICT_MILLISECONDS = 8_000;

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

/** How a promise settled within `milliseconds`: its value, its error, or "still pending" (it hangs). */
async function settledWithin<T>(
  promise: Promise<T>,
  milliseconds: number,
): Promise<{ value: T } | { error: unknown } | "still pending"> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<"still pending">((resolve) => {
    timer = setTimeout(() => resolve("still pending"), milliseconds);
  });
  try {
    return await Promise.race([
      promise.then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      ),
      pending,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Where the proxy stops forwarding, as a partition would, without closing anything. */
type Stall = "everything" | "commit-unsent" | "commit-unanswered" | null;

/**
 * A TCP proxy in front of the server that can go silent like a partition: bytes stop flowing both ways but no
 * connection is closed or reset. Stalled connections stay stalled (as a partition's victims do); new ones pass
 * once `stall` is null again.
 */
class StallingProxy {
  private readonly sockets = new Set<Socket>();
  private server: Server | null = null;
  port = 0;
  stall: Stall = null;

  async start(): Promise<void> {
    const target = new URL(connectionString!);
    const server = createServer((client) => this.accept(client, target.hostname, Number(target.port || 5432)));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    this.server = server;
    this.port = (server.address() as { port: number }).port;
  }

  url(): string {
    const url = new URL(connectionString!);
    url.hostname = "127.0.0.1";
    url.port = String(this.port);
    return url.toString();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: Socket, host: string, port: number): void {
    const upstream = connect(port, host);
    this.sockets.add(client).add(upstream);
    let silent = false;
    // A partition carries no FIN or RST either: once silent, neither side learns that the other closed (the
    // server's session lives on until its own timeouts end it, or the proxy closes).
    const cut = () => {
      if (silent) return;
      client.destroy();
      upstream.destroy();
    };
    client.on("error", cut).on("close", cut);
    upstream.on("error", cut).on("close", cut);
    upstream.on("data", (chunk: Buffer) => {
      if (!silent && this.stall !== "everything") client.write(chunk);
      else silent = true;
    });
    client.on("data", (chunk: Buffer) => {
      if (silent || this.stall === "everything") {
        silent = true;
        return;
      }
      // A simple-protocol Query message ('Q') whose text is COMMIT.
      const isCommit = chunk[0] === 0x51 && chunk.subarray(5).toString("latin1").startsWith("COMMIT");
      if (isCommit && this.stall === "commit-unsent") {
        silent = true;
        return;
      }
      upstream.write(chunk);
      if (isCommit && this.stall === "commit-unanswered") silent = true;
    });
  }
}

describe.skipIf(!connectionString)("PostgreSQL that stalls", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  function dropLater(schema: string): void {
    cleanups.push(async () => {
      await dropSchema(connectionString, schema);
    });
  }

  async function openEngine(url = connectionString!, applicationName?: string) {
    const schema = freshSchemaName("bourse_stall");
    dropLater(schema);
    const journal = new PostgresJournal({
      connectionString: url,
      schema,
      connectTimeoutMilliseconds: 1_000,
      statementTimeoutMilliseconds: STATEMENT_TIMEOUT_MILLISECONDS,
      applicationName,
    });
    const engine = await DurableEngine.open({
      journal,
      config: defaultEngineConfig(),
      log: () => {},
      rebuildRetryMilliseconds: 100,
    });
    // Closed with a deadline: an engine whose append hangs (the defect) would hang its close too.
    cleanups.push(async () => void (await settledWithin(engine.close(), 5_000)));
    let time = TUESDAY_NOON;
    const opened = await engine.submit({
      kind: "openAccount",
      time,
      userId: "stall",
      currency: "USD",
      leverage: 100,
      mode: "HEDGING",
    });
    const accountId = (opened as { accountId: number }).accountId;
    const deposit = (comment: string): Promise<DurableCommandResult> =>
      engine.submit({ kind: "deposit", time: (time += 1_000), accountId, amount: 100, comment });
    /** The deposits' comments in the journal, each as often as it is there. */
    const journaled = async (): Promise<string[]> => {
      // An inspection: it does not take the writer lock the engine's journal holds.
      const reader = new PostgresJournal({ connectionString: connectionString!, schema });
      await reader.open({ keepTornTail: true });
      try {
        const records = await reader.read(0, 10_000);
        return records.flatMap(({ event }) =>
          event.type === "BalanceOperation" && event.kind === "DEPOSIT" ? [event.comment] : [],
        );
      } finally {
        await reader.close();
      }
    };
    return { engine, deposit, journaled, schema };
  }

  async function untilReady(engine: DurableEngine): Promise<void> {
    expect(await settledWithin(engine.whenReady(), STALL_VERDICT_MILLISECONDS)).toEqual({ value: undefined });
  }

  it("an append stalled behind a lock is refused, the engine refuses commands meanwhile and serves again once the lock is gone", async () => {
    const { engine, deposit, journaled, schema } = await openEngine();
    await deposit("before");
    const locker = new pg.Client({ connectionString });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE "${schema}".journal IN ACCESS EXCLUSIVE MODE`);
      const stalled = await settledWithin(deposit("stalled"), STALL_VERDICT_MILLISECONDS);
      // It used to hang here, with the engine "ready".
      expect(stalled).not.toBe("still pending");
      const error = (stalled as { error: unknown }).error;
      expect(error).toBeInstanceOf(EngineUnavailableError);
      // The statement was cancelled before any COMMIT: it did not happen.
      expect((error as EngineUnavailableError).outcomeUnknown).toBe(false);
      expect(engine.state).toBe("rebuilding");
      await expect(deposit("while-stalled")).rejects.toBeInstanceOf(EngineUnavailableError);
    } finally {
      await locker.query("ROLLBACK").catch(() => undefined);
      await locker.end();
    }
    await untilReady(engine);
    await deposit("after");
    expect(await journaled()).toEqual(["before", "after"]);
  });

  /**
   * A deposit "before", then the deposit "in-doubt" whose COMMIT the proxy stalls as `stall` says: it must fail within
   * the verdict time as an unknown outcome (the client cannot tell a COMMIT lost on the way from one whose answer was
   * lost: no false success, no false refusal), and the engine be ready again.
   */
  async function commitInDoubt(stall: "commit-unsent" | "commit-unanswered") {
    const proxy = new StallingProxy();
    await proxy.start();
    cleanups.push(() => proxy.close());
    const opened = await openEngine(proxy.url());
    await opened.deposit("before");
    proxy.stall = stall;
    const stalled = await settledWithin(opened.deposit("in-doubt"), STALL_VERDICT_MILLISECONDS);
    proxy.stall = null;
    expect(stalled).not.toBe("still pending");
    const error = (stalled as { error: unknown }).error;
    expect(error).toBeInstanceOf(EngineUnavailableError);
    expect((error as EngineUnavailableError).outcomeUnknown).toBe(true);
    await untilReady(opened.engine);
    return opened;
  }

  it("a COMMIT lost in a partition (never reaches the server) is reported as an unknown outcome, and appends go on", async () => {
    const { deposit, journaled } = await commitInDoubt("commit-unsent");
    // The server still holds the stalled session's uncommitted row until idle_in_transaction_session_timeout ends
    // it: without that, this append would wait on the row for as long as the partition lasts.
    const after = await settledWithin(deposit("after"), STALL_VERDICT_MILLISECONDS);
    expect(after).toMatchObject({ value: { ok: true } });
    expect(await journaled()).toEqual(["before", "after"]);
  });

  it("a COMMIT whose answer is lost in a partition is reported as an unknown outcome, and the journal has it", async () => {
    const { engine, deposit, journaled } = await commitInDoubt("commit-unanswered");
    await deposit("after");
    // The rebuild read the journal: the deposit in doubt did commit, once, and the engine's state has it.
    expect(await journaled()).toEqual(["before", "in-doubt", "after"]);
    expect(engine.engine.state.accounts.values().next().value?.balance).toBe(300);
  });

  const canSignalBackends = process.getuid?.() === 0;
  it.skipIf(!canSignalBackends)(
    "an append whose backend is paused (SIGSTOP) fails instead of hanging, and the engine recovers on other connections",
    async () => {
      const applicationName = `bourse-stall-${process.pid}-${Date.now()}`;
      const { engine, deposit, journaled } = await openEngine(connectionString!, applicationName);
      await deposit("before");
      const stopped: number[] = await withClient(connectionString, async (client) => {
        const { rows } = await client.query<{ pid: number }>(
          "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
          [applicationName],
        );
        return rows.map((row) => row.pid);
      });
      expect(stopped.length).toBeGreaterThan(0);
      try {
        for (const pid of stopped) process.kill(pid, "SIGSTOP");
        const stalled = await settledWithin(deposit("stalled"), STALL_VERDICT_MILLISECONDS);
        expect(stalled).not.toBe("still pending");
        expect((stalled as { error: unknown }).error).toBeInstanceOf(EngineUnavailableError);
        await untilReady(engine);
        expect(await settledWithin(deposit("while-paused"), STALL_VERDICT_MILLISECONDS)).toMatchObject({
          value: { ok: true },
        });
      } finally {
        for (const pid of stopped) process.kill(pid, "SIGCONT");
      }
      expect(await journaled()).toEqual(["before", "while-paused"]);
    },
  );

  async function openStore(url: string, poolSize: number, maxWaitingCalls?: number) {
    const schema = freshSchemaName("bourse_stall");
    dropLater(schema);
    const store = new PostgresPlatformStore({
      connectionString: url,
      schema,
      poolSize,
      maxWaitingCalls,
      connectTimeoutMilliseconds: 300,
      statementTimeoutMilliseconds: STATEMENT_TIMEOUT_MILLISECONDS,
    });
    await store.open();
    cleanups.push(async () => void (await settledWithin(store.close(), 5_000)));
    await store.createUser({ id: "u", email: "u@example.com", name: "U", passwordHash: "h", createdAt: 1 });
    return { store, schema };
  }

  it("platform statements stuck behind a row lock fail with StorageUnavailableError and give their connections back", async () => {
    const { store, schema } = await openStore(connectionString!, 2);
    const locker = new pg.Client({ connectionString });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query(`SELECT id FROM "${schema}".users WHERE id = 'u' FOR UPDATE`);
      // As many as the pool holds: before the fix they held every connection for as long as the lock lasted.
      const stuck = await Promise.all(
        [1, 2].map((n) => settledWithin(store.addToWatchlist("u", `SYM${n}`), STALL_VERDICT_MILLISECONDS)),
      );
      for (const outcome of stuck) {
        expect(outcome).not.toBe("still pending");
        const error = (outcome as { error: unknown }).error;
        expect(error).toBeInstanceOf(StorageUnavailableError);
        expect((error as StorageUnavailableError).outcomeUnknown).toBe(false);
      }
      // The connections are free again: other users' calls are served while the lock is still held.
      expect((await store.findUserByEmail("u@example.com"))?.id).toBe("u");
    } finally {
      await locker.query("ROLLBACK").catch(() => undefined);
      await locker.end();
    }
    expect(await store.addToWatchlist("u", "EURUSD")).toEqual(["EURUSD"]);
  });

  it("calls past the bound on those waiting for a platform connection are refused at once, and the others are served", async () => {
    const { store, schema } = await openStore(connectionString!, 1, 2);
    const locker = new pg.Client({ connectionString });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query(`SELECT id FROM "${schema}".users WHERE id = 'u' FOR UPDATE`);
      // The pool's one connection waits on the lock; two calls wait for that connection, as many as the bound allows.
      const holding = settledWithin(store.updatePasswordHash("u", "h2"), STALL_VERDICT_MILLISECONDS);
      await sleep(50);
      const waiting = [1, 2].map(() =>
        settledWithin(store.findUserByEmail("u@example.com"), STALL_VERDICT_MILLISECONDS),
      );
      await sleep(20);
      // Before the bound, this one joined pg-pool's queue too, as would every request of a stalled server's minutes.
      const startedAt = performance.now();
      const refused = await settledWithin(store.findUserById("u"), STALL_VERDICT_MILLISECONDS);
      expect(performance.now() - startedAt).toBeLessThan(200);
      const error = (refused as { error: unknown }).error;
      expect(error).toBeInstanceOf(StorageUnavailableError);
      expect((error as StorageUnavailableError).outcomeUnknown).toBe(false);
      expect((error as Error).message).toBe(
        "2 calls are already waiting for a PostgreSQL connection: nothing was changed",
      );
      // A transaction is refused alike, before it takes a connection.
      await expect(store.addToWatchlist("u", "EURUSD")).rejects.toThrow(
        "2 calls are already waiting for a PostgreSQL connection",
      );
      await locker.query("ROLLBACK");
      // Done, or ended by the short statement timeout on a slow machine: either way it gave its connection back.
      expect(await holding).not.toBe("still pending");
      for (const outcome of await Promise.all(waiting))
        expect((outcome as { value: { id: string } | null }).value?.id).toBe("u");
    } finally {
      await locker.query("ROLLBACK").catch(() => undefined);
      await locker.end();
    }
    expect(await store.addToWatchlist("u", "EURUSD")).toEqual(["EURUSD"]);
  });

  it("a bound on waiting calls that is not a positive integer is refused before anything opens", async () => {
    // 0 among them: pg-pool queues a call an idle connection takes too, so it refused every call (the review).
    for (const maxWaitingCalls of [-1, 0, 1.5]) {
      await expect(
        new PostgresPlatformStore({ connectionString: connectionString!, maxWaitingCalls }).open(),
      ).rejects.toThrow(`maxWaitingCalls must be a positive integer, got ${maxWaitingCalls}`);
      expect(() => new PostgresJournal({ connectionString: connectionString!, maxWaitingCalls })).toThrow(
        `maxWaitingCalls must be a positive integer, got ${maxWaitingCalls}`,
      );
    }
  });

  it("calls an idle connection is about to take are not counted as waiting: a burst past the bound is served", async () => {
    const { store } = await openStore(connectionString!, 4, 1);
    const journalSchema = freshSchemaName("bourse_stall");
    dropLater(journalSchema);
    const journal = new PostgresJournal({
      connectionString: connectionString!,
      schema: journalSchema,
      maxWaitingCalls: 1,
    });
    await journal.open();
    cleanups.push(async () => void (await settledWithin(journal.close(), 5_000)));
    // Warm: four connections open and idle in each pool.
    await Promise.all([1, 2, 3, 4].map(() => store.findUserById("u")));
    await Promise.all([1, 2, 3, 4].map(() => journal.orderHistory({ accountId: 1 })));
    // Three calls in one tick: pg-pool queues each until its next tick though a connection is idle for it.
    const users = await Promise.all([1, 2, 3].map(() => store.findUserById("u")));
    expect(users.map((user) => user?.id)).toEqual(["u", "u", "u"]);
    const pages = await Promise.all([1, 2, 3].map(() => journal.orderHistory({ accountId: 1 })));
    expect(pages.map((page) => page.rows)).toEqual([[], [], []]);
  });

  it("a client's journal read stalled behind a lock is StorageUnavailableError, and past the bound on waiting reads one is refused at once", async () => {
    const schema = freshSchemaName("bourse_stall");
    dropLater(schema);
    const journal = new PostgresJournal({
      connectionString: connectionString!,
      schema,
      poolSize: 1,
      maxWaitingCalls: 2,
      statementTimeoutMilliseconds: STATEMENT_TIMEOUT_MILLISECONDS,
    });
    await journal.open();
    cleanups.push(async () => void (await settledWithin(journal.close(), 5_000)));
    const locker = new pg.Client({ connectionString });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE "${schema}".order_history IN ACCESS EXCLUSIVE MODE`);
      // The pool's one connection waits on the lock; two reads wait for that connection, as many as the bound allows.
      const stalled = settledWithin(journal.orderHistory({ accountId: 1 }), STALL_VERDICT_MILLISECONDS);
      await sleep(50);
      const waiting = [1, 2].map(() => settledWithin(journal.lastSequence(), STALL_VERDICT_MILLISECONDS));
      await sleep(20);
      const startedAt = performance.now();
      const refused = await settledWithin(journal.ledger({ accountId: 1 }), STALL_VERDICT_MILLISECONDS);
      expect(performance.now() - startedAt).toBeLessThan(200);
      const error = (refused as { error: unknown }).error;
      expect(error).toBeInstanceOf(StorageUnavailableError);
      expect((error as Error).message).toBe(
        "2 calls are already waiting for a PostgreSQL connection: nothing was changed",
      );
      // The stalled read ends with the statement timeout, as the storage's failure (a 503), not as pg's own error.
      const outcome = await stalled;
      expect(outcome).not.toBe("still pending");
      const failure = (outcome as { error: unknown }).error;
      expect(failure).toBeInstanceOf(StorageUnavailableError);
      expect((failure as StorageUnavailableError).outcomeUnknown).toBe(false);
      expect((failure as Error).message).toBe("PostgreSQL did not answer in time: nothing was changed");
      for (const read of await Promise.all(waiting)) expect(read).toEqual({ value: 0 });
    } finally {
      await locker.query("ROLLBACK").catch(() => undefined);
      await locker.end();
    }
    expect((await journal.orderHistory({ accountId: 1 })).rows).toEqual([]);
  });

  it("a platform connection silenced by a partition is given up, and calls waiting for the pool get a clear error", async () => {
    const proxy = new StallingProxy();
    await proxy.start();
    cleanups.push(() => proxy.close());
    const { store } = await openStore(proxy.url(), 1);
    expect((await store.findUserById("u"))?.name).toBe("U");
    proxy.stall = "everything";
    // A write sent outside a transaction on the one connection and never answered may have been applied: its outcome
    // is unknown.
    const writing = settledWithin(store.updatePasswordHash("u", "h2"), STALL_VERDICT_MILLISECONDS);
    await sleep(50);
    // The one connection is stuck: a call waiting for it is refused once the pool's checkout timeout passes.
    const waiting = await settledWithin(store.findUserByEmail("u@example.com"), STALL_VERDICT_MILLISECONDS);
    expect(waiting).not.toBe("still pending");
    const refused = (waiting as { error: unknown }).error;
    expect(refused).toBeInstanceOf(StorageUnavailableError);
    expect((refused as StorageUnavailableError).outcomeUnknown).toBe(false);
    const written = await writing;
    expect(written).not.toBe("still pending");
    const unknown = (written as { error: unknown }).error;
    expect(unknown).toBeInstanceOf(StorageUnavailableError);
    expect((unknown as StorageUnavailableError).outcomeUnknown).toBe(true);
    // A write after it needs a new connection, which the partition never lets open: nothing was sent, nothing changed
    // (a connection that never opened counted as a write sent before 7 December, ninth session).
    const unsent = await settledWithin(store.updatePasswordHash("u", "h3"), STALL_VERDICT_MILLISECONDS);
    expect(unsent).not.toBe("still pending");
    const nothing = (unsent as { error: unknown }).error;
    expect(nothing).toBeInstanceOf(StorageUnavailableError);
    expect((nothing as StorageUnavailableError).outcomeUnknown).toBe(false);
    // The stuck connections were destroyed, not returned: once the partition heals, new ones serve.
    proxy.stall = null;
    expect((await store.findUserById("u"))?.name).toBe("U");
  });
});
