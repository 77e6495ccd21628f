/**
 * Read models: order, deal and position history and the balance ledger, written from the journal's
 * events in the same transaction as their append (DESIGN.md section 2), so a history never shows a
 * fact the journal lacks, nor lacks one it holds.
 *
 * The projection is pure and shared by every driver: a driver loads the rows a batch touches, hands
 * them to `projectBatch` with the batch, and writes the rows it returns. Every number is an integer:
 * prices in points, volumes in volume units, money in account minor units, times in ms since the epoch.
 */
import type { BalanceOperationKind, Deal, OrderReason, OrderStatus, OrderType, Side, TimeInForce } from "@bourse/core";
import type { JournalRecord } from "./journal.ts";

export interface OrderHistoryRow {
  readonly id: number;
  readonly accountId: number;
  readonly symbol: string;
  readonly side: Side;
  readonly type: OrderType;
  readonly volume: number;
  readonly filledVolume: number;
  readonly price: number | null;
  readonly stopLimitPrice: number | null;
  readonly sl: number | null;
  readonly tp: number | null;
  readonly timeInForce: TimeInForce;
  readonly expiration: number | null;
  readonly status: OrderStatus;
  readonly statusReason: string | null;
  readonly reason: OrderReason;
  readonly clientOrderId: string | null;
  readonly comment: string;
  readonly magic: number;
  /** Closing orders: the position they close. */
  readonly closePositionId: number | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** A deal row is the engine's deal record as `DealExecuted` carries it. */
export type DealHistoryRow = Deal;

export interface PositionHistoryRow {
  readonly id: number;
  readonly accountId: number;
  readonly symbol: string;
  readonly side: Side;
  /** Volume still open; 0 once closed. */
  readonly volume: number;
  /** Σ price × volume of the volume still open (points × volume units), as the engine keeps it. */
  readonly openCost: number;
  readonly margin: number;
  /** Swap accrued by rollovers and not yet realised. */
  readonly swap: number;
  /** Commission charged on every deal of the position. */
  readonly commission: number;
  /** Σ volume of the IN deals: with `openedCost`, the average open price survives the close. */
  readonly openedVolume: number;
  /** Σ price × volume of the IN deals. */
  readonly openedCost: number;
  /** Σ volume of the OUT deals. */
  readonly closedVolume: number;
  /** Σ price × volume of the OUT deals: the average close price is closedCost / closedVolume. */
  readonly closedCost: number;
  /** Σ profit of the OUT deals. */
  readonly realisedProfit: number;
  /** Σ swap of the OUT deals. */
  readonly realisedSwap: number;
  readonly sl: number | null;
  readonly tp: number | null;
  readonly comment: string;
  readonly magic: number;
  readonly openOrderId: number;
  readonly openTime: number;
  /** When the volume reached zero; null while open. */
  readonly closeTime: number | null;
  readonly updatedAt: number;
}

/** What a ledger row records: a balance operation, or one part of a deal's effect on the balance. */
export type LedgerEntryKind = BalanceOperationKind | "PROFIT" | "COMMISSION" | "SWAP";

export interface LedgerRow {
  /** `sequence × 4 + part`: unique, and ordered as the facts happened. */
  readonly id: number;
  /** The journal sequence of the event this row comes from. */
  readonly sequence: number;
  readonly accountId: number;
  readonly kind: LedgerEntryKind;
  /** Signed change of the balance; of the credit for CREDIT. */
  readonly amount: number;
  readonly balanceAfter: number;
  readonly creditAfter: number;
  readonly dealId: number | null;
  readonly operationId: number | null;
  readonly comment: string;
  readonly time: number;
}

/** An account's balance and credit as the ledger has them so far: where the next row's `balanceAfter` starts. */
export interface LedgerBalanceRow {
  readonly accountId: number;
  readonly balance: number;
  readonly credit: number;
}

/** Ledger ids leave room for this many rows per event: a balance operation, or a deal's profit, commission, swap. */
const LEDGER_PARTS_PER_EVENT = 4;
const LEDGER_PART = { OPERATION: 0, PROFIT: 1, COMMISSION: 2, SWAP: 3 } as const;

// ---------------------------------------------------------------------------------------------
// Queries

export const DEFAULT_HISTORY_LIMIT = 100;
/** Bounds one page: a client cannot make the server read a whole history at once. */
export const MAX_HISTORY_LIMIT = 1000;

/**
 * The order a history is paged in: "asc" oldest first (the default), "desc" newest first, so a terminal reads an
 * account's latest rows without paging through all the others. Rows are ordered by id: ids are handed out in order
 * and engine time never goes backwards, so id order is time order with ties on time broken by id.
 */
export const HISTORY_DIRECTIONS = ["asc", "desc"] as const;
export type HistoryDirection = (typeof HISTORY_DIRECTIONS)[number];

/** The ORDER BY word of each direction, for both drivers' statements. */
export const SQL_SORT_ORDER = { asc: "ASC", desc: "DESC" } as const satisfies Record<HistoryDirection, string>;

export interface HistoryQuery {
  readonly accountId: number;
  /** Inclusive lower bound on the row's time (orders: created, positions: opened), ms. */
  readonly from?: number;
  /** Exclusive upper bound on the row's time, ms. */
  readonly to?: number;
  /** Ignored by `ledger`. */
  readonly symbol?: string;
  /** Rows per page, 1 to MAX_HISTORY_LIMIT; default DEFAULT_HISTORY_LIMIT. */
  readonly limit?: number;
  /** `nextCursor` of the previous page, read in the same direction; absent for the first. */
  readonly cursor?: string | null;
  /** Default "asc". */
  readonly direction?: HistoryDirection;
}

export interface HistoryPage<Row> {
  /** In the query's direction: ascending id order, or descending. */
  readonly rows: Row[];
  /** Null on the last page. */
  readonly nextCursor: string | null;
}

export interface ReadModels {
  orderHistory(query: HistoryQuery): Promise<HistoryPage<OrderHistoryRow>>;
  dealHistory(query: HistoryQuery): Promise<HistoryPage<DealHistoryRow>>;
  positionHistory(query: HistoryQuery): Promise<HistoryPage<PositionHistoryRow>>;
  ledger(query: HistoryQuery): Promise<HistoryPage<LedgerRow>>;
}

/** A history query with its defaults filled in and every bound checked. */
export interface ResolvedHistoryQuery {
  readonly accountId: number;
  readonly from: number;
  readonly to: number;
  readonly symbol: string | null;
  readonly limit: number;
  readonly direction: HistoryDirection;
  /** Rows with an id above this one (an ascending read's cursor; else 0). */
  readonly afterId: number;
  /** Rows with an id below this one (a descending read's cursor; else NO_ID_ABOVE). */
  readonly beforeId: number;
}

/** The `beforeId` of a read that no cursor bounds from above: above every id. */
export const NO_ID_ABOVE = Number.MAX_SAFE_INTEGER;

/**
 * A cursor says which direction it pages in, so one from a descending page is refused by an ascending read (it would
 * skip every row before it) rather than misread. An ascending cursor keeps the words of the cursors issued before
 * descending reads existed, so those stay valid.
 */
const CURSOR_PREFIXES = { asc: "id:", desc: "before-id:" } as const satisfies Record<HistoryDirection, string>;

export interface HistoryCursor {
  readonly direction: HistoryDirection;
  /** The last id of the page that issued it: the next page holds the rows past it in `direction`. */
  readonly id: number;
}

/** Opaque to clients; base64url so it travels in a query string untouched. */
export function encodeCursor(lastId: number, direction: HistoryDirection): string {
  return Buffer.from(`${CURSOR_PREFIXES[direction]}${lastId}`, "utf8").toString("base64url");
}

export function decodeCursor(cursor: string): HistoryCursor {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const direction = HISTORY_DIRECTIONS.find((candidate) => text.startsWith(CURSOR_PREFIXES[candidate]));
  const digits = direction === undefined ? "" : text.slice(CURSOR_PREFIXES[direction].length);
  const id = /^(0|[1-9][0-9]{0,15})$/.test(digits) ? Number(digits) : NaN;
  if (direction === undefined || !Number.isSafeInteger(id))
    throw new RangeError("cursor is not one this server issued");
  return { direction, id };
}

/** Why a cursor cannot go with a read in `direction`, or null when it can: every face says it in these words. */
export function cursorMismatch(cursor: HistoryCursor, direction: HistoryDirection): string | null {
  return cursor.direction === direction
    ? null
    : `cursor is from a page read with direction=${cursor.direction}: send direction=${cursor.direction} with it`;
}

function assertSafeInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value)) throw new RangeError(`${name} must be an integer, got ${value}`);
}

export function resolveHistoryQuery(query: HistoryQuery): ResolvedHistoryQuery {
  assertSafeInteger("accountId", query.accountId);
  const from = query.from ?? 0;
  const to = query.to ?? Number.MAX_SAFE_INTEGER;
  assertSafeInteger("from", from);
  assertSafeInteger("to", to);
  const limit = query.limit ?? DEFAULT_HISTORY_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_HISTORY_LIMIT)
    throw new RangeError(`limit must be an integer from 1 to ${MAX_HISTORY_LIMIT}, got ${limit}`);
  if (query.symbol !== undefined && (query.symbol.length === 0 || query.symbol.length > 64))
    throw new RangeError("symbol must be 1 to 64 characters");
  const direction = query.direction ?? "asc";
  if (!HISTORY_DIRECTIONS.includes(direction)) throw new RangeError(`direction must be asc or desc, got ${direction}`);
  const cursor = query.cursor ? decodeCursor(query.cursor) : null;
  const mismatch = cursor && cursorMismatch(cursor, direction);
  if (mismatch) throw new RangeError(mismatch);
  return {
    accountId: query.accountId,
    from,
    to,
    symbol: query.symbol ?? null,
    limit,
    direction,
    afterId: cursor && direction === "asc" ? cursor.id : 0,
    beforeId: cursor && direction === "desc" ? cursor.id : NO_ID_ABOVE,
  };
}

/** Drivers fetch `limit + 1` rows: the extra one only tells whether another page exists. */
export function toPage<Row extends { readonly id: number }>(
  rows: Row[],
  limit: number,
  direction: HistoryDirection,
): HistoryPage<Row> {
  if (rows.length <= limit) return { rows, nextCursor: null };
  const page = rows.slice(0, limit);
  return { rows: page, nextCursor: encodeCursor(page[page.length - 1]!.id, direction) };
}

// ---------------------------------------------------------------------------------------------
// Tables: column names (camelCase in TS, snake_case in SQL) in one place, for both drivers.

export type ReadModelTable = "order_history" | "deal_history" | "position_history" | "balance_ledger";

export interface TableSpec {
  readonly name: ReadModelTable;
  /** The column `from`/`to` bound. */
  readonly timeColumn: string;
  readonly hasSymbol: boolean;
  readonly columns: readonly string[];
}

export const ORDER_COLUMNS = [
  "id",
  "accountId",
  "symbol",
  "side",
  "type",
  "volume",
  "filledVolume",
  "price",
  "stopLimitPrice",
  "sl",
  "tp",
  "timeInForce",
  "expiration",
  "status",
  "statusReason",
  "reason",
  "clientOrderId",
  "comment",
  "magic",
  "closePositionId",
  "createdAt",
  "updatedAt",
] as const satisfies readonly (keyof OrderHistoryRow)[];

export const DEAL_COLUMNS = [
  "id",
  "orderId",
  "positionId",
  "accountId",
  "symbol",
  "side",
  "entry",
  "volume",
  "price",
  "profit",
  "commission",
  "swap",
  "reason",
  "time",
] as const satisfies readonly (keyof DealHistoryRow)[];

export const POSITION_COLUMNS = [
  "id",
  "accountId",
  "symbol",
  "side",
  "volume",
  "openCost",
  "margin",
  "swap",
  "commission",
  "openedVolume",
  "openedCost",
  "closedVolume",
  "closedCost",
  "realisedProfit",
  "realisedSwap",
  "sl",
  "tp",
  "comment",
  "magic",
  "openOrderId",
  "openTime",
  "closeTime",
  "updatedAt",
] as const satisfies readonly (keyof PositionHistoryRow)[];

export const LEDGER_COLUMNS = [
  "id",
  "sequence",
  "accountId",
  "kind",
  "amount",
  "balanceAfter",
  "creditAfter",
  "dealId",
  "operationId",
  "comment",
  "time",
] as const satisfies readonly (keyof LedgerRow)[];

export const BALANCE_COLUMNS = [
  "accountId",
  "balance",
  "credit",
] as const satisfies readonly (keyof LedgerBalanceRow)[];

/**
 * The columns the projection may change in an order, position or balance row that already exists: an upsert
 * updates only these. SQLite rewrites an index entry whenever its column is in the SET list, even to the same
 * value, and every account's entries sit on a page of their own, so setting the unchanging columns (account,
 * creation time) cost two scattered index pages per updated row for nothing. read-models.test.ts checks the
 * projection changes nothing else.
 */
export const ORDER_CHANGING_COLUMNS = [
  "filledVolume",
  "price",
  "stopLimitPrice",
  "sl",
  "tp",
  "expiration",
  "status",
  "statusReason",
  "updatedAt",
] as const satisfies readonly (keyof OrderHistoryRow)[];

export const POSITION_CHANGING_COLUMNS = [
  "volume",
  "openCost",
  "margin",
  "swap",
  "commission",
  "openedVolume",
  "openedCost",
  "closedVolume",
  "closedCost",
  "realisedProfit",
  "realisedSwap",
  "sl",
  "tp",
  "closeTime",
  "updatedAt",
] as const satisfies readonly (keyof PositionHistoryRow)[];

export const BALANCE_CHANGING_COLUMNS = ["balance", "credit"] as const satisfies readonly (keyof LedgerBalanceRow)[];

export const TABLES = {
  orders: { name: "order_history", timeColumn: "created_at", hasSymbol: true, columns: ORDER_COLUMNS },
  deals: { name: "deal_history", timeColumn: "time", hasSymbol: true, columns: DEAL_COLUMNS },
  positions: { name: "position_history", timeColumn: "open_time", hasSymbol: true, columns: POSITION_COLUMNS },
  ledger: { name: "balance_ledger", timeColumn: "time", hasSymbol: false, columns: LEDGER_COLUMNS },
} as const satisfies Record<string, TableSpec>;

/** The largest bigint: the bound a history query uses when no row is that late. */
const NO_ID_BOUND = "9223372036854775807";

/**
 * The WHERE condition of a history page in PostgreSQL (SQLite reads its pages through one index of every account's
 * rows since its migration 5: sqlite-read-models.ts), given the table's qualified name and the parameters'
 * placeholders. The tables have no (account, time) index: every account's entries of such an index sit
 * on a page of their own, so each batch rewrote one page per account it touched (four tables: about half the
 * write cost of the read models). They have an (account, id) index and a (time, id) one, which grows at its end
 * only. Time never goes backwards inside the engine (a command older than its clock runs at the clock's time)
 * and every table's ids are handed out in order, so a row's time never decreases with its id: the rows from
 * `from` to `to` are the rows between the first id at or after `from` and the first id at or after `to`, which the
 * (time, id) index finds in one step each. The time condition is kept too, so no row outside the range is ever
 * returned whatever the ids say. The same condition serves both directions: the cursor bounds ids from below
 * (`afterId`) or from above (`beforeId`), and only the ORDER BY differs, which the indexes serve read backwards.
 */
export function historyCondition(
  table: TableSpec,
  qualifiedName: string,
  placeholders: {
    readonly accountId: string;
    readonly afterId: string;
    readonly beforeId: string;
    readonly from: string;
    readonly to: string;
  },
): string {
  const time = table.timeColumn;
  const firstIdAt = (bound: string) =>
    `coalesce((SELECT id FROM ${qualifiedName} WHERE ${time} >= ${bound} ORDER BY ${time}, id LIMIT 1), ${NO_ID_BOUND})`;
  return `account_id = ${placeholders.accountId} AND id > ${placeholders.afterId} AND id < ${placeholders.beforeId}
    AND id >= ${firstIdAt(placeholders.from)} AND id < ${firstIdAt(placeholders.to)}
    AND ${time} >= ${placeholders.from} AND ${time} < ${placeholders.to}`;
}

export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/** The snake_case names of a column list, computed once per list: rows are converted by the thousand per batch. */
const sqlNamesOfColumns = new WeakMap<readonly string[], readonly string[]>();

function sqlNames(columns: readonly string[]): readonly string[] {
  let names = sqlNamesOfColumns.get(columns);
  if (!names) {
    names = columns.map(snakeCase);
    sqlNamesOfColumns.set(columns, names);
  }
  return names;
}

/**
 * A row as SQL returned it (snake_case keys) to the TS shape. Both drivers hand integers over as numbers:
 * SQLite does, and the PostgreSQL queries return their rows through json_agg, whose numbers JSON.parse keeps.
 */
export function fromSqlRow<Row>(columns: readonly string[], row: Record<string, unknown>): Row {
  const names = sqlNames(columns);
  const result: Record<string, unknown> = {};
  for (let index = 0; index < columns.length; index++) result[columns[index]!] = row[names[index]!];
  return result as Row;
}

/** A TS row to snake_case keys, for PostgreSQL's json_to_recordset. */
export function toSqlRow(columns: readonly string[], row: object): Record<string, unknown> {
  const names = sqlNames(columns);
  const source = row as Record<string, unknown>;
  const result: Record<string, unknown> = {};
  for (let index = 0; index < columns.length; index++) result[names[index]!] = source[columns[index]!];
  return result;
}

// ---------------------------------------------------------------------------------------------
// Projection

/**
 * The existing rows a batch's events refer to: a driver loads these before projecting. A row the batch itself
 * creates before referring to it (an order accepted, a position opened, an account opened earlier in the same
 * batch) is not among them: it cannot exist yet, and the projection builds it from its creating event.
 */
export interface ProjectionKeys {
  readonly orderIds: number[];
  readonly positionIds: number[];
  readonly accountIds: number[];
}

export function projectionKeys(records: readonly JournalRecord[]): ProjectionKeys {
  const orderIds = new Set<number>();
  const positionIds = new Set<number>();
  const accountIds = new Set<number>();
  const createdOrders = new Set<number>();
  const createdPositions = new Set<number>();
  const openedAccounts = new Set<number>();
  for (const { event } of records) {
    switch (event.type) {
      case "AccountOpened":
        openedAccounts.add(event.accountId);
        break;
      case "OrderAccepted":
        createdOrders.add(event.order.id);
        break;
      case "OrderChanged":
      case "OrderStatusChanged":
        addUnlessCreated(orderIds, createdOrders, event.orderId);
        break;
      case "DealExecuted":
        if (event.effect.kind === "OPEN") createdPositions.add(event.deal.positionId);
        else addUnlessCreated(positionIds, createdPositions, event.deal.positionId);
        addUnlessCreated(accountIds, openedAccounts, event.deal.accountId);
        break;
      case "PositionChanged":
      case "PositionMarginChanged":
        addUnlessCreated(positionIds, createdPositions, event.positionId);
        break;
      case "Rollover":
      case "DeferredSwapsCharged":
        for (const charge of event.charges) addUnlessCreated(positionIds, createdPositions, charge.positionId);
        break;
      case "BalanceOperation":
        addUnlessCreated(accountIds, openedAccounts, event.accountId);
        break;
      default:
        break;
    }
  }
  return { orderIds: [...orderIds], positionIds: [...positionIds], accountIds: [...accountIds] };
}

/**
 * An id to load, unless the batch itself created it. This and the other helpers of the projection are functions,
 * not closures made per batch: the sources run through tsx, whose esbuild keepNames names every named closure as it
 * is created (an Object.defineProperty each time, about half a microsecond).
 */
function addUnlessCreated(ids: Set<number>, created: ReadonlySet<number>, id: number): void {
  if (!created.has(id)) ids.add(id);
}

export interface ProjectionInput {
  readonly orders: readonly OrderHistoryRow[];
  readonly positions: readonly PositionHistoryRow[];
  readonly balances: readonly LedgerBalanceRow[];
}

/** The history tables, numbered where a driver needs them as numbers. */
export const HISTORY_KINDS = { orders: 0, deals: 1, positions: 2, ledger: 3 } as const satisfies Record<
  keyof typeof TABLES,
  number
>;

/**
 * A history row the batch created: which table, its id, its account, its time (the value of the table's time
 * column) and the journal sequence of the event that created it.
 */
export interface CreatedRow {
  readonly kind: (typeof HISTORY_KINDS)[keyof typeof HISTORY_KINDS];
  readonly id: number;
  readonly accountId: number;
  readonly time: number;
  readonly sequence: number;
}

/**
 * What to write: orders, positions and balances upserted whole; deals and ledger rows inserted. `created` lists the
 * history rows among them that the batch created, in the order their events came.
 */
export interface ProjectionOutput {
  readonly orders: OrderHistoryRow[];
  readonly positions: PositionHistoryRow[];
  readonly balances: LedgerBalanceRow[];
  readonly deals: DealHistoryRow[];
  readonly ledger: LedgerRow[];
  readonly created: CreatedRow[];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function addLedgerRow(ledger: LedgerRow[], created: CreatedRow[], row: LedgerRow): void {
  ledger.push(row);
  created.push({
    kind: HISTORY_KINDS.ledger,
    id: row.id,
    accountId: row.accountId,
    time: row.time,
    sequence: row.sequence,
  });
}

/** The account's balance row, marked changed (a new one at zero if the read models had none). */
function balanceOf(
  balances: Map<number, Mutable<LedgerBalanceRow>>,
  changed: Set<number>,
  accountId: number,
): Mutable<LedgerBalanceRow> {
  let balance = balances.get(accountId);
  if (!balance) {
    balance = { accountId, balance: 0, credit: 0 };
    balances.set(accountId, balance);
  }
  changed.add(accountId);
  return balance;
}

/**
 * The rows a batch of records changes, given the existing rows it refers to. An event about a row the
 * read models lack (they can only lag the journal through a bug) is skipped rather than refused: the
 * journal is the truth, and a derived view must never stop a durable fact from being recorded.
 */
export function projectBatch(records: readonly JournalRecord[], input: ProjectionInput): ProjectionOutput {
  const orders = new Map<number, Mutable<OrderHistoryRow>>(input.orders.map((row) => [row.id, { ...row }]));
  const positions = new Map<number, Mutable<PositionHistoryRow>>(input.positions.map((row) => [row.id, { ...row }]));
  const balances = new Map<number, Mutable<LedgerBalanceRow>>(input.balances.map((row) => [row.accountId, { ...row }]));
  const changedOrders = new Set<number>();
  const changedPositions = new Set<number>();
  const changedBalances = new Set<number>();
  const deals: DealHistoryRow[] = [];
  const ledger: LedgerRow[] = [];
  const created: CreatedRow[] = [];

  for (const { sequence, event } of records) {
    switch (event.type) {
      case "AccountOpened":
        balanceOf(balances, changedBalances, event.accountId);
        break;
      case "BalanceOperation": {
        const account = balanceOf(balances, changedBalances, event.accountId);
        if (event.kind === "CREDIT") account.credit += event.amount;
        else account.balance += event.amount;
        addLedgerRow(ledger, created, {
          id: sequence * LEDGER_PARTS_PER_EVENT + LEDGER_PART.OPERATION,
          sequence,
          accountId: event.accountId,
          kind: event.kind,
          amount: event.amount,
          balanceAfter: account.balance,
          creditAfter: account.credit,
          dealId: null,
          operationId: event.operationId,
          comment: event.comment,
          time: event.time,
        });
        break;
      }
      case "OrderAccepted": {
        const order = event.order;
        orders.set(order.id, {
          id: order.id,
          accountId: order.accountId,
          symbol: order.symbol,
          side: order.side,
          type: order.type,
          volume: order.volume,
          filledVolume: order.filledVolume,
          price: order.price,
          stopLimitPrice: order.stopLimitPrice,
          sl: order.sl,
          tp: order.tp,
          timeInForce: order.timeInForce,
          expiration: order.expiration,
          status: order.status,
          statusReason: order.statusReason,
          reason: order.reason,
          clientOrderId: order.clientOrderId,
          comment: order.comment,
          magic: order.magic,
          closePositionId: order.closePositionId,
          createdAt: order.createdAt,
          updatedAt: order.updatedAt,
        });
        changedOrders.add(order.id);
        created.push({
          kind: HISTORY_KINDS.orders,
          id: order.id,
          accountId: order.accountId,
          time: order.createdAt,
          sequence,
        });
        break;
      }
      case "OrderChanged": {
        const order = orders.get(event.orderId);
        if (!order) break;
        order.price = event.price;
        order.stopLimitPrice = event.stopLimitPrice;
        order.sl = event.sl;
        order.tp = event.tp;
        order.expiration = event.expiration;
        order.updatedAt = event.time;
        changedOrders.add(order.id);
        break;
      }
      case "OrderStatusChanged": {
        const order = orders.get(event.orderId);
        if (!order) break;
        order.status = event.status;
        order.filledVolume = event.filledVolume;
        order.statusReason = event.reason;
        order.updatedAt = event.time;
        changedOrders.add(order.id);
        break;
      }
      case "DealExecuted": {
        const { deal, effect } = event;
        deals.push({ ...deal });
        created.push({ kind: HISTORY_KINDS.deals, id: deal.id, accountId: deal.accountId, time: deal.time, sequence });
        const account = balanceOf(balances, changedBalances, deal.accountId);
        // The same order as the engine's fold: balance += profit − commission + swap.
        const parts: [LedgerEntryKind, number, number][] = [
          ["PROFIT", LEDGER_PART.PROFIT, deal.profit],
          ["COMMISSION", LEDGER_PART.COMMISSION, -deal.commission],
          ["SWAP", LEDGER_PART.SWAP, deal.swap],
        ];
        for (const [kind, part, amount] of parts) {
          // A zero changes nothing: a row for it would only pad the client's ledger.
          if (amount === 0) continue;
          account.balance += amount;
          addLedgerRow(ledger, created, {
            id: sequence * LEDGER_PARTS_PER_EVENT + part,
            sequence,
            accountId: deal.accountId,
            kind,
            amount,
            balanceAfter: account.balance,
            creditAfter: account.credit,
            dealId: deal.id,
            operationId: null,
            comment: "",
            time: event.time,
          });
        }
        const cost = deal.price * deal.volume;
        if (effect.kind === "OPEN") {
          positions.set(deal.positionId, {
            id: deal.positionId,
            accountId: deal.accountId,
            symbol: deal.symbol,
            side: deal.side,
            volume: deal.volume,
            openCost: cost,
            margin: effect.margin,
            swap: 0,
            commission: deal.commission,
            openedVolume: deal.volume,
            openedCost: cost,
            closedVolume: 0,
            closedCost: 0,
            realisedProfit: 0,
            realisedSwap: 0,
            sl: effect.sl,
            tp: effect.tp,
            comment: effect.comment,
            magic: effect.magic,
            openOrderId: deal.orderId,
            openTime: event.time,
            closeTime: null,
            updatedAt: event.time,
          });
          changedPositions.add(deal.positionId);
          created.push({
            kind: HISTORY_KINDS.positions,
            id: deal.positionId,
            accountId: deal.accountId,
            time: event.time,
            sequence,
          });
          break;
        }
        const position = positions.get(deal.positionId);
        if (!position) break;
        position.updatedAt = event.time;
        position.commission += deal.commission;
        if (effect.kind === "INCREASE") {
          position.volume += deal.volume;
          position.openCost += cost;
          position.margin += effect.margin;
          position.openedVolume += deal.volume;
          position.openedCost += cost;
          if (effect.sl !== null) position.sl = effect.sl;
          if (effect.tp !== null) position.tp = effect.tp;
        } else {
          position.volume -= deal.volume;
          position.openCost -= effect.closedCost;
          position.margin -= effect.marginReleased;
          position.swap -= deal.swap;
          position.closedVolume += deal.volume;
          position.closedCost += cost;
          position.realisedProfit += deal.profit;
          position.realisedSwap += deal.swap;
          if (position.volume === 0) position.closeTime = event.time;
        }
        changedPositions.add(position.id);
        break;
      }
      case "PositionChanged": {
        const position = positions.get(event.positionId);
        if (!position) break;
        position.sl = event.sl;
        position.tp = event.tp;
        position.updatedAt = event.time;
        changedPositions.add(position.id);
        break;
      }
      case "PositionMarginChanged": {
        const position = positions.get(event.positionId);
        if (!position) break;
        position.margin = event.margin;
        changedPositions.add(position.id);
        break;
      }
      case "Rollover":
      case "DeferredSwapsCharged":
        for (const charge of event.charges) {
          const position = positions.get(charge.positionId);
          if (!position) continue;
          position.swap += charge.amount;
          changedPositions.add(position.id);
        }
        break;
      default:
        break;
    }
  }
  return {
    orders: [...changedOrders].map((id) => orders.get(id)!),
    positions: [...changedPositions].map((id) => positions.get(id)!),
    balances: [...changedBalances].map((id) => balances.get(id)!),
    deals,
    ledger,
    created,
  };
}
