/**
 * `npm start` until the server lands (issue 4): drives the trading core through a short,
 * deterministic session of simulated quotes and prints what an account sees.
 */
import { TradingEngine, defaultEngineConfig, formatDecimal, type CommandResult } from "@bourse/core";

const engine = new TradingEngine(defaultEngineConfig());
let time = Date.UTC(2026, 5, 2, 12, 0);
let seed = 42;
function nextRandom(): number {
  // A small linear congruential generator: a repeatable demo, not a simulator.
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
  return seed / 2_147_483_648;
}
function must(result: CommandResult): Extract<CommandResult, { ok: true }> {
  if (!result.ok) throw new Error(`${result.code}: ${result.message}`);
  return result;
}

const accountId = must(
  engine.execute({ kind: "openAccount", time, userId: "demo", currency: "USD", leverage: 100, mode: "HEDGING" }),
).accountId as number;
must(engine.execute({ kind: "deposit", time, accountId, amount: 10_000_00 }));
let bid = 108_430;
const tick = () => {
  time += 250;
  bid += Math.round((nextRandom() - 0.5) * 12);
  must(engine.execute({ kind: "tick", time, symbol: "EURUSD", bid, ask: bid + 10 }));
};
tick();
const opened = must(
  engine.execute({
    kind: "placeOrder",
    time,
    accountId,
    symbol: "EURUSD",
    side: "BUY",
    type: "MARKET",
    volume: 100,
    sl: bid - 300,
    tp: bid + 300,
  }),
);
must(
  engine.execute({
    kind: "placeOrder",
    time,
    accountId,
    symbol: "EURUSD",
    side: "SELL",
    type: "LIMIT",
    volume: 50,
    price: bid + 150,
  }),
);
for (let index = 0; index < 2_000 && engine.state.positions.size > 0; index++) tick();

const metrics = engine.accountMetrics(accountId);
const account = engine.state.accounts.get(accountId)!;
console.log(`Bourse trading core demo: account ${accountId} (USD, 1:100, hedging)`);
console.log(
  `  bought 1 lot EURUSD (position ${opened.positionId}), then ${time - Date.UTC(2026, 5, 2, 12, 0)} ms of quotes`,
);
console.log(
  `  balance ${formatDecimal(metrics.balance, 2)}  equity ${formatDecimal(metrics.equity, 2)}  margin ${formatDecimal(metrics.margin, 2)}`,
);
console.log(
  `  realised profit ${formatDecimal(account.ledger.realisedProfit, 2)}  open positions ${engine.state.positions.size}  working orders ${engine.state.orders.size}`,
);
console.log(`  state hash ${engine.stateHash()} (replay of the events reproduces it)`);
console.log("The server, Client API and web terminal arrive with the next issues; see README.md.");
