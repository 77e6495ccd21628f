/**
 * The risk thresholds of accounts whose profit converts through other quotes (engine.ts, "Risk: margin call and
 * stop-out"). Such an account is no longer evaluated on every tick of its conversion symbols: each evaluation holds
 * every conversion symbol's price within a band and draws the traded legs' thresholds at the band's highest rate.
 * The property: after every tick, whatever moved (a traded price, a conversion rate, both at once, one symbol being
 * both), no account holding positions is left at or below its stop-out level, nor at or below its margin-call level
 * without the call. The general property tests (engine.properties.test.ts, property 6) check the same line, but
 * their markets seldom move a conversion rate far enough alone: with the bands removed they still passed 1,000 runs.
 * Here every account converts, paths of one and two steps, and the rates take shocks of several percent.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TradingEngine, defaultEngineConfig, type Command, type CommandResult } from "../src/index.ts";
import { Scenario, TUESDAY_NOON, money, points } from "./helpers.ts";

const CONFIG = defaultEngineConfig();
const GROUPS = new Map(CONFIG.groups.map((group) => [group.name, group]));
const RUNS = Number(process.env.ENGINE_PROPERTY_RUNS ?? 200);

/** Opening prices; every symbol is quoted before anything trades. */
const MARKETS = {
  EURUSD: ["1.08430", "1.08440"],
  GBPUSD: ["1.26500", "1.26512"],
  USDJPY: ["156.000", "156.012"],
  EURJPY: ["169.150", "169.168"],
  EURGBP: ["0.85700", "0.85710"],
  USDCHF: ["0.90100", "0.90112"],
} as const;
type MarketSymbol = keyof typeof MARKETS;
const SYMBOLS = Object.keys(MARKETS) as MarketSymbol[];
/** What the accounts trade... */
const TRADED = ["EURUSD", "EURJPY", "EURGBP"] as const satisfies readonly MarketSymbol[];
/** ...and the rates most of their profit converts through, which they do not trade. */
const RATES = ["USDJPY", "GBPUSD", "USDCHF"] as const satisfies readonly MarketSymbol[];

/**
 * Account currencies and what converts: a USD account's EURJPY reads USDJPY (one step), a JPY account's EURUSD reads
 * USDJPY's bid; a GBP account's EURJPY goes JPY → USD → GBP (USDJPY, then GBPUSD: two steps), a CHF account's EURGBP
 * reads GBPUSD and USDCHF; an EUR account's profit converts through the traded symbol's own quote.
 */
const CURRENCIES = ["USD", "EUR", "JPY", "GBP", "CHF"] as const;
const CURRENCY_DIGITS: Record<(typeof CURRENCIES)[number], number> = { USD: 2, EUR: 2, JPY: 0, GBP: 2, CHF: 2 };

interface AccountPlan {
  readonly currency: (typeof CURRENCIES)[number];
  readonly leverage: number;
  /** Major units. */
  readonly deposit: number;
  /** Each position takes this percentage of the free margin left when it opens. */
  readonly positions: readonly { symbol: MarketSymbol; side: "BUY" | "SELL"; freeMarginPercent: number }[];
}

interface Move {
  readonly symbol: MarketSymbol;
  /** The bid's move, in hundredths of a percent. */
  readonly basisPoints: number;
}

const accountArb: fc.Arbitrary<AccountPlan> = fc.record({
  currency: fc.constantFrom(...CURRENCIES),
  leverage: fc.constantFrom(20, 100, 500),
  deposit: fc.integer({ min: 200, max: 20_000 }),
  positions: fc.array(
    fc.record({
      symbol: fc.constantFrom(...TRADED),
      side: fc.constantFrom("BUY" as const, "SELL" as const),
      freeMarginPercent: fc.integer({ min: 10, max: 95 }),
    }),
    { minLength: 1, maxLength: 5 },
  ),
});

/**
 * Traded prices walk in small steps, which bring accounts near their lines; rates walk too, and now and then take a
 * shock of up to 15 % (more than a major rate moves in a day), so that a rate alone carries accounts over their line
 * often enough for a run of 200 scenarios to find a threshold or band drawn too far.
 */
const moveArb: fc.Arbitrary<Move> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ symbol: fc.constantFrom(...TRADED), basisPoints: fc.integer({ min: -20, max: 20 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ symbol: fc.constantFrom(...RATES), basisPoints: fc.integer({ min: -60, max: 60 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ symbol: fc.constantFrom(...RATES), basisPoints: fc.integer({ min: -1_500, max: 1_500 }) }),
  },
);

const scenarioArb = fc.record({
  accounts: fc.array(accountArb, { minLength: 1, maxLength: 6 }),
  moves: fc.array(moveArb, { minLength: 20, maxLength: 200 }),
});

interface Outcome {
  readonly marginCalls: number;
  readonly stopOuts: number;
  /** Margin calls or stop-outs on a tick of a symbol the account does not hold: a rate's move alone. */
  readonly byRateAlone: number;
}

/** An engine with every market quoted, a clock a second per command, and each symbol's last bid and spread. */
class Market {
  readonly engine = new TradingEngine(CONFIG);
  private time = TUESDAY_NOON;
  readonly quotes = new Map<MarketSymbol, { bid: number; spread: number }>();

  constructor() {
    for (const symbol of SYMBOLS) {
      const [bid, ask] = MARKETS[symbol];
      this.quotes.set(symbol, { bid: points(symbol, bid), spread: points(symbol, ask) - points(symbol, bid) });
      this.tick(symbol, points(symbol, bid));
    }
  }

  execute(command: Record<string, unknown>): CommandResult {
    this.time += 1_000;
    return this.engine.execute({ ...command, time: this.time } as Command);
  }

  /** A tick at `bid`, the ask a spread above. */
  tick(symbol: MarketSymbol, bid: number): CommandResult {
    const quote = this.quotes.get(symbol)!;
    quote.bid = bid;
    const ticked = this.execute({ kind: "tick", symbol, bid, ask: bid + quote.spread });
    if (!ticked.ok) throw new Error(`tick of ${symbol} refused: ${ticked.code}`);
    return ticked;
  }

  openAccount(plan: AccountPlan): number {
    const opened = this.execute({
      kind: "openAccount",
      userId: "user",
      currency: plan.currency,
      leverage: plan.leverage,
      mode: "HEDGING",
    });
    if (!opened.ok) throw new Error(`openAccount refused: ${opened.code}`);
    const accountId = opened.accountId as number;
    const funded = this.execute({
      kind: "deposit",
      accountId,
      amount: plan.deposit * 10 ** CURRENCY_DIGITS[plan.currency],
    });
    if (!funded.ok) throw new Error(`deposit refused: ${funded.code}`);
    for (const position of plan.positions) {
      // Sized from the margin of one volume unit, so that accounts start near their lines and the traded prices' walk
      // brings them to it with a large floating loss, which a rate's move then rescales.
      const order = { kind: "placeOrder", accountId, symbol: position.symbol, side: position.side, type: "MARKET" };
      const { freeMargin, margin } = this.engine.accountMetrics(accountId);
      if (!this.execute({ ...order, volume: 1 }).ok) continue;
      const unitMargin = Math.max(1, this.engine.accountMetrics(accountId).margin - margin);
      const more = Math.floor((freeMargin * position.freeMarginPercent) / 100 / unitMargin) - 1;
      // A refusal for margin is part of the scenario: the account holds what it could afford.
      if (more > 0) this.execute({ ...order, volume: more });
    }
    return accountId;
  }

  /** Fails unless the account is above its stop-out level, and above its margin-call level or in the call. */
  expectOnTheRightSideOfItsLines(accountId: number, after: string): void {
    const account = this.engine.state.accounts.get(accountId)!;
    const metrics = this.engine.accountMetrics(accountId);
    if (metrics.margin === 0) return;
    const group = GROUPS.get(account.group)!;
    const where = `${after}, account ${accountId} (${account.currency}): ${JSON.stringify(metrics)}`;
    expect(metrics.equity * 100 > group.stopOutLevelPercent * metrics.margin, `at or below stop-out ${where}`).toBe(
      true,
    );
    if (metrics.equity * 100 <= group.marginCallLevelPercent * metrics.margin)
      expect(account.marginCall, `at or below the margin-call level without the call ${where}`).toBe(true);
  }
}

function runScenario(scenario: { accounts: AccountPlan[]; moves: Move[] }): Outcome {
  const market = new Market();
  const accountIds = scenario.accounts.map((plan) => market.openAccount(plan));
  let marginCalls = 0;
  let stopOuts = 0;
  let byRateAlone = 0;
  for (const move of scenario.moves) {
    const last = market.quotes.get(move.symbol)!.bid;
    // Who holds the symbol before its tick: an event of any other account is the rate's move alone.
    const holders = new Set<number>();
    for (const position of market.engine.state.positions.values())
      if (position.symbol === move.symbol) holders.add(position.accountId);
    const ticked = market.tick(move.symbol, Math.max(1, last + Math.round((last * move.basisPoints) / 10_000)));
    for (const event of ticked.events) {
      if (event.type !== "MarginCallEntered" && event.type !== "StopOut") continue;
      if (event.type === "MarginCallEntered") marginCalls++;
      else stopOuts++;
      if (!holders.has(event.accountId)) byRateAlone++;
    }
    for (const accountId of accountIds)
      market.expectOnTheRightSideOfItsLines(accountId, `after ${move.symbol} ${move.basisPoints} bp`);
  }
  return { marginCalls, stopOuts, byRateAlone };
}

/**
 * The corners of what an evaluation allows: one account alone (so each heap's best live entry is its own), every
 * conversion rate taken one point inside its band's edge, up or down as the corner says, then every traded leg's
 * price one point short of its threshold. No threshold is crossed, so nothing evaluates the account, and it must
 * still be above its lines: the split of the slack between the prices and the rates is what keeps it there.
 */
function runCorner(plan: AccountPlan, opening: Move[], rateDirections: readonly ("UP" | "DOWN")[]): void {
  const market = new Market();
  const accountId = market.openAccount(plan);
  // Moves of the traded prices that leave the account with a floating profit or loss before the corner.
  for (const move of opening) {
    const last = market.quotes.get(move.symbol)!.bid;
    market.tick(move.symbol, last + Math.round((last * move.basisPoints) / 10_000));
  }
  const account = market.engine.state.accounts.get(accountId)!;
  if (market.engine.accountMetrics(accountId).margin === 0 || account.marginCall) return;
  const heaps = (symbol: MarketSymbol) => market.engine.state.symbolIndex(symbol);
  RATES.forEach((symbol, index) => {
    const up = rateDirections[index % rateDirections.length] === "UP";
    const edge = up ? heaps(symbol).riskBidCeilings.peekPrice() : heaps(symbol).riskBidFloors.peekPrice();
    // No band: the account does not convert through this rate, or is watched on every tick (no slack).
    if (edge === null || edge === 0) return;
    const askEdge = up ? heaps(symbol).riskAskCeilings.peekPrice() : heaps(symbol).riskAskFloors.peekPrice();
    const spread = market.quotes.get(symbol)!.spread;
    // One point inside both the bid's and the ask's band.
    const bid = up
      ? Math.min(edge - 1, (askEdge ?? Infinity) - 1 - spread)
      : Math.max(edge + 1, (askEdge ?? 0) + 1 - spread);
    market.tick(symbol, bid);
  });
  for (const symbol of TRADED) {
    const floor = heaps(symbol).riskBidFloors.peekPrice();
    const ceiling = heaps(symbol).riskAskCeilings.peekPrice();
    if (floor === 0 || ceiling === 0) continue;
    const spread = market.quotes.get(symbol)!.spread;
    // A hedged pair's legs pull opposite ways: take the loss of the leg with the nearer threshold. A threshold past
    // half the price away (a leg of little weight) is left where it is.
    const bid = market.quotes.get(symbol)!.bid;
    const reachable = (price: number | null): price is number => price !== null && Math.abs(price - bid) < bid / 2;
    if (reachable(floor) && (!reachable(ceiling) || bid - floor <= ceiling - spread - bid))
      market.tick(symbol, floor + 1);
    else if (reachable(ceiling)) market.tick(symbol, ceiling - 1 - spread);
  }
  market.expectOnTheRightSideOfItsLines(accountId, `at the corner ${rateDirections.join("/")}`);
}

describe("risk thresholds of accounts whose profit converts through other quotes", () => {
  it("no tick leaves an account at or below its stop-out level, nor below its margin-call level without the call", () => {
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        runScenario(scenario);
      }),
      { numRuns: RUNS },
    );
  });

  it("an account moved to the corner of its thresholds and bands, crossing none, stays on the right side of its lines", () => {
    fc.assert(
      fc.property(
        accountArb,
        fc.array(fc.record({ symbol: fc.constantFrom(...TRADED), basisPoints: fc.integer({ min: -300, max: 300 }) }), {
          maxLength: 3,
        }),
        fc.array(fc.constantFrom("UP" as const, "DOWN" as const), { minLength: 1, maxLength: RATES.length }),
        (plan, opening, rateDirections) => {
          runCorner(plan, opening, rateDirections);
        },
      ),
      { numRuns: RUNS * 5 },
    );
  });

  it("reaches margin calls and stop-outs that a conversion rate's move alone causes (fixed seed: a coverage check)", () => {
    let byRateAlone = 0;
    let stopOuts = 0;
    for (const scenario of fc.sample(scenarioArb, { numRuns: 200, seed: 20_261_207 })) {
      const outcome = runScenario(scenario);
      byRateAlone += outcome.byRateAlone;
      stopOuts += outcome.stopOuts;
    }
    expect(byRateAlone).toBeGreaterThan(3);
    expect(stopOuts).toBeGreaterThan(10);
  });
});

describe("a USD account holding EURJPY, whose profit converts through USDJPY", () => {
  function holdingEurJpy(): { scenario: Scenario; accountId: number } {
    const scenario = new Scenario();
    scenario.quote("EURUSD", "1.08430", "1.08440");
    scenario.quote("USDJPY", "156.000", "156.012");
    scenario.quote("EURJPY", "169.150", "169.168");
    const accountId = scenario.account("USD", "2000", { leverage: 500 });
    scenario.buy(accountId, "EURJPY", "1");
    // A loss of 264,800 JPY, 1,697.31 USD at 1 / 156.012: equity 302.69 against a margin (the margin-call line) of 216.86.
    scenario.quote("EURJPY", "166.520", "166.538");
    return { scenario, accountId };
  }

  it("is not evaluated again while USDJPY moves within its band", () => {
    const { scenario, accountId } = holdingEurJpy();
    const version = scenario.engine.state.riskVersions.get(accountId);
    for (const bid of ["155.900", "156.300", "155.500"]) scenario.quote("USDJPY", bid, bid.replace(/0$/, "9"));
    expect(scenario.engine.state.riskVersions.get(accountId)).toBe(version);
    // The loss of 264,800 JPY (1 lot, 169.168 → 166.520) at 1 / 155.509, the last ask: 1,702.80 USD.
    expect(scenario.engine.accountMetrics(accountId).equity).toBe(money("297.20"));
  });

  it("enters margin call on a USDJPY tick alone, and is stopped out on a later one", () => {
    const { scenario, accountId } = holdingEurJpy();
    const types = (bid: string) =>
      scenario.quote("USDJPY", bid, bid.replace(/0$/, "9")).events.map((event) => event.type);
    for (const bid of ["155.000", "153.000", "150.000", "149.000"]) expect(types(bid)).toEqual([]);
    expect(types("148.000")).toEqual(["MarginCallEntered"]);
    expect(scenario.engine.accountMetrics(accountId)).toMatchObject({
      equity: money("210.92"),
      margin: money("216.86"),
    });
    expect(types("140.000")).toEqual([]);
    expect(types("130.000")).toContain("StopOut");
    expect(scenario.engine.state.accountPositions.get(accountId)?.size ?? 0).toBe(0);
  });
});
