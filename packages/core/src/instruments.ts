import { Rounding, decimalToInteger, divideRounded } from "./fixed.ts";
import {
  TIME_ZONES,
  isTimeZone,
  localTimeOf,
  nextZoneChangeAfter,
  weekdayOf,
  zoneOffsetMs,
  type TimeZoneName,
} from "./time-zones.ts";

/** Currencies an account may be kept in, and every currency an instrument may price or margin in. */
export const Currencies = {
  USD: { digits: 2 },
  EUR: { digits: 2 },
  GBP: { digits: 2 },
  JPY: { digits: 0 },
  CHF: { digits: 2 },
  AUD: { digits: 2 },
  CAD: { digits: 2 },
  // Not account currencies: the base "currencies" of metals and coins, needed for margin conversion.
  XAU: { digits: 2 },
  XAG: { digits: 2 },
  BTC: { digits: 8 },
  ETH: { digits: 8 },
} as const satisfies Record<string, { digits: number }>;
export type CurrencyCode = keyof typeof Currencies;
export const ACCOUNT_CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "AUD", "CAD"] as const;
export type AccountCurrency = (typeof ACCOUNT_CURRENCIES)[number];

export function currencyDigits(currency: string): number {
  const known = (Currencies as Record<string, { digits: number }>)[currency];
  if (!known) throw new Error(`unknown currency ${currency}`);
  return known.digits;
}

/** What an instrument's largest order may cost, price points × volume units, at most: 2^50 (see `maxPricePoints`). */
export const MAX_ORDER_COST = 2 ** 50;

/**
 * The largest price, in points, the engine takes for `instrument`: in a quote, a book level, an order's price,
 * stop-limit price, SL or TP, a trailing distance or a deviation. An order of the largest volume at that price
 * costs at most MAX_ORDER_COST, so costs, their sums and the profit and margin arithmetic keep room below 2^53
 * (a price near 2^53 points was accepted, and the first fill at it threw inside the engine). Far above any real
 * market: BTCUSD at 100 lots (10,000 volume units), 112,589,990,684 points, a billion dollars a coin.
 */
export function maxPricePoints(instrument: InstrumentSpec): number {
  return divideRounded(MAX_ORDER_COST, instrument.volumeMax, Rounding.FLOOR);
}

export function isAccountCurrency(value: string): value is AccountCurrency {
  return (ACCOUNT_CURRENCIES as readonly string[]).includes(value);
}

export type AssetClass = "forex" | "metal" | "index" | "crypto" | "stock" | "energy";

/**
 * How margin is computed (MetaTrader 5's calculation modes):
 * - FOREX: lots × contract size / leverage × margin rate, in the margin (base) currency.
 * - CFD: lots × contract size × open price × margin rate, in the profit currency; leverage does not apply.
 * - CFD_LEVERAGE: as CFD, divided by the account's leverage.
 */
export type MarginMode = "FOREX" | "CFD" | "CFD_LEVERAGE";
export type TradeMode = "FULL" | "CLOSE_ONLY" | "DISABLED";

/**
 * One weekday's open intervals as [fromMinute, toMinute) in minutes of the day (0..1440) on the clock of the
 * instrument's session time zone.
 */
export type DaySessions = readonly (readonly [number, number])[];
/** Index 0 is Sunday, as `Date.getUTCDay` counts; the days are those of the session time zone's calendar. */
export type WeekSessions = readonly [
  DaySessions,
  DaySessions,
  DaySessions,
  DaySessions,
  DaySessions,
  DaySessions,
  DaySessions,
];

/**
 * Days of swap charged at the rollover that ends each trading day, Sunday first (MetaTrader's per-symbol swap
 * multipliers): forex charges the weekend on Wednesday (spot settles two days later), index CFDs on Friday,
 * crypto every day alike. Each from 0 to 7.
 */
export type SwapDays = readonly [number, number, number, number, number, number, number];

/** Index and energy CFDs: financing for the weekend is charged at Friday's rollover. */
const WEEKEND_ON_FRIDAY: SwapDays = [0, 1, 1, 1, 1, 3, 0];
/** Markets that trade every day (crypto): one day of swap at every rollover. */
const EVERY_DAY: SwapDays = [1, 1, 1, 1, 1, 1, 1];

/** The full contract specification of an instrument, all integers (DESIGN.md section 3). */
export interface InstrumentSpec {
  readonly symbol: string;
  readonly description: string;
  readonly assetClass: AssetClass;
  /** Price decimals: a price is held as points = price × 10^digits. */
  readonly digits: number;
  /** Units of the base asset in one lot. */
  readonly contractSize: number;
  /** Volume decimals: a volume is held as volume units = lots × 10^volumeDigits. */
  readonly volumeDigits: number;
  readonly volumeMin: number;
  readonly volumeMax: number;
  readonly volumeStep: number;
  readonly baseCurrency: CurrencyCode;
  readonly quoteCurrency: CurrencyCode;
  readonly marginCurrency: CurrencyCode;
  readonly profitCurrency: CurrencyCode;
  readonly marginMode: MarginMode;
  /** Initial margin rate in parts per million (1,000,000 = 100 %). */
  readonly marginRatePpm: number;
  readonly tradeMode: TradeMode;
  readonly sessions: WeekSessions;
  /** The zone whose clock `sessions` are read on, daylight saving time included (`isSessionOpen`). */
  readonly sessionTimeZone: TimeZoneName;
  /** Minimal distance in points between the market and a pending price, SL or TP. */
  readonly stopsLevelPoints: number;
  /** Daily swap per lot in thousandths of a point (MetaTrader's "swap in points", to three decimals). */
  readonly swapLongMilliPoints: number;
  readonly swapShortMilliPoints: number;
  /** The instrument's own swap calendar; absent: the engine's (none on Saturday and Sunday, triple on `tripleSwapWeekday`). */
  readonly swapDays?: SwapDays;
  /** Commission per lot per deal side, in minor units of `commissionCurrency`. */
  readonly commissionPerLot: number;
  readonly commissionCurrency: CurrencyCode;
}

const MINUTES_PER_DAY = 1440;
const FULL_DAY: DaySessions = [[0, MINUTES_PER_DAY]];
const CLOSED: DaySessions = [];

/** "HH:MM" as minutes of the day ("24:00" is 1440). */
export function hoursToMinutes(text: string): number {
  const [hours = "0", minutes = "0"] = text.split(":");
  return Number(hours) * 60 + Number(minutes);
}

/**
 * A week that opens on Sunday at `open` and closes on Friday at `close` (local times), with an optional daily
 * break [breakFrom, breakTo) on the days in between, as forex, metals and index futures trade.
 */
function sundayToFriday(open: string, close: string, dailyBreak?: readonly [string, string]): WeekSessions {
  const openMinute = hoursToMinutes(open);
  const closeMinute = hoursToMinutes(close);
  const weekday = (): DaySessions => {
    if (!dailyBreak) return FULL_DAY;
    const from = hoursToMinutes(dailyBreak[0]);
    const to = hoursToMinutes(dailyBreak[1]);
    return [
      [0, from],
      [to, MINUTES_PER_DAY],
    ];
  };
  const friday: DaySessions = dailyBreak
    ? [[0, Math.min(closeMinute, hoursToMinutes(dailyBreak[0]))]]
    : [[0, closeMinute]];
  return [[[openMinute, MINUTES_PER_DAY]], weekday(), weekday(), weekday(), weekday(), friday, CLOSED];
}

/** Monday to Friday, one session a day. */
function weekdaysOnly(from: string, to: string): WeekSessions {
  const day: DaySessions = [[hoursToMinutes(from), hoursToMinutes(to)]];
  return [CLOSED, day, day, day, day, day, CLOSED];
}

export const ALWAYS_OPEN: WeekSessions = [FULL_DAY, FULL_DAY, FULL_DAY, FULL_DAY, FULL_DAY, FULL_DAY, FULL_DAY];
// The default set's hours are its markets' local hours, daylight saving time included.
/** Forex: the interbank week, from Sunday 17:00 to Friday 17:00 New York. */
const FOREX_HOURS: TradingHours = { sessions: sundayToFriday("17:00", "17:00"), sessionTimeZone: "America/New_York" };
/** CME Globex (metals, US index futures, oil): Sunday 17:00 to Friday 16:00 Chicago, a daily break 16:00-17:00. */
const CME_HOURS: TradingHours = {
  sessions: sundayToFriday("17:00", "16:00", ["16:00", "17:00"]),
  sessionTimeZone: "America/Chicago",
};
/**
 * GER40: 08:00-22:00 Frankfurt (Berlin time), as brokers commonly quote the CFD: the Eurex DAX future's day around
 * Xetra's 09:00-17:30, the future's early-morning hours left out. The UTC 06:00-21:00 it had was 08:00-23:00 Frankfurt
 * in summer and 07:00-22:00 in winter.
 */
const XETRA_CFD_HOURS: TradingHours = { sessions: weekdaysOnly("08:00", "22:00"), sessionTimeZone: "Europe/Berlin" };

export interface InstrumentDefinition {
  symbol: string;
  description: string;
  assetClass: AssetClass;
  digits: number;
  contractSize: number;
  /** Volume bounds in lots, as a dealer writes them. */
  lots: { min: string; max: string; step: string };
  base: CurrencyCode;
  quote: CurrencyCode;
  marginMode: MarginMode;
  /** Margin rate as a percentage string, e.g. "100" or "5". */
  marginRatePercent: string;
  sessions: WeekSessions;
  /** The zone whose clock `sessions` are read on; UTC when absent. */
  sessionTimeZone?: TimeZoneName;
  stopsLevelPoints: number;
  /** Swaps in points per lot per day, as decimals. */
  swapLong: string;
  swapShort: string;
  swapDays?: SwapDays;
  /** Commission per lot per side in the commission currency, as a decimal. */
  commission: string;
  commissionCurrency?: CurrencyCode;
  /** FULL when absent. */
  tradeMode?: TradeMode;
}

function decimalsOf(text: string): number {
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : text.length - dot - 1;
}

/** The currency commission is charged in: the definition's own, else the quote currency. */
export function commissionCurrencyOf(definition: Pick<InstrumentDefinition, "commissionCurrency" | "quote">) {
  return definition.commissionCurrency ?? definition.quote;
}

/** The volume decimals of lots as a dealer writes them: the finer of the minimum and the step. */
export function volumeDigitsOf(lots: InstrumentDefinition["lots"]): number {
  return Math.max(decimalsOf(lots.min), decimalsOf(lots.step));
}

/** Turns a dealer-facing definition into the integer specification the engine uses. */
export function defineInstrument(definition: InstrumentDefinition): InstrumentSpec {
  const sessionTimeZone = definition.sessionTimeZone ?? "UTC";
  if (!isTimeZone(sessionTimeZone))
    throw new Error(`${definition.symbol}: unknown sessionTimeZone ${sessionTimeZone} (${TIME_ZONES.join(", ")})`);
  const volumeDigits = volumeDigitsOf(definition.lots);
  const commissionCurrency = commissionCurrencyOf(definition);
  const marginCurrency = definition.marginMode === "FOREX" ? definition.base : definition.quote;
  return {
    symbol: definition.symbol,
    description: definition.description,
    assetClass: definition.assetClass,
    digits: definition.digits,
    contractSize: definition.contractSize,
    volumeDigits,
    volumeMin: decimalToInteger(definition.lots.min, volumeDigits),
    volumeMax: decimalToInteger(definition.lots.max, volumeDigits),
    volumeStep: decimalToInteger(definition.lots.step, volumeDigits),
    baseCurrency: definition.base,
    quoteCurrency: definition.quote,
    marginCurrency,
    profitCurrency: definition.quote,
    marginMode: definition.marginMode,
    marginRatePpm: decimalToInteger(definition.marginRatePercent, 4),
    tradeMode: definition.tradeMode ?? "FULL",
    sessions: definition.sessions,
    sessionTimeZone,
    stopsLevelPoints: definition.stopsLevelPoints,
    swapLongMilliPoints: decimalToInteger(definition.swapLong, 3),
    swapShortMilliPoints: decimalToInteger(definition.swapShort, 3),
    ...(definition.swapDays === undefined ? {} : { swapDays: definition.swapDays }),
    commissionPerLot: decimalToInteger(definition.commission, currencyDigits(commissionCurrency)),
    commissionCurrency,
  };
}

const forex = (
  symbol: string,
  description: string,
  digits: number,
  swapLong: string,
  swapShort: string,
): InstrumentDefinition => ({
  symbol,
  description,
  assetClass: "forex",
  digits,
  contractSize: 100_000,
  lots: { min: "0.01", max: "100", step: "0.01" },
  base: symbol.slice(0, 3) as CurrencyCode,
  quote: symbol.slice(3, 6) as CurrencyCode,
  marginMode: "FOREX",
  marginRatePercent: "100",
  ...FOREX_HOURS,
  stopsLevelPoints: 0,
  swapLong,
  swapShort,
  commission: "0",
});

/**
 * The instrument set a broker would ship on day one. Figures are typical retail-CFD values
 * (contract sizes and margin modes as MetaTrader 5 brokers publish them); a broker overrides them
 * in its own instrument file.
 */
export const DEFAULT_INSTRUMENT_DEFINITIONS: readonly InstrumentDefinition[] = [
  forex("EURUSD", "Euro vs US Dollar", 5, "-7.2", "2.1"),
  forex("GBPUSD", "Great Britain Pound vs US Dollar", 5, "-4.9", "0.8"),
  forex("USDJPY", "US Dollar vs Japanese Yen", 3, "14.6", "-27.3"),
  forex("USDCHF", "US Dollar vs Swiss Franc", 5, "6.1", "-12.4"),
  forex("AUDUSD", "Australian Dollar vs US Dollar", 5, "-3.2", "-1.1"),
  forex("USDCAD", "US Dollar vs Canadian Dollar", 5, "1.7", "-8.9"),
  forex("EURJPY", "Euro vs Japanese Yen", 3, "9.8", "-21.5"),
  // Crosses the conversion needs so that EUR, GBP, JPY and CHF accounts convert directly.
  forex("EURGBP", "Euro vs Great Britain Pound", 5, "-5.6", "1.2"),
  {
    symbol: "XAUUSD",
    description: "Gold vs US Dollar",
    assetClass: "metal",
    digits: 2,
    contractSize: 100,
    lots: { min: "0.01", max: "50", step: "0.01" },
    base: "XAU",
    quote: "USD",
    marginMode: "FOREX",
    marginRatePercent: "100",
    ...CME_HOURS,
    stopsLevelPoints: 10,
    swapLong: "-45.3",
    swapShort: "22.6",
    commission: "0",
  },
  {
    symbol: "XAGUSD",
    description: "Silver vs US Dollar",
    assetClass: "metal",
    digits: 3,
    contractSize: 5000,
    lots: { min: "0.01", max: "50", step: "0.01" },
    base: "XAG",
    quote: "USD",
    marginMode: "FOREX",
    marginRatePercent: "100",
    ...CME_HOURS,
    stopsLevelPoints: 10,
    swapLong: "-5.1",
    swapShort: "1.4",
    commission: "0",
  },
  {
    symbol: "US500",
    description: "US 500 Index CFD",
    assetClass: "index",
    digits: 2,
    contractSize: 1,
    lots: { min: "0.1", max: "500", step: "0.1" },
    base: "USD",
    quote: "USD",
    marginMode: "CFD",
    marginRatePercent: "5",
    ...CME_HOURS,
    stopsLevelPoints: 50,
    swapLong: "-92.5",
    swapShort: "31.2",
    swapDays: WEEKEND_ON_FRIDAY,
    commission: "0",
  },
  {
    symbol: "NAS100",
    description: "US Tech 100 Index CFD",
    assetClass: "index",
    digits: 2,
    contractSize: 1,
    lots: { min: "0.1", max: "500", step: "0.1" },
    base: "USD",
    quote: "USD",
    marginMode: "CFD",
    marginRatePercent: "5",
    ...CME_HOURS,
    stopsLevelPoints: 100,
    swapLong: "-310.4",
    swapShort: "105.7",
    swapDays: WEEKEND_ON_FRIDAY,
    commission: "0",
  },
  {
    symbol: "GER40",
    description: "Germany 40 Index CFD",
    assetClass: "index",
    digits: 2,
    contractSize: 1,
    lots: { min: "0.1", max: "500", step: "0.1" },
    base: "EUR",
    quote: "EUR",
    marginMode: "CFD",
    marginRatePercent: "5",
    ...XETRA_CFD_HOURS,
    stopsLevelPoints: 100,
    swapLong: "-280.0",
    swapShort: "60.0",
    swapDays: WEEKEND_ON_FRIDAY,
    commission: "0",
  },
  {
    symbol: "USOIL",
    description: "WTI Crude Oil CFD",
    assetClass: "energy",
    digits: 2,
    contractSize: 1000,
    lots: { min: "0.01", max: "100", step: "0.01" },
    base: "USD",
    quote: "USD",
    marginMode: "CFD",
    marginRatePercent: "10",
    ...CME_HOURS,
    stopsLevelPoints: 10,
    swapLong: "-3.5",
    swapShort: "1.0",
    swapDays: WEEKEND_ON_FRIDAY,
    commission: "0",
  },
  {
    symbol: "BTCUSD",
    description: "Bitcoin vs US Dollar CFD",
    assetClass: "crypto",
    digits: 2,
    contractSize: 1,
    lots: { min: "0.01", max: "20", step: "0.01" },
    base: "BTC",
    quote: "USD",
    marginMode: "CFD",
    marginRatePercent: "50",
    sessions: ALWAYS_OPEN,
    stopsLevelPoints: 0,
    swapLong: "-2000",
    swapShort: "-2000",
    swapDays: EVERY_DAY,
    commission: "5.00",
    commissionCurrency: "USD",
  },
  {
    symbol: "ETHUSD",
    description: "Ethereum vs US Dollar CFD",
    assetClass: "crypto",
    digits: 2,
    contractSize: 1,
    lots: { min: "0.01", max: "200", step: "0.01" },
    base: "ETH",
    quote: "USD",
    marginMode: "CFD",
    marginRatePercent: "50",
    sessions: ALWAYS_OPEN,
    stopsLevelPoints: 0,
    swapLong: "-150",
    swapShort: "-150",
    swapDays: EVERY_DAY,
    commission: "1.00",
    commissionCurrency: "USD",
  },
];

export const DEFAULT_INSTRUMENTS: readonly InstrumentSpec[] = DEFAULT_INSTRUMENT_DEFINITIONS.map(defineInstrument);

/** An instrument's trading hours: its week of sessions and the zone whose clock they are read on. */
export type TradingHours = Pick<InstrumentSpec, "sessions" | "sessionTimeZone">;

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/**
 * Whether the instrument's session is open at `timeMs` (ms since the epoch, UTC): whether its zone's clock at that
 * instant (UTC plus the offset in force then) reads a time inside one of that local day's intervals. So a session
 * boundary that the spring change skips takes effect at the change (the clock jumps past it), and one inside the hour
 * the autumn change repeats is crossed twice (the clock reads it twice). Pure calendar arithmetic.
 */
export function isSessionOpen(hours: TradingHours, timeMs: number): boolean {
  return isOpenOnClock(hours.sessions, localTimeOf(hours.sessionTimeZone, timeMs));
}

/** Whether the local time `clockMs` (ms on the UTC scale) falls inside one of the week's intervals. */
function isOpenOnClock(sessions: WeekSessions, clockMs: number): boolean {
  const dayNumber = Math.floor(clockMs / DAY_MS);
  const minute = Math.floor((clockMs - dayNumber * DAY_MS) / MINUTE_MS);
  const day = sessions[weekdayOf(clockMs) as 0] ?? CLOSED;
  for (const [from, to] of day) if (minute >= from && minute < to) return true;
  return false;
}

/**
 * Whether the instrument's session is open at every minute from `fromMs` to `toMs` (both included), i.e. it has not
 * closed in between: a price that came at `fromMs` is still one of the session trading at `toMs`. Pure calendar
 * arithmetic: the span is read on the zone's clock, one stretch between two of its daylight saving changes at a time.
 */
export function isSessionOpenThroughout(hours: TradingHours, fromMs: number, toMs: number): boolean {
  // A span that is no span of instants is not one the session is open through: with NaN or an infinity the walk from
  // zone change to zone change below never ended (the review of 7 December, ninth session).
  if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) return false;
  if (toMs < fromMs) return isSessionOpen(hours, toMs);
  const { sessions, sessionTimeZone } = hours;
  let from = fromMs;
  for (;;) {
    const offset = zoneOffsetMs(sessionTimeZone, from);
    const change = nextZoneChangeAfter(sessionTimeZone, from);
    if (change > toMs) return isOpenThroughoutOnClock(sessions, from + offset, toMs + offset);
    if (!isOpenThroughoutOnClock(sessions, from + offset, change - 1 + offset)) return false;
    from = change;
  }
}

/** `isSessionOpenThroughout` for a span of local time the clock runs through without a jump. */
function isOpenThroughoutOnClock(sessions: WeekSessions, fromMs: number, toMs: number): boolean {
  const firstDay = Math.floor(fromMs / DAY_MS);
  const lastDay = Math.floor(toMs / DAY_MS);
  // Past eight days every weekday is crossed whole at least once: open throughout only if every day is open all day.
  const days = Math.min(lastDay - firstDay, 8);
  for (let offset = 0; offset <= days; offset++) {
    const day = firstDay + offset;
    const from = offset === 0 ? Math.floor((fromMs - day * DAY_MS) / MINUTE_MS) : 0;
    const to = day === lastDay ? Math.floor((toMs - day * DAY_MS) / MINUTE_MS) : MINUTES_PER_DAY - 1;
    const intervals = sessions[weekdayOf(day * DAY_MS) as 0] ?? CLOSED;
    // Each minute from `from` to `to` must fall inside an interval: step from interval to interval.
    let minute = from;
    while (minute <= to) {
      const covering = intervals.find(([start, end]) => minute >= start && minute < end);
      if (!covering) return false;
      minute = covering[1];
    }
  }
  return true;
}

/**
 * How far ahead a session change is looked for: two weeks, since the week repeats on the zone's clock but a spring
 * change may skip the one closed hour of a week.
 */
const SESSION_CHANGE_HORIZON_MS = 15 * DAY_MS;

/**
 * The next time after `time` when the session opens or closes, exactly: a local boundary on the zone's clock, or a
 * daylight saving change when the clock jumps past or back over one; null when it never changes (always open or
 * never).
 */
export function nextSessionChange(hours: TradingHours, time: number): number | null {
  const { sessions, sessionTimeZone } = hours;
  const openNow = isSessionOpen(hours, time);
  const horizon = time + SESSION_CHANGE_HORIZON_MS;
  // One stretch between two of the zone's changes at a time, where the clock keeps one offset: its boundaries on that
  // clock, in order, then the change that ends it.
  for (let from = time; from < horizon;) {
    const offset = zoneOffsetMs(sessionTimeZone, from);
    const until = Math.min(nextZoneChangeAfter(sessionTimeZone, from), horizon);
    const candidates: number[] = [];
    const lastDay = Math.floor((until + offset) / DAY_MS);
    for (let day = Math.floor((from + offset) / DAY_MS); day <= lastDay; day++) {
      for (const [start, end] of sessions[weekdayOf(day * DAY_MS) as 0] ?? CLOSED) {
        for (const minute of [start, end]) {
          const candidate = day * DAY_MS + minute * MINUTE_MS - offset;
          if (candidate > from && candidate < until) candidates.push(candidate);
        }
      }
    }
    if (until < horizon) candidates.push(until);
    candidates.sort((a, b) => a - b);
    for (const candidate of candidates) if (isSessionOpen(hours, candidate) !== openNow) return candidate;
    from = until;
  }
  return null;
}

/**
 * Days of swap charged at the rollover that ends a trading day of `weekday` (0 Sunday): the instrument's own calendar
 * (`swapDays`), else the engine's (none on Saturday and Sunday, triple on `tripleSwapWeekday`); without an instrument,
 * the engine's.
 */
export function swapDaysAt(instrument: InstrumentSpec | null, weekday: number, tripleSwapWeekday: number): number {
  const own = instrument?.swapDays?.[weekday];
  if (own !== undefined) return own;
  return weekday === 0 || weekday === 6 ? 0 : weekday === tripleSwapWeekday ? 3 : 1;
}
