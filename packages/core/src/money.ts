/**
 * Money arithmetic of the trading model: currency conversion, profit, margin, swap and commission,
 * each in account minor units with one named rounding rule, computed exactly (see fixed.ts).
 */
import { Rounding, multiplyDivide, powerOfTen } from "./fixed.ts";
import { currencyDigits, type InstrumentSpec } from "./instruments.ts";
import type { Side } from "./types.ts";

/** The named rounding rules of money, one per purpose. Tests pin each of them. */
export const MoneyRounding = {
  /** Realised and floating profit: nearest cent, halves away from zero. */
  PROFIT: Rounding.HALF_UP,
  /** Margin: up, so the broker never holds less than the rate requires. */
  MARGIN: Rounding.CEILING,
  /** Commission: up, a charge is never rounded away. */
  COMMISSION: Rounding.CEILING,
  /** Daily swap: nearest, halves away from zero. */
  SWAP: Rounding.HALF_UP,
  /** Splitting a position's cost, margin and swap on a partial close: banker's rounding; the remainder stays with the position, so nothing is created or lost. */
  PRO_RATA: Rounding.HALF_EVEN,
  /** Converting an amount of one currency to another (e.g. a commission in USD for a EUR account). */
  CONVERSION: Rounding.HALF_UP,
  /** An open position's margin rescaled to a new leverage (margin × old / new): up, as every margin. */
  MARGIN_RESCALE: Rounding.CEILING,
} as const;

/** Top-of-book prices a conversion reads, by symbol. */
export type QuoteLookup = (symbol: string) => { readonly bid: number; readonly ask: number } | undefined;

/**
 * A conversion rate from one currency to another as an exact fraction:
 * amount_to = amount_from × Π factors / Π divisors (both in major units).
 */
export interface ConversionRate {
  readonly factors: readonly number[];
  readonly divisors: readonly number[];
}

const IDENTITY_RATE: ConversionRate = { factors: [], divisors: [] };

/** One step of a conversion path: through `symbol`, multiplying by its bid (direct) or dividing by its ask (inverse). */
interface ConversionStep {
  readonly symbol: string;
  readonly digits: number;
  readonly direct: boolean;
}

/**
 * Currency conversion through the instrument table (CONVERSION RULE): X→Y uses the pair XY's bid
 * (selling X), or divides by the pair YX's ask (buying Y); with neither, it goes through USD.
 * Paths are fixed by the instrument table, so which symbols an account depends on is known in advance.
 */
export class CurrencyConverter {
  private readonly pairs = new Map<string, InstrumentSpec>();
  /** from → to → path, so a lookup builds no key string. */
  private readonly paths = new Map<string, Map<string, readonly ConversionStep[] | null>>();
  private readonly symbolLists = new Map<string, Map<string, readonly string[]>>();

  constructor(instruments: readonly InstrumentSpec[]) {
    for (const instrument of instruments) {
      if (instrument.baseCurrency === instrument.quoteCurrency) continue;
      const key = instrument.baseCurrency + instrument.quoteCurrency;
      // The first instrument listed for a pair wins, so the table decides and replays agree.
      if (!this.pairs.has(key)) this.pairs.set(key, instrument);
    }
  }

  /** The steps from `from` to `to`, or null when the table has no path. */
  path(from: string, to: string): readonly ConversionStep[] | null {
    let fromPaths = this.paths.get(from);
    if (!fromPaths) this.paths.set(from, (fromPaths = new Map()));
    const known = fromPaths.get(to);
    if (known !== undefined) return known;
    const path = this.findPath(from, to);
    fromPaths.set(to, path);
    return path;
  }

  /** The symbols whose quotes a from→to conversion reads. */
  symbolsFor(from: string, to: string): readonly string[] {
    let fromSymbols = this.symbolLists.get(from);
    if (!fromSymbols) this.symbolLists.set(from, (fromSymbols = new Map()));
    let symbols = fromSymbols.get(to);
    if (!symbols) fromSymbols.set(to, (symbols = (this.path(from, to) ?? []).map((step) => step.symbol)));
    return symbols;
  }

  /** The current rate, or null when a quote on the path is missing. */
  rate(from: string, to: string, quotes: QuoteLookup): ConversionRate | null {
    if (from === to) return IDENTITY_RATE;
    const path = this.path(from, to);
    if (!path) return null;
    const factors: number[] = [];
    const divisors: number[] = [];
    for (const step of path) {
      const quote = quotes(step.symbol);
      if (!quote) return null;
      if (step.direct) {
        factors.push(quote.bid);
        divisors.push(powerOfTen(step.digits));
      } else {
        factors.push(powerOfTen(step.digits));
        divisors.push(quote.ask);
      }
    }
    return { factors, divisors };
  }

  private direct(from: string, to: string): ConversionStep | null {
    const straight = this.pairs.get(from + to);
    if (straight) return { symbol: straight.symbol, digits: straight.digits, direct: true };
    const inverse = this.pairs.get(to + from);
    if (inverse) return { symbol: inverse.symbol, digits: inverse.digits, direct: false };
    return null;
  }

  private findPath(from: string, to: string): readonly ConversionStep[] | null {
    if (from === to) return [];
    const single = this.direct(from, to);
    if (single) return [single];
    const toUsd = this.direct(from, "USD");
    const fromUsd = this.direct("USD", to);
    if (toUsd && fromUsd) return [toUsd, fromUsd];
    return null;
  }
}

/** Converts an amount in minor units of `fromCurrency` into minor units of `toCurrency`. */
export function convertAmount(
  amount: number,
  fromCurrency: string,
  toCurrency: string,
  rate: ConversionRate,
  rounding: Rounding = MoneyRounding.CONVERSION,
): number {
  if (fromCurrency === toCurrency) return amount;
  return multiplyDivide(
    [amount, ...rate.factors, powerOfTen(currencyDigits(toCurrency))],
    [...rate.divisors, powerOfTen(currencyDigits(fromCurrency))],
    rounding,
  );
}

/**
 * Profit of closing `volume` whose open cost is `openCost` at close value `closeValue`
 * (both Σ price × volume, points × volume units), in account minor units:
 * (close − open) × contract size, in the profit currency, converted at `rate`. One rounding.
 */
export function profitInAccountCurrency(
  instrument: InstrumentSpec,
  side: Side,
  openCost: number,
  closeValue: number,
  rate: ConversionRate,
  accountDigits: number,
): number {
  const pointsVolume = side === "BUY" ? closeValue - openCost : openCost - closeValue;
  if (pointsVolume === 0) return 0;
  return multiplyDivide(
    [pointsVolume, instrument.contractSize, ...rate.factors, powerOfTen(accountDigits)],
    [powerOfTen(instrument.digits), powerOfTen(instrument.volumeDigits), ...rate.divisors],
    MoneyRounding.PROFIT,
  );
}

/**
 * An open position's margin at a new leverage: `margin` × `fromLeverage` / `toLeverage` (MARGIN_RESCALE). Rounded up
 * each time, a margin taken back and forth between two leverages can end a few minor units above a fresh one at
 * the same leverage (100 → 300 → 100: 1,084.30 → 361.44 → 1,084.32), never below what the leverage requires.
 */
export function rescaledMargin(margin: number, fromLeverage: number, toLeverage: number): number {
  return multiplyDivide([margin, fromLeverage], [toLeverage], MoneyRounding.MARGIN_RESCALE);
}

/**
 * Margin for `volume` filled at total cost `cost` (Σ price × volume), in account minor units.
 * `rate` converts the instrument's margin currency to the account currency.
 */
export function marginInAccountCurrency(
  instrument: InstrumentSpec,
  volume: number,
  cost: number,
  leverage: number,
  rate: ConversionRate,
  accountDigits: number,
): number {
  const accountScale = powerOfTen(accountDigits);
  switch (instrument.marginMode) {
    case "FOREX":
      return multiplyDivide(
        [volume, instrument.contractSize, instrument.marginRatePpm, ...rate.factors, accountScale],
        [powerOfTen(instrument.volumeDigits), leverage, 1_000_000, ...rate.divisors],
        MoneyRounding.MARGIN,
      );
    case "CFD":
    case "CFD_LEVERAGE":
      return multiplyDivide(
        [cost, instrument.contractSize, instrument.marginRatePpm, ...rate.factors, accountScale],
        [
          powerOfTen(instrument.volumeDigits),
          powerOfTen(instrument.digits),
          1_000_000,
          instrument.marginMode === "CFD_LEVERAGE" ? leverage : 1,
          ...rate.divisors,
        ],
        MoneyRounding.MARGIN,
      );
  }
}

/** The instrument's swap rate for a position of `side`, in thousandths of a point per lot and day. */
export function swapMilliPoints(instrument: InstrumentSpec, side: Side): number {
  return side === "BUY" ? instrument.swapLongMilliPoints : instrument.swapShortMilliPoints;
}

/** One rollover's swap for a position, in account minor units (rate: profit currency → account). */
export function swapInAccountCurrency(
  instrument: InstrumentSpec,
  side: Side,
  volume: number,
  multiplier: number,
  rate: ConversionRate,
  accountDigits: number,
): number {
  const milliPoints = swapMilliPoints(instrument, side);
  if (milliPoints === 0 || multiplier === 0) return 0;
  return multiplyDivide(
    [milliPoints, volume, instrument.contractSize, multiplier, ...rate.factors, powerOfTen(accountDigits)],
    [1000, powerOfTen(instrument.digits), powerOfTen(instrument.volumeDigits), ...rate.divisors],
    MoneyRounding.SWAP,
  );
}

/** Commission for one deal of `volume`, a positive charge in account minor units (rate: commission currency → account). */
export function commissionInAccountCurrency(
  instrument: InstrumentSpec,
  volume: number,
  rate: ConversionRate,
  accountDigits: number,
): number {
  if (instrument.commissionPerLot === 0) return 0;
  return multiplyDivide(
    [instrument.commissionPerLot, volume, ...rate.factors, powerOfTen(accountDigits)],
    [powerOfTen(instrument.volumeDigits), powerOfTen(currencyDigits(instrument.commissionCurrency)), ...rate.divisors],
    MoneyRounding.COMMISSION,
  );
}

/** Splits `total` in proportion part/whole (PRO_RATA rounding); the caller keeps total − share. */
export function proRata(total: number, part: number, whole: number): number {
  if (part === whole) return total;
  return multiplyDivide([total, part], [whole], MoneyRounding.PRO_RATA);
}
