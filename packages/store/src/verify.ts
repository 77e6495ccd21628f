/**
 * `verify`: recomputes every account's ledger from the journal on its own (not through the engine's
 * fold) and reports every difference from what a replay of the journal holds, the ledger invariant,
 * and whether the latest snapshot matches a replay to its sequence.
 */
import {
  TextHasher,
  TradingEngine,
  ledgerBalance,
  type Deal,
  type EngineConfig,
  type LedgerTotals,
  type Position,
} from "@bourse/core";
import type { EventJournal, JournalRecord } from "./journal.ts";
import {
  DEAL_COLUMNS,
  MAX_HISTORY_LIMIT,
  ORDER_COLUMNS,
  type HistoryPage,
  type HistoryQuery,
  type PositionHistoryRow,
  type ReadModels,
} from "./read-models.ts";
import { DEFAULT_RECOVERY_BATCH_SIZE, recoverEngine } from "./recovery.ts";

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

/** What the events say each account's history must hold: counted and hashed, so the pass holds no rows. */
interface HistoryEvidence {
  deals: number;
  /** Every deal, in id order, as `dealText` gives it. */
  readonly dealHash: TextHasher;
  orders: number;
  positions: number;
}

/** A deal as the deal history must hold it: its columns' values in order. */
function dealText(deal: Deal): string {
  return JSON.stringify(DEAL_COLUMNS.map((column) => deal[column]));
}

/** Accounts whose deal history differs that a second pass over the journal pins to the first differing deal. */
const MAX_DEAL_DIFFERENCES_LOCATED = 10;

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
   * credit and end at them; its deals are the events' deals): verify checked the journal alone, and a damaged
   * ledger row or a lost deal served to clients passed.
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
  const evidence = new Map<number, HistoryEvidence>();
  const evidenceOf = (accountId: number): HistoryEvidence => {
    let found = evidence.get(accountId);
    if (!found) evidence.set(accountId, (found = { deals: 0, dealHash: new TextHasher(), orders: 0, positions: 0 }));
    return found;
  };
  const snapshot = await journal.latestSnapshot();
  const engine = new TradingEngine(config);
  let lastSequence = 0;
  const checkSnapshot = (): void => {
    if (snapshot && snapshot.sequence === lastSequence && engine.stateHash() !== snapshot.stateHash)
      differences.push({
        subject: `snapshot ${snapshot.sequence}`,
        detail: `its state hash is ${snapshot.stateHash}, a replay to its sequence gives ${engine.stateHash()}`,
      });
  };
  checkSnapshot();
  try {
    for await (const records of journalBatches(journal, through, batchSize)) {
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
        } else if (event.type === "OrderAccepted") {
          evidenceOf(event.order.accountId).orders += 1;
        } else if (event.type === "DealExecuted") {
          const { deal } = event;
          const history = evidenceOf(deal.accountId);
          history.deals += 1;
          history.dealHash.update(dealText(deal));
          if (event.effect.kind === "OPEN") history.positions += 1;
          const ledger = ledgerOf(deal.accountId, sequence);
          ledger.realisedProfit += deal.profit;
          ledger.commissions += deal.commission;
          ledger.swaps += deal.swap;
          ledger.balance += deal.profit - deal.commission + deal.swap;
        }
        checkSnapshot();
      }
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
  if (options.readModels) {
    const dealsDiffer: number[] = [];
    for (const accountId of ledgers.keys()) {
      const account = engine.state.accounts.get(accountId);
      if (!account) continue;
      const history = evidenceOf(accountId);
      await verifyReadModels(options.readModels, engine, account, history, differences);
      if (!(await dealHistoryMatches(options.readModels, accountId, history))) dealsDiffer.push(accountId);
    }
    await locateDealDifferences(journal, options.readModels, dealsDiffer, lastSequence, batchSize, differences);
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
      const recovered = await recoverEngine(journal, config, { batchSize });
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

/** The journal's records from the start through sequence `through`, `batchSize` at most per read. */
async function* journalBatches(
  journal: EventJournal,
  through: number,
  batchSize: number,
): AsyncGenerator<readonly JournalRecord[]> {
  for (let after = 0; after < through;) {
    const wanted = Math.min(batchSize, through - after);
    const records = await journal.read(after, wanted);
    if (records.length > 0) yield records;
    if (records.length < wanted) return;
    after = records[records.length - 1]!.sequence;
  }
}

/** Every row of one account's history, page after page. */
async function* allRows<Row>(
  page: (query: HistoryQuery) => Promise<HistoryPage<Row>>,
  accountId: number,
): AsyncGenerator<Row> {
  let cursor: string | null = null;
  do {
    const answer: HistoryPage<Row> = await page({ accountId, limit: MAX_HISTORY_LIMIT, cursor });
    yield* answer.rows;
    cursor = answer.nextCursor;
  } while (cursor !== null);
}

async function verifyReadModels(
  readModels: ReadModels,
  engine: TradingEngine,
  account: { readonly id: number; readonly balance: number; readonly credit: number },
  history: HistoryEvidence,
  differences: VerifyDifference[],
): Promise<void> {
  const subject = `account ${account.id} read models`;
  let balance = 0;
  let credit = 0;
  let last: { balanceAfter: number; creditAfter: number } | null = null;
  for await (const row of allRows((query) => readModels.ledger(query), account.id)) {
    if (row.kind === "CREDIT") credit += row.amount;
    else balance += row.amount;
    last = row;
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
  // Orders: one row per order the events accepted; a working order's row shows it as the engine has it.
  let orderRows = 0;
  for await (const row of allRows((query) => readModels.orderHistory(query), account.id)) {
    orderRows += 1;
    const working = engine.state.orders.get(row.id);
    if (working) {
      const field = firstDifferentField(working, row, ORDER_COLUMNS);
      if (field !== null)
        differences.push({
          subject,
          detail: `working order ${row.id}: ${field} ${JSON.stringify(row[field])} in the order history, ${JSON.stringify(working[field])} in the events`,
        });
    } else if (row.status === "PLACED" || row.status === "PARTIALLY_FILLED")
      differences.push({
        subject,
        detail: `order ${row.id} is ${row.status} in the order history but not working in the events`,
      });
  }
  if (orderRows !== history.orders)
    differences.push({ subject, detail: `${orderRows} orders in the order history, ${history.orders} in the events` });
  // Positions: one row per position the events opened; an open one's row shows it as the engine has it, a
  // closed one's has nothing left open.
  let positionRows = 0;
  for await (const row of allRows((query) => readModels.positionHistory(query), account.id)) {
    positionRows += 1;
    const open = engine.state.positions.get(row.id);
    const field = open
      ? row.closeTime !== null
        ? "closeTime"
        : firstDifferentField(open, row, OPEN_POSITION_FIELDS)
      : row.volume !== 0 || row.closeTime === null
        ? "volume"
        : null;
    if (field !== null)
      differences.push({
        subject,
        detail: `position ${row.id}: ${field} ${JSON.stringify(row[field])} in the position history, ${open ? JSON.stringify(open[field as keyof Position]) : "closed"} in the events`,
      });
  }
  if (positionRows !== history.positions)
    differences.push({
      subject,
      detail: `${positionRows} positions in the position history, ${history.positions} in the events`,
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

/** Whether the account's deal history holds exactly the events' deals, in id order (by count and hash). */
async function dealHistoryMatches(
  readModels: ReadModels,
  accountId: number,
  history: HistoryEvidence,
): Promise<boolean> {
  const hasher = new TextHasher();
  let rows = 0;
  for await (const row of allRows((query) => readModels.dealHistory(query), accountId)) {
    rows += 1;
    hasher.update(dealText(row));
  }
  return rows === history.deals && hasher.digest() === history.dealHash.digest();
}

/**
 * For accounts whose deal history differs from the events (the first `MAX_DEAL_DIFFERENCES_LOCATED`), a second
 * pass over the journal collects their deals and names the first deal that differs, missing or extra.
 */
async function locateDealDifferences(
  journal: EventJournal,
  readModels: ReadModels,
  accountIds: readonly number[],
  through: number,
  batchSize: number,
  differences: VerifyDifference[],
): Promise<void> {
  const located = accountIds.slice(0, MAX_DEAL_DIFFERENCES_LOCATED);
  if (located.length === 0) return;
  const deals = new Map<number, Map<number, string>>(located.map((accountId) => [accountId, new Map()]));
  for await (const records of journalBatches(journal, through, batchSize))
    for (const { event } of records)
      if (event.type === "DealExecuted") deals.get(event.deal.accountId)?.set(event.deal.id, dealText(event.deal));
  for (const accountId of located) {
    const expected = deals.get(accountId)!;
    const eventDeals = expected.size;
    let detail: string | null = null;
    let rows = 0;
    for await (const row of allRows((query) => readModels.dealHistory(query), accountId)) {
      rows += 1;
      const text = expected.get(row.id);
      expected.delete(row.id);
      if (text === undefined) detail ??= `deal ${row.id} is in the deal history but not in the events`;
      else if (text !== dealText(row))
        detail ??= `deal ${row.id} is ${dealText(row)} in the deal history, ${text} in the events`;
    }
    const missing = expected.keys().next();
    if (!missing.done) detail ??= `deal ${missing.value} of the events is missing from the deal history`;
    differences.push({
      subject: `account ${accountId} read models`,
      detail: `${detail ?? "the deal history differs from the events"} (${rows} deals in the deal history, ${eventDeals} in the events)`,
    });
  }
  if (accountIds.length > located.length)
    differences.push({
      subject: "read models",
      detail: `${accountIds.length - located.length} more accounts' deal histories differ from the events`,
    });
}
