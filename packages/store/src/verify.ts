/**
 * `verify`: recomputes every account's ledger from the journal on its own (not through the engine's
 * fold) and reports every difference from what a replay of the journal holds, the ledger invariant,
 * and whether the latest snapshot matches a replay to its sequence; given the read models, every row of
 * every history against the rows the events make.
 */
import {
  TradingEngine,
  hashText,
  isWorkingStatus,
  ledgerBalance,
  type EngineConfig,
  type LedgerTotals,
  type Position,
} from "@bourse/core";
import type { EventJournal, JournalRecord, SnapshotRecord } from "./journal.ts";
import {
  DEAL_COLUMNS,
  LEDGER_COLUMNS,
  MAX_HISTORY_LIMIT,
  ORDER_COLUMNS,
  POSITION_COLUMNS,
  projectBatch,
  projectionKeys,
  type HistoryPage,
  type HistoryQuery,
  type LedgerBalanceRow,
  type LedgerRow,
  type OrderHistoryRow,
  type PositionHistoryRow,
  type ReadModels,
  type TABLES,
} from "./read-models.ts";
import { DEFAULT_RECOVERY_BATCH_SIZE, journalBatches, recoverEngine } from "./recovery.ts";

export interface VerifyDifference {
  /** What the difference is about: "account 100001", "snapshot 5000", "journal". */
  readonly subject: string;
  readonly detail: string;
}

export interface VerifyReport {
  readonly lastSequence: number;
  readonly accounts: number;
  readonly snapshotSequence: number | null;
  /** The state hash of a full replay. */
  readonly stateHash: string;
  /** Empty when all is well. */
  readonly differences: readonly VerifyDifference[];
}

/** An account's money as the events alone tell it, in minor units of the account currency. */
interface EventLedger extends LedgerTotals {
  balance: number;
  credit: number;
}

function emptyLedger(): EventLedger {
  return {
    balance: 0,
    credit: 0,
    deposits: 0,
    withdrawals: 0,
    realisedProfit: 0,
    commissions: 0,
    swaps: 0,
    corrections: 0,
  };
}

const LEDGER_FIELDS = ["deposits", "withdrawals", "realisedProfit", "commissions", "swaps", "corrections"] as const;

type HistoryName = keyof typeof TABLES;

/** Any history's row: verify reads its columns by name. */
interface HistoryRow {
  readonly id: number;
  readonly accountId: number;
}

/** A history the API serves, and the words verify's report names it and its rows with. */
interface History {
  readonly columns: readonly string[];
  /** A row is "order 12", several are "orders". */
  readonly row: string;
  readonly name: string;
  page(readModels: ReadModels, query: HistoryQuery): Promise<HistoryPage<HistoryRow>>;
}

const HISTORIES: Readonly<Record<HistoryName, History>> = {
  orders: {
    columns: ORDER_COLUMNS,
    row: "order",
    name: "order history",
    page: (readModels, query) => readModels.orderHistory(query),
  },
  deals: {
    columns: DEAL_COLUMNS,
    row: "deal",
    name: "deal history",
    page: (readModels, query) => readModels.dealHistory(query),
  },
  positions: {
    columns: POSITION_COLUMNS,
    row: "position",
    name: "position history",
    page: (readModels, query) => readModels.positionHistory(query),
  },
  ledger: {
    columns: LEDGER_COLUMNS,
    row: "ledger row",
    name: "ledger",
    page: (readModels, query) => readModels.ledger(query),
  },
};

const HISTORY_NAMES = Object.keys(HISTORIES) as HistoryName[];

/** A row as its history must hold it: its columns' values in order. */
function rowText(history: History, row: HistoryRow): string {
  const values = row as unknown as Readonly<Record<string, unknown>>;
  return JSON.stringify(history.columns.map((column) => values[column]));
}

/**
 * A fingerprint of a set of rows whatever their order: their count and the sum of their hashes. The events finish rows
 * (an order filled, a position closed) in another order than a history lists them (by id); a sum takes each row as it
 * finishes, so verify holds no finished row.
 */
class RowSetHash {
  rows = 0;
  private first = 0;
  private second = 0;

  add(text: string): void {
    const digest = hashText(text);
    this.rows += 1;
    this.first = (this.first + Number.parseInt(digest.slice(0, 8), 16)) | 0;
    this.second = (this.second + Number.parseInt(digest.slice(8), 16)) | 0;
  }

  equals(other: RowSetHash): boolean {
    return this.rows === other.rows && this.first === other.first && this.second === other.second;
  }
}

type HistoryFingerprints = Record<HistoryName, RowSetHash>;

function emptyFingerprints(): HistoryFingerprints {
  return { orders: new RowSetHash(), deals: new RowSetHash(), positions: new RowSetHash(), ledger: new RowSetHash() };
}

/** The rows of `ids` that `rows` holds. */
function present<Row>(ids: readonly number[], rows: ReadonlyMap<number, Row>): Row[] {
  const found: Row[] = [];
  for (const id of ids) {
    const row = rows.get(id);
    if (row !== undefined) found.push(row);
  }
  return found;
}

/**
 * The histories as the events make them, by the projection the drivers write them with (read-models.ts
 * `projectBatch`): the rows are compared with what was written, not with a second account of it. Holds only the rows
 * that can still change (working orders, open positions, balances: no more than the engine's state); a row that can
 * change no more goes to `finished` at once, the others at `finish`.
 */
class EventProjection {
  readonly orders = new Map<number, OrderHistoryRow>();
  readonly positions = new Map<number, PositionHistoryRow>();
  private readonly balances = new Map<number, LedgerBalanceRow>();
  /** The highest id the events gave in each history: ids are handed out in order, so a higher one is a later event's. */
  readonly lastIds: Record<HistoryName, number> = { orders: 0, deals: 0, positions: 0, ledger: 0 };

  constructor(private readonly finished: (history: HistoryName, row: HistoryRow) => void) {}

  apply(records: readonly JournalRecord[]): void {
    const keys = projectionKeys(records);
    const output = projectBatch(records, {
      orders: present(keys.orderIds, this.orders),
      positions: present(keys.positionIds, this.positions),
      balances: present(keys.accountIds, this.balances),
    });
    for (const row of output.orders) this.settle("orders", row, this.orders, isWorkingStatus(row.status));
    for (const row of output.positions) this.settle("positions", row, this.positions, row.closeTime === null);
    for (const row of output.balances) this.balances.set(row.accountId, row);
    for (const row of output.deals) this.settle("deals", row, null, false);
    for (const row of output.ledger) this.settle("ledger", row, null, false);
  }

  /** Keeps a row that may still change, or hands it over. */
  private settle<Row extends HistoryRow>(
    history: HistoryName,
    row: Row,
    changing: Map<number, Row> | null,
    mayChange: boolean,
  ): void {
    if (row.id > this.lastIds[history]) this.lastIds[history] = row.id;
    if (mayChange && changing) changing.set(row.id, row);
    else {
      changing?.delete(row.id);
      this.finished(history, row);
    }
  }

  /** Hands over the rows that may still change, as they are now. */
  finish(): void {
    for (const row of this.orders.values()) this.finished("orders", row);
    for (const row of this.positions.values()) this.finished("positions", row);
  }
}

/** Accounts per history whose differences a second pass over the journal pins to the first differing row. */
const MAX_ACCOUNTS_LOCATED = 10;

/** The fields of an open position its history row must show as they are. */
const OPEN_POSITION_FIELDS = [
  "symbol",
  "side",
  "volume",
  "openCost",
  "margin",
  "swap",
  "commission",
  "sl",
  "tp",
  "comment",
  "magic",
  "openOrderId",
  "openTime",
] as const satisfies readonly (keyof Position & keyof PositionHistoryRow)[];

/** The ledger invariant's balance: the core's one definition, re-exported for the store's callers. */
export { ledgerBalance };

/** Verifies an open journal (it is only read). */
export async function verify(
  journal: EventJournal,
  config: EngineConfig,
  /**
   * `through`: the last sequence to read (a torn tail the caller found and kept stays unread). `readModels`: the
   * history the API serves, checked against the events too (each account's ledger rows sum to its balance and
   * credit and end at them; every row of every history is the row the events make): verify checked the journal
   * alone, and a damaged ledger row or a lost deal served to clients passed. Rows of events after `through` are
   * left out, so verify beside a running server does not take the rows it writes meanwhile for differences.
   */
  options: { batchSize?: number; through?: number; readModels?: ReadModels } = {},
): Promise<VerifyReport> {
  const batchSize = options.batchSize ?? DEFAULT_RECOVERY_BATCH_SIZE;
  const through = options.through ?? Number.MAX_SAFE_INTEGER;
  const differences: VerifyDifference[] = [];
  const ledgers = new Map<number, EventLedger>();
  const ledgerOf = (accountId: number, sequence: number): EventLedger => {
    let ledger = ledgers.get(accountId);
    if (!ledger) {
      differences.push({ subject: `account ${accountId}`, detail: `event ${sequence} names an account never opened` });
      ledger = emptyLedger();
      ledgers.set(accountId, ledger);
    }
    return ledger;
  };
  const fingerprints = new Map<number, HistoryFingerprints>();
  const fingerprintsOf = (accountId: number): HistoryFingerprints => {
    let found = fingerprints.get(accountId);
    if (!found) fingerprints.set(accountId, (found = emptyFingerprints()));
    return found;
  };
  const projection = options.readModels
    ? new EventProjection((name, row) => fingerprintsOf(row.accountId)[name].add(rowText(HISTORIES[name], row)))
    : null;
  const snapshot = await journal.latestSnapshot(options.through);
  // The snapshot's state as a recovery under this configuration takes it (`boundMemories`): one taken under a larger
  // bound holds memories a replay under this one forgets. Whether it restores to its stored hash is recovery's check,
  // below.
  const snapshotHash = snapshot ? boundedSnapshotHash(config, snapshot) : null;
  const engine = new TradingEngine(config);
  let lastSequence = 0;
  const checkSnapshot = (): void => {
    if (snapshot && snapshot.sequence === lastSequence && engine.stateHash() !== snapshotHash)
      differences.push({
        subject: `snapshot ${snapshot.sequence}`,
        detail: `its state hash is ${snapshotHash}, a replay to its sequence gives ${engine.stateHash()}`,
      });
  };
  checkSnapshot();
  try {
    for await (const records of journalBatches(journal, 0, through, batchSize)) {
      for (const { sequence, event } of records) {
        engine.applyRecovered(event);
        lastSequence = sequence;
        if (event.type === "AccountOpened") {
          if (ledgers.has(event.accountId))
            differences.push({ subject: `account ${event.accountId}`, detail: `opened again at sequence ${sequence}` });
          ledgers.set(event.accountId, emptyLedger());
        } else if (event.type === "BalanceOperation") {
          const ledger = ledgerOf(event.accountId, sequence);
          if (event.kind === "DEPOSIT") ledger.deposits += event.amount;
          // The event carries the signed change: a withdrawal's amount is negative.
          else if (event.kind === "WITHDRAWAL") ledger.withdrawals -= event.amount;
          else if (event.kind === "CORRECTION") ledger.corrections += event.amount;
          if (event.kind === "CREDIT") ledger.credit += event.amount;
          else ledger.balance += event.amount;
        } else if (event.type === "DealExecuted") {
          const { deal } = event;
          const ledger = ledgerOf(deal.accountId, sequence);
          ledger.realisedProfit += deal.profit;
          ledger.commissions += deal.commission;
          ledger.swaps += deal.swap;
          ledger.balance += deal.profit - deal.commission + deal.swap;
        }
        checkSnapshot();
      }
      projection?.apply(records);
    }
  } catch (error) {
    differences.push({
      subject: "journal",
      detail: `reading after sequence ${lastSequence} failed: ${error instanceof Error ? error.message : String(error)}`,
    });
  }
  if (snapshot && snapshot.sequence > lastSequence)
    differences.push({
      subject: `snapshot ${snapshot.sequence}`,
      detail: `it is past the journal's last sequence ${lastSequence}`,
    });

  for (const [accountId, ledger] of ledgers) {
    const subject = `account ${accountId}`;
    if (ledger.balance !== ledgerBalance(ledger))
      differences.push({
        subject,
        detail: `ledger invariant broken in the events: balance ${ledger.balance} but the ledger sums to ${ledgerBalance(ledger)}`,
      });
    const account = engine.state.accounts.get(accountId);
    if (!account) {
      differences.push({ subject, detail: "the replayed engine has no such account" });
      continue;
    }
    if (account.balance !== ledger.balance)
      differences.push({
        subject,
        detail: `balance ${account.balance} in the engine, ${ledger.balance} from the events`,
      });
    if (account.credit !== ledger.credit)
      differences.push({ subject, detail: `credit ${account.credit} in the engine, ${ledger.credit} from the events` });
    for (const field of LEDGER_FIELDS)
      if (account.ledger[field] !== ledger[field])
        differences.push({
          subject,
          detail: `${field} ${account.ledger[field]} in the engine, ${ledger[field]} from the events`,
        });
    if (account.balance !== ledgerBalance(account.ledger))
      differences.push({
        subject,
        detail: `ledger invariant broken in the engine: balance ${account.balance} but the ledger sums to ${ledgerBalance(account.ledger)}`,
      });
  }
  if (options.readModels && projection) {
    compareWithEngine(projection, engine, differences);
    projection.finish();
    const differing: Record<HistoryName, number[]> = { orders: [], deals: [], positions: [], ledger: [] };
    const later = { rows: 0 };
    for (const accountId of ledgers.keys()) {
      const account = engine.state.accounts.get(accountId);
      if (!account) continue;
      const expected = fingerprintsOf(accountId);
      for (const name of await verifyReadModels(
        options.readModels,
        account,
        expected,
        projection.lastIds,
        later,
        differences,
      ))
        differing[name].push(accountId);
    }
    // Rows past the events' last ids are a running server's, unless the journal has no later event to explain them.
    if (later.rows > 0 && (await journal.lastSequence()) <= lastSequence)
      differences.push({
        subject: "read models",
        detail: `${later.rows} rows of the histories have ids past the last the events gave, and the journal has no later event`,
      });
    await locateHistoryDifferences(journal, options.readModels, differing, lastSequence, batchSize, differences);
  }
  for (const accountId of engine.state.accounts.keys())
    if (!ledgers.has(accountId))
      differences.push({
        subject: `account ${accountId}`,
        detail: "in the replayed engine but never opened by an event",
      });

  // Recovery as a server does it (snapshot plus the events after it) must land on the same state.
  if (differences.length === 0 && snapshot) {
    try {
      const recovered = await recoverEngine(journal, config, { batchSize, through: lastSequence });
      if (recovered.engine.stateHash() !== engine.stateHash())
        differences.push({
          subject: `snapshot ${snapshot.sequence}`,
          detail: `recovery from it gives state hash ${recovered.engine.stateHash()}, a full replay ${engine.stateHash()}`,
        });
    } catch (error) {
      differences.push({
        subject: `snapshot ${snapshot.sequence}`,
        detail: `recovery from it failed: ${error instanceof Error ? error.message : String(error)}`,
      });
    }
  }
  return {
    lastSequence,
    accounts: ledgers.size,
    snapshotSequence: snapshot ? snapshot.sequence : null,
    stateHash: engine.stateHash(),
    differences,
  };
}

/** The state hash of `snapshot` restored under `config` and cut to its bounds; its stored hash when it cannot restore. */
function boundedSnapshotHash(config: EngineConfig, snapshot: SnapshotRecord): string {
  try {
    const restored = TradingEngine.fromSnapshot(config, snapshot.state);
    restored.boundMemories();
    return restored.stateHash();
  } catch {
    return snapshot.stateHash;
  }
}

/**
 * One account's rows of a history, page after page, up to the last id the events gave (`lastId`): a later row, of an
 * event after the replay's last one, is counted in `later` and left out.
 */
async function* rowsThrough(
  readModels: ReadModels,
  history: History,
  accountId: number,
  lastId: number,
  later: { rows: number },
): AsyncGenerator<HistoryRow> {
  let cursor: string | null = null;
  do {
    const answer: HistoryPage<HistoryRow> = await history.page(readModels, {
      accountId,
      limit: MAX_HISTORY_LIMIT,
      cursor,
    });
    for (const row of answer.rows)
      if (row.id > lastId) later.rows += 1;
      else yield row;
    cursor = answer.nextCursor;
  } while (cursor !== null);
}

/**
 * Checks one account's ledger rows against its balance and credit in the engine, and fingerprints its rows of every
 * history. Answers the histories whose rows differ from `expected`, the fingerprints of the rows the events make.
 */
async function verifyReadModels(
  readModels: ReadModels,
  account: { readonly id: number; readonly balance: number; readonly credit: number },
  expected: HistoryFingerprints,
  lastIds: Readonly<Record<HistoryName, number>>,
  later: { rows: number },
  differences: VerifyDifference[],
): Promise<HistoryName[]> {
  const subject = `account ${account.id} read models`;
  const differing: HistoryName[] = [];
  let balance = 0;
  let credit = 0;
  let last: LedgerRow | null = null;
  for (const name of HISTORY_NAMES) {
    const history = HISTORIES[name];
    const found = new RowSetHash();
    for await (const row of rowsThrough(readModels, history, account.id, lastIds[name], later)) {
      found.add(rowText(history, row));
      if (name !== "ledger") continue;
      last = row as LedgerRow;
      if (last.kind === "CREDIT") credit += last.amount;
      else balance += last.amount;
    }
    if (!found.equals(expected[name])) differing.push(name);
  }
  if (balance !== account.balance || credit !== account.credit)
    differences.push({
      subject,
      detail: `the ledger's rows sum to balance ${balance} and credit ${credit}; the events give ${account.balance} and ${account.credit}`,
    });
  if (last && (last.balanceAfter !== account.balance || last.creditAfter !== account.credit))
    differences.push({
      subject,
      detail: `the ledger's last row ends at balance ${last.balanceAfter} and credit ${last.creditAfter}; the events give ${account.balance} and ${account.credit}`,
    });
  return differing;
}

/**
 * The projection's working orders and open positions against the engine's: the read models are compared with the
 * projection, and this ties the projection to the engine's own fold of the events.
 */
function compareWithEngine(projection: EventProjection, engine: TradingEngine, differences: VerifyDifference[]): void {
  for (const order of engine.state.orders.values()) {
    const row = projection.orders.get(order.id);
    const field = row ? firstDifferentField(order, row, ORDER_COLUMNS) : "status";
    if (field !== null)
      differences.push({
        subject: `account ${order.accountId} read models`,
        detail: `working order ${order.id}: ${field} ${row ? JSON.stringify(row[field]) : "finished"} in the projection of the events, ${JSON.stringify(order[field])} in the engine`,
      });
  }
  for (const position of engine.state.positions.values()) {
    const row = projection.positions.get(position.id);
    const field = row ? firstDifferentField(position, row, OPEN_POSITION_FIELDS) : "volume";
    if (field !== null)
      differences.push({
        subject: `account ${position.accountId} read models`,
        detail: `open position ${position.id}: ${field} ${row ? JSON.stringify(row[field]) : "closed"} in the projection of the events, ${JSON.stringify(position[field])} in the engine`,
      });
  }
  for (const [rows, working, row] of [
    [projection.orders, engine.state.orders, "order"],
    [projection.positions, engine.state.positions, "position"],
  ] as const)
    for (const id of rows.keys())
      if (!working.has(id))
        differences.push({
          subject: `account ${rows.get(id)!.accountId} read models`,
          detail: `${row} ${id} is open in the projection of the events, not in the engine`,
        });
}

function firstDifferentField<Field extends string>(
  expected: { readonly [key in Field]?: unknown },
  actual: { readonly [key in Field]?: unknown },
  fields: readonly Field[],
): Field | null {
  for (const field of fields) if (expected[field] !== actual[field]) return field;
  return null;
}

/**
 * Names the first differing row (by id: a row changed, missing or extra) of each account whose history differs from
 * the events (the first `MAX_ACCOUNTS_LOCATED` per history), from a second pass over the journal that keeps those
 * accounts' rows.
 */
async function locateHistoryDifferences(
  journal: EventJournal,
  readModels: ReadModels,
  differing: Readonly<Record<HistoryName, readonly number[]>>,
  through: number,
  batchSize: number,
  differences: VerifyDifference[],
): Promise<void> {
  // History, account, row id: the row's text as the events make it.
  const expected = new Map<HistoryName, Map<number, Map<number, string>>>();
  for (const name of HISTORY_NAMES) {
    const located = differing[name].slice(0, MAX_ACCOUNTS_LOCATED);
    if (located.length > 0) expected.set(name, new Map(located.map((accountId) => [accountId, new Map()])));
  }
  if (expected.size === 0) return;
  const projection = new EventProjection((name, row) =>
    expected.get(name)?.get(row.accountId)?.set(row.id, rowText(HISTORIES[name], row)),
  );
  for await (const records of journalBatches(journal, 0, through, batchSize)) projection.apply(records);
  projection.finish();
  for (const [name, accounts] of expected) {
    const history = HISTORIES[name];
    for (const [accountId, rowsOfEvents] of accounts) {
      const eventRows = rowsOfEvents.size;
      let first: { id: number; detail: string } | null = null;
      let rows = 0;
      const later = { rows: 0 };
      for await (const row of rowsThrough(readModels, history, accountId, projection.lastIds[name], later)) {
        rows += 1;
        const text = rowsOfEvents.get(row.id);
        rowsOfEvents.delete(row.id);
        if (first !== null) continue;
        const detail =
          text === undefined
            ? `${history.row} ${row.id} is in the ${history.name} but not in the events`
            : rowDifference(history, row, text);
        if (detail !== null) first = { id: row.id, detail };
      }
      // Rows are read in id order: a missing row comes first if its id is lower than the first one that differs.
      for (const id of rowsOfEvents.keys())
        if (first === null || id < first.id)
          first = { id, detail: `${history.row} ${id} of the events is missing from the ${history.name}` };
      differences.push({
        subject: `account ${accountId} read models`,
        detail: `${first?.detail ?? `the ${history.name} differs from the events`} (${rows} ${history.row}s in the ${history.name}, ${eventRows} in the events)`,
      });
    }
    if (differing[name].length > accounts.size)
      differences.push({
        subject: "read models",
        detail: `the ${history.name} of ${differing[name].length - accounts.size} more accounts differs from the events`,
      });
  }
}

/** The first column in which a row differs from its text as the events make it; null if it does not. */
function rowDifference(history: History, row: HistoryRow, expectedText: string): string | null {
  if (rowText(history, row) === expectedText) return null;
  const values = row as unknown as Readonly<Record<string, unknown>>;
  const expected = JSON.parse(expectedText) as unknown[];
  // Compared as JSON, as the texts are: two texts that differ differ in one column's JSON at least.
  const index = history.columns.findIndex(
    (column, index) => JSON.stringify(values[column]) !== JSON.stringify(expected[index]),
  );
  const column = history.columns[index]!;
  return `${history.row} ${row.id}: ${column} ${JSON.stringify(values[column])} in the ${history.name}, ${JSON.stringify(expected[index])} in the events`;
}
