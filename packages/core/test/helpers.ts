import type { EngineEvent } from "../src/index.ts";
import {
  DEFAULT_INSTRUMENTS,
  TradingEngine,
  decimalToInteger,
  defaultEngineConfig,
  ledgerBalance,
  type Command,
  type CommandResult,
  type CommandSuccess,
  type EngineConfig,
  type StateSnapshot,
} from "../src/index.ts";

/** Tuesday 2 June 2026, 12:00 UTC: every default instrument is in session. */
export const TUESDAY_NOON = Date.UTC(2026, 5, 2, 12, 0);

export function instrumentOf(symbol: string) {
  const instrument = DEFAULT_INSTRUMENTS.find((candidate) => candidate.symbol === symbol);
  if (!instrument) throw new Error(`no ${symbol}`);
  return instrument;
}

/** A decimal price of `symbol` as points. */
export function points(symbol: string, price: string): number {
  return decimalToInteger(price, instrumentOf(symbol).digits);
}

/** A decimal lot count of `symbol` as volume units. */
export function lots(symbol: string, amount: string): number {
  return decimalToInteger(amount, instrumentOf(symbol).volumeDigits);
}

/** A decimal money amount as minor units at `digits` (2 for USD/EUR, 0 for JPY). */
export function money(amount: string, digits = 2): number {
  return decimalToInteger(amount, digits);
}

/** An engine with a clock that steps one second per command, and assertions that fail loudly. */
export class Scenario {
  engine: TradingEngine;
  time: number;
  readonly events: EngineEvent[] = [];

  constructor(config: EngineConfig = defaultEngineConfig(), start = TUESDAY_NOON) {
    this.engine = new TradingEngine(config);
    this.time = start;
  }

  run(command: Command): CommandResult {
    const result = this.engine.execute(command);
    this.events.push(...result.events);
    return result;
  }

  /** Runs a command that must succeed. */
  ok(command: DistributiveOmit<Command, "time">, time?: number): CommandSuccess {
    this.time = time ?? this.time + 1000;
    const result = this.run({ ...command, time: this.time } as Command);
    if (!result.ok) throw new Error(`expected success for ${command.kind}, got ${result.code}: ${result.message}`);
    return result;
  }

  /** Runs a command that must be rejected, and returns the code. */
  rejected(command: DistributiveOmit<Command, "time">): string {
    this.time += 1000;
    const result = this.run({ ...command, time: this.time } as Command);
    if (result.ok) throw new Error(`expected a rejection for ${command.kind}`);
    return result.code;
  }

  account(
    currency = "USD",
    deposit = "10000",
    options: { leverage?: number; mode?: "HEDGING" | "NETTING"; group?: string } = {},
  ): number {
    const opened = this.ok({
      kind: "openAccount",
      userId: "user",
      currency,
      leverage: options.leverage ?? 100,
      mode: options.mode ?? "HEDGING",
      ...(options.group ? { group: options.group } : {}),
    });
    const accountId = opened.accountId as number;
    const digits = currency === "JPY" ? 0 : 2;
    if (deposit !== "0") this.ok({ kind: "deposit", accountId, amount: money(deposit, digits) });
    return accountId;
  }

  quote(symbol: string, bid: string, ask: string, time?: number): CommandSuccess {
    return this.ok({ kind: "tick", symbol, bid: points(symbol, bid), ask: points(symbol, ask) }, time);
  }

  /** A quote the engine must refuse; returns the code. */
  refusedQuote(symbol: string, bid: string, ask: string): string {
    return this.rejected({ kind: "tick", symbol, bid: points(symbol, bid), ask: points(symbol, ask) });
  }

  buy(accountId: number, symbol: string, volume: string, extra: Record<string, unknown> = {}): CommandSuccess {
    return this.ok({
      kind: "placeOrder",
      accountId,
      symbol,
      side: "BUY",
      type: "MARKET",
      volume: lots(symbol, volume),
      ...extra,
    } as never);
  }

  sell(accountId: number, symbol: string, volume: string, extra: Record<string, unknown> = {}): CommandSuccess {
    return this.ok({
      kind: "placeOrder",
      accountId,
      symbol,
      side: "SELL",
      type: "MARKET",
      volume: lots(symbol, volume),
      ...extra,
    } as never);
  }

  /** A pending order of `volume` lots at `price` (decimal text), with `extra` fields (timeInForce, expiration...). */
  pending(
    accountId: number,
    symbol: string,
    side: "BUY" | "SELL",
    type: "LIMIT" | "STOP",
    volume: string,
    price: string,
    extra: Record<string, unknown> = {},
  ): CommandSuccess {
    return this.ok({
      kind: "placeOrder",
      accountId,
      symbol,
      side,
      type,
      volume: lots(symbol, volume),
      price: points(symbol, price),
      ...extra,
    } as never);
  }

  get(accountId: number) {
    const account = this.engine.state.accounts.get(accountId);
    if (!account) throw new Error(`no account ${accountId}`);
    return account;
  }

  positions(accountId: number) {
    return [...this.engine.state.positions.values()]
      .filter((position) => position.accountId === accountId)
      .sort((a, b) => a.id - b.id);
  }

  deals() {
    return this.events.flatMap((event) => (event.type === "DealExecuted" ? [event.deal] : []));
  }

  /** The ledger invariant of DESIGN.md section 3. */
  ledgerHolds(accountId: number): boolean {
    const { balance, ledger } = this.get(accountId);
    return balance === ledgerBalance(ledger);
  }

  /**
   * A restart: the engine restored from a snapshot of its state (through JSON, as a store keeps it) at the
   * same clock, with no quotes until the next ticks, as after a process restart; `config`: a restart with another
   * configuration (an instruments file changed meanwhile).
   */
  restart(config: EngineConfig = this.engine.config): void {
    const snapshot = JSON.parse(JSON.stringify(this.engine.snapshot())) as StateSnapshot;
    this.engine = TradingEngine.fromSnapshot(config, snapshot);
  }

  replayMatches(): boolean {
    return TradingEngine.replay(this.engine.config, this.events).stateHash() === this.engine.stateHash();
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
