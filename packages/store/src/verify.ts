/**
 * `verify`: recomputes every account's ledger from the journal on its own (not through the engine's
 * fold) and reports every difference from what a replay of the journal holds, the ledger invariant,
 * and whether the latest snapshot matches a replay to its sequence.
 */
import { TradingEngine, ledgerBalance, type EngineConfig, type LedgerTotals } from "@bourse/core";
import type { EventJournal } from "./journal.ts";
import { MAX_HISTORY_LIMIT, type HistoryPage, type HistoryQuery, type ReadModels } from "./read-models.ts";
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
  const dealsByAccount = new Map<number, number>();
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
    for (;;) {
      const wanted = Math.min(batchSize, through - lastSequence);
      if (wanted <= 0) break;
      const records = await journal.read(lastSequence, wanted);
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
          dealsByAccount.set(deal.accountId, (dealsByAccount.get(deal.accountId) ?? 0) + 1);
          const ledger = ledgerOf(deal.accountId, sequence);
          ledger.realisedProfit += deal.profit;
          ledger.commissions += deal.commission;
          ledger.swaps += deal.swap;
          ledger.balance += deal.profit - deal.commission + deal.swap;
        }
        checkSnapshot();
      }
      if (records.length < wanted) break;
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
  if (options.readModels)
    for (const accountId of ledgers.keys()) {
      const account = engine.state.accounts.get(accountId);
      if (account) await verifyReadModels(options.readModels, account, dealsByAccount.get(accountId) ?? 0, differences);
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
  account: { readonly id: number; readonly balance: number; readonly credit: number },
  deals: number,
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
  let rows = 0;
  for await (const _row of allRows((query) => readModels.dealHistory(query), account.id)) rows += 1;
  if (rows !== deals)
    differences.push({ subject, detail: `${rows} deals in the deal history, ${deals} in the events` });
}
