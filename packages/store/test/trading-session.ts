/**
 * Real events for the journal tests, produced by a TradingEngine: what a journal stores must be what
 * the engine emits, with its nulls, nested records and free text.
 */
import {
  TradingEngine,
  defaultEngineConfig,
  type Command,
  type CommandSuccess,
  type EngineConfig,
  type EngineEvent,
} from "@bourse/core";
import type { JournalRecord } from "../src/index.ts";

/** Tuesday 2 June 2026, 12:00 UTC: every default instrument is in session. */
export const TUESDAY_NOON = Date.UTC(2026, 5, 2, 12, 0);

/** Text a careless encoder would break: quotes, backslashes, braces, commas, accents, an emoji. */
export const AWKWARD_COMMENT = 'say "hi" \\ {a,b} é€ 😀';

export interface TradingSession {
  readonly config: EngineConfig;
  readonly engine: TradingEngine;
  readonly events: EngineEvent[];
}

/** Runs commands that must succeed on the session's engine, a second apart from Tuesday noon unless `at` says when. */
export function runner(session: TradingSession) {
  let time = TUESDAY_NOON;
  return (command: Record<string, unknown>, at?: number): CommandSuccess => {
    time = at ?? time + 1000;
    const result = session.engine.execute({ ...command, time } as Command);
    session.events.push(...result.events);
    if (!result.ok) throw new Error(`${String(command.kind)} rejected: ${result.code} ${result.message}`);
    return result;
  };
}

/**
 * Open an account, deposit, quote, trade at market with stops, leave a limit order working, trade in a
 * netting account too, then close and cancel: every common event type, in the order the engine made them.
 */
export function tradingSession(): TradingSession {
  const config = defaultEngineConfig();
  const session: TradingSession = { config, engine: new TradingEngine(config), events: [] };
  const run = runner(session);
  const hedging = run({
    kind: "openAccount",
    userId: "alice",
    currency: "USD",
    leverage: 100,
    mode: "HEDGING",
  }).accountId!;
  run({ kind: "deposit", accountId: hedging, amount: 1_000_000, comment: AWKWARD_COMMENT });
  run({ kind: "tick", symbol: "EURUSD", bid: 108430, ask: 108440 });
  run({ kind: "tick", symbol: "USDJPY", bid: 150230, ask: 150250 });
  run({ kind: "tick", symbol: "EURJPY", bid: 162900, ask: 162950 });
  const bought = run({
    kind: "placeOrder",
    accountId: hedging,
    symbol: "EURUSD",
    side: "BUY",
    type: "MARKET",
    volume: 100,
    sl: 108000,
    tp: 109000,
    comment: AWKWARD_COMMENT,
    clientOrderId: "client-1",
  });
  const limit = run({
    kind: "placeOrder",
    accountId: hedging,
    symbol: "EURUSD",
    side: "BUY",
    type: "LIMIT",
    volume: 50,
    price: 108100,
    timeInForce: "GTC",
  });
  const netting = run({
    kind: "openAccount",
    userId: "bob",
    currency: "EUR",
    leverage: 30,
    mode: "NETTING",
  }).accountId!;
  run({ kind: "deposit", accountId: netting, amount: 500_000 });
  run({ kind: "placeOrder", accountId: netting, symbol: "USDJPY", side: "SELL", type: "MARKET", volume: 20 });
  run({ kind: "tick", symbol: "EURUSD", bid: 108530, ask: 108540 });
  run({ kind: "closePosition", accountId: hedging, positionId: bought.positionId!, comment: "done" });
  run({ kind: "cancelOrder", accountId: hedging, orderId: limit.orderId! });
  run({ kind: "withdraw", accountId: hedging, amount: 10_000 });
  return session;
}

/** A session of exactly `count` events: an account opened, then deposits (one event each). */
export function depositSession(count: number): TradingSession {
  const config = defaultEngineConfig();
  const session: TradingSession = { config, engine: new TradingEngine(config), events: [] };
  const run = runner(session);
  const accountId = run({
    kind: "openAccount",
    userId: "carol",
    currency: "USD",
    leverage: 100,
    mode: "HEDGING",
  }).accountId!;
  // The engine's first command may also bring the day's rollover: count events, not commands.
  for (let amount = 1; session.events.length < count; amount++)
    run({ kind: "deposit", accountId, amount, comment: `deposit ${amount} ${AWKWARD_COMMENT}` });
  if (session.events.length !== count) throw new Error(`made ${session.events.length} events, wanted ${count}`);
  return session;
}

/** Records numbered from `firstSequence`. */
export function toRecords(events: readonly EngineEvent[], firstSequence = 1): JournalRecord[] {
  return events.map((event, index) => ({ sequence: firstSequence + index, event }));
}
