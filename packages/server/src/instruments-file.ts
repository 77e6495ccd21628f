/**
 * The broker's instruments (DESIGN.md section 3: "from a config file; a default set ships"): a JSON list of
 * definitions named by BOURSE_INSTRUMENTS_FILE, in the dealer's terms (decimals as strings, sessions as local
 * intervals in the instrument's time zone), checked at start so that a bad entry stops it with the entry and field named instead of failing
 * orders later. `bourse instruments` prints the default set in this form, for a broker's file to start from.
 *
 * Once a database has run with an instrument, its scale (digits, volume digits, contract size, currencies) is fixed:
 * the journal, the histories and the kept quotes hold integers of that scale (`checkInstrumentScales`).
 */
import {
  ACCOUNT_CURRENCIES,
  Currencies,
  CurrencyConverter,
  commissionCurrencyOf,
  DEFAULT_INSTRUMENT_DEFINITIONS,
  TIME_ZONES,
  defineInstrument,
  hoursToMinutes,
  isTimeZone,
  parseDecimal,
  type AssetClass,
  type CurrencyCode,
  type DaySessions,
  type InstrumentDefinition,
  type InstrumentSpec,
  type MarginMode,
  type SwapDays,
  type TradeMode,
  type WeekSessions,
  volumeDigitsOf,
} from "@bourse/core";
import { PLATFORM_LIMITS, type InstrumentScale, type PlatformStore } from "@bourse/store";
import { Type, type Static } from "@sinclair/typebox";
import { readJsonList, readListFile } from "./list-file.ts";
import { daySessionsText } from "./market-data.ts";

const ASSET_CLASSES: readonly AssetClass[] = ["forex", "metal", "index", "crypto", "stock", "energy"];
const MARGIN_MODES: readonly MarginMode[] = ["FOREX", "CFD", "CFD_LEVERAGE"];
const TRADE_MODES: readonly TradeMode[] = ["FULL", "CLOSE_ONLY", "DISABLED"];
const CURRENCY_CODES = Object.keys(Currencies) as CurrencyCode[];
/**
 * Letters, digits, `.`, `_` and `-`: what every face takes in a symbol (a Pusher channel name such as
 * `quotes.{SYMBOL}` has no `#`, nor does the histories' symbol filter).
 */
const SYMBOL_PATTERN = "^[A-Za-z0-9._-]{1,32}$";
const UNSIGNED_DECIMAL = "^[0-9]{1,12}(\\.[0-9]{1,8})?$";
const SIGNED_DECIMAL = "^-?[0-9]{1,12}(\\.[0-9]{1,3})?$";
const INTERVAL = /^([01][0-9]|2[0-3]):([0-5][0-9])-(([01][0-9]|2[0-3]):([0-5][0-9])|24:00)$/;
const MAX_DIGITS = 8;
const MAX_CONTRACT_SIZE = 1_000_000_000;

const Literals = <T extends string>(values: readonly T[]) => Type.Union(values.map((value) => Type.Literal(value)));

/** One entry of the file. Decimals are strings, so that what the dealer wrote is what the engine keeps. */
export const InstrumentFileEntry = Type.Object(
  {
    symbol: Type.String({ pattern: SYMBOL_PATTERN }),
    description: Type.String({ maxLength: 200 }),
    assetClass: Literals(ASSET_CLASSES),
    digits: Type.Integer({ minimum: 0, maximum: MAX_DIGITS, description: "Price decimals" }),
    contractSize: Type.Integer({ minimum: 1, maximum: MAX_CONTRACT_SIZE, description: "Base units in one lot" }),
    lots: Type.Object(
      {
        min: Type.String({ pattern: UNSIGNED_DECIMAL }),
        max: Type.String({ pattern: UNSIGNED_DECIMAL }),
        step: Type.String({ pattern: UNSIGNED_DECIMAL }),
      },
      { additionalProperties: false },
    ),
    base: Literals(CURRENCY_CODES),
    quote: Literals(CURRENCY_CODES),
    marginMode: Literals(MARGIN_MODES),
    marginRatePercent: Type.String({ pattern: UNSIGNED_DECIMAL }),
    sessions: Type.Array(Type.Array(Type.String({ pattern: INTERVAL.source }), { maxItems: 24 }), {
      minItems: 7,
      maxItems: 7,
      description:
        "Sunday first: each day's open intervals on the clock of sessionTimeZone, HH:MM-HH:MM (24:00 ends a day)",
    }),
    // A string, checked by name (instrumentOf): a refused union would say only "Expected union value".
    sessionTimeZone: Type.Optional(
      Type.String({
        maxLength: 64,
        description: `The time zone whose local clock the sessions are in (${TIME_ZONES.join(", ")}); UTC when absent`,
      }),
    ),
    stopsLevelPoints: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    swapLong: Type.String({ pattern: SIGNED_DECIMAL, description: "Points per lot per day" }),
    swapShort: Type.String({ pattern: SIGNED_DECIMAL, description: "Points per lot per day" }),
    swapDays: Type.Optional(
      Type.Array(Type.Integer({ minimum: 0, maximum: 7 }), {
        minItems: 7,
        maxItems: 7,
        description: "Days of swap at the rollover ending each trading day, Sunday first",
      }),
    ),
    commission: Type.String({ pattern: UNSIGNED_DECIMAL, description: "Per lot per deal side" }),
    commissionCurrency: Type.Optional(Literals(CURRENCY_CODES)),
    tradeMode: Type.Optional(Literals(TRADE_MODES)),
  },
  { additionalProperties: false },
);
export type InstrumentFileEntry = Static<typeof InstrumentFileEntry>;

const InstrumentFile = Type.Array(InstrumentFileEntry, { minItems: 1, maxItems: PLATFORM_LIMITS.instruments });

/** A refused instruments file: says which entry and which field. */
export class InstrumentsFileError extends Error {
  override readonly name = "InstrumentsFileError";
}

/** A day's intervals, each [from, to) with from < to, in order and apart. */
function daySessions(intervals: readonly string[], where: string): DaySessions {
  const day: [number, number][] = [];
  for (const interval of intervals) {
    const [from, to] = interval.split("-").map(hoursToMinutes) as [number, number];
    if (from >= to) throw new InstrumentsFileError(`${where}: ${interval} ends before it starts`);
    const previous = day.at(-1);
    if (previous && from <= previous[1])
      throw new InstrumentsFileError(`${where}: ${interval} overlaps or touches the interval before it`);
    day.push([from, to]);
  }
  return day;
}

/** A decimal string of at most `digits` decimals as an integer, or the entry's refusal. */
function decimal(text: string, digits: number, where: string, what: string): number {
  const parsed = parseDecimal(text, digits);
  if (!parsed.ok) throw new InstrumentsFileError(`${where}: ${what} ${text} has more than ${digits} decimals`);
  return parsed.value;
}

/** One checked entry as the engine's specification. */
function instrumentOf(entry: InstrumentFileEntry, where: string): InstrumentSpec {
  const volumeDigits = volumeDigitsOf(entry.lots);
  if (volumeDigits > MAX_DIGITS) throw new InstrumentsFileError(`${where}: lots take at most ${MAX_DIGITS} decimals`);
  const min = decimal(entry.lots.min, volumeDigits, where, "lots.min");
  const max = decimal(entry.lots.max, volumeDigits, where, "lots.max");
  const step = decimal(entry.lots.step, volumeDigits, where, "lots.step");
  if (step === 0 || min === 0) throw new InstrumentsFileError(`${where}: lots.min and lots.step must be above 0`);
  if (max < min) throw new InstrumentsFileError(`${where}: lots.max is below lots.min`);
  if (min % step !== 0 || max % step !== 0)
    throw new InstrumentsFileError(`${where}: lots.min and lots.max must be whole steps of lots.step`);
  const marginRate = decimal(entry.marginRatePercent, 4, where, "marginRatePercent");
  if (marginRate === 0) throw new InstrumentsFileError(`${where}: marginRatePercent must be above 0`);
  decimal(entry.swapLong, 3, where, "swapLong");
  decimal(entry.swapShort, 3, where, "swapShort");
  const commissionCurrency = commissionCurrencyOf(entry);
  decimal(entry.commission, Currencies[commissionCurrency].digits, where, "commission");
  const sessions = entry.sessions.map((intervals, weekday) =>
    daySessions(intervals, `${where}: sessions[${weekday}]`),
  ) as unknown as WeekSessions;
  const { swapDays, sessionTimeZone, ...fields } = entry;
  if (sessionTimeZone !== undefined && !isTimeZone(sessionTimeZone))
    throw new InstrumentsFileError(
      `${where}: sessionTimeZone ${JSON.stringify(sessionTimeZone)} is not one Bourse knows: one of ` +
        `${TIME_ZONES.join(", ")} (IANA names: Frankfurt's is Europe/Berlin)`,
    );
  const definition: InstrumentDefinition = {
    ...fields,
    sessions,
    ...(sessionTimeZone === undefined ? {} : { sessionTimeZone }),
    commissionCurrency,
    ...(swapDays === undefined ? {} : { swapDays: swapDays as unknown as SwapDays }),
  };
  return defineInstrument(definition);
}

/** The instruments of a file's JSON text, every entry checked; InstrumentsFileError names the first bad one. */
export function parseInstruments(text: string): InstrumentSpec[] {
  const read = readJsonList(
    text,
    InstrumentFile,
    `a list of 1 to ${PLATFORM_LIMITS.instruments} instrument definitions`,
  );
  if ("problem" in read) throw new InstrumentsFileError(read.problem);
  const entries = read.list as InstrumentFileEntry[];
  const seen = new Set<string>();
  return entries.map((entry, index) => {
    const where = `entry ${index} (${entry.symbol})`;
    if (seen.has(entry.symbol)) throw new InstrumentsFileError(`${where}: the symbol is defined twice`);
    seen.add(entry.symbol);
    return instrumentOf(entry, where);
  });
}

export function readInstrumentsFile(file: string): InstrumentSpec[] {
  return readListFile(file, parseInstruments, (message) => new InstrumentsFileError(message));
}

/**
 * Refuses instruments whose money cannot be converted into `accountCurrency` (the demo accounts', every sign-up's)
 * through the instruments themselves: every order of them would answer NO_QUOTES, for good. Profit, margin and a
 * commission's currency each need a path (a pair, or two through USD; CurrencyConverter).
 */
export function checkConversions(instruments: readonly InstrumentSpec[], accountCurrency: string): void {
  const missing = missingConversion(instruments, accountCurrency);
  if (missing)
    throw new InstrumentsFileError(
      `${missing.symbol}: no instrument converts ${missing.currency} into ${accountCurrency}, the demo accounts' ` +
        `currency (add a ${missing.currency}${accountCurrency} or ${accountCurrency}${missing.currency} pair, or both ` +
        "through USD)",
    );
}

/** The account currencies every instrument's money converts into: those an account may be opened in. */
export function convertibleAccountCurrencies(instruments: readonly InstrumentSpec[]): string[] {
  return ACCOUNT_CURRENCIES.filter((currency) => missingConversion(instruments, currency) === null);
}

/** The first instrument whose profit, margin or commission currency has no path into `accountCurrency`. */
function missingConversion(
  instruments: readonly InstrumentSpec[],
  accountCurrency: string,
): { symbol: string; currency: string } | null {
  const converter = new CurrencyConverter(instruments);
  for (const instrument of instruments) {
    const currencies = new Set([instrument.profitCurrency, instrument.marginCurrency]);
    if (instrument.commissionPerLot > 0) currencies.add(instrument.commissionCurrency);
    for (const currency of currencies)
      if (currency !== accountCurrency && converter.path(currency, accountCurrency) === null)
        return { symbol: instrument.symbol, currency };
  }
  return null;
}

/** A definition as the file writes it (`bourse instruments`): the inverse of the file's parsing. */
export function instrumentFileEntry(definition: InstrumentDefinition): InstrumentFileEntry {
  return {
    symbol: definition.symbol,
    description: definition.description,
    assetClass: definition.assetClass,
    digits: definition.digits,
    contractSize: definition.contractSize,
    lots: { ...definition.lots },
    base: definition.base,
    quote: definition.quote,
    marginMode: definition.marginMode,
    marginRatePercent: definition.marginRatePercent,
    sessions: definition.sessions.map((_, weekday) => daySessionsText(definition.sessions, weekday)),
    ...(definition.sessionTimeZone === undefined ? {} : { sessionTimeZone: definition.sessionTimeZone }),
    stopsLevelPoints: definition.stopsLevelPoints,
    swapLong: definition.swapLong,
    swapShort: definition.swapShort,
    ...(definition.swapDays === undefined ? {} : { swapDays: [...definition.swapDays] }),
    commission: definition.commission,
    commissionCurrency: commissionCurrencyOf(definition),
    ...(definition.tradeMode === undefined ? {} : { tradeMode: definition.tradeMode }),
  };
}

/** The default set as an instruments file: where a broker's own file starts. */
export function defaultInstrumentsFile(): string {
  return JSON.stringify(DEFAULT_INSTRUMENT_DEFINITIONS.map(instrumentFileEntry), null, 2) + "\n";
}

function scaleOf(instrument: InstrumentSpec): InstrumentScale {
  return {
    symbol: instrument.symbol,
    digits: instrument.digits,
    volumeDigits: instrument.volumeDigits,
    contractSize: instrument.contractSize,
    baseCurrency: instrument.baseCurrency,
    quoteCurrency: instrument.quoteCurrency,
  };
}

const SCALE_FIELDS = ["digits", "volumeDigits", "contractSize", "baseCurrency", "quoteCurrency"] as const;

/**
 * Refuses a start whose instruments drop one this database has run with or change its scale (the journal's and the
 * histories' integers would then mean other prices, volumes or money). Anything else (swaps, commission, sessions,
 * margin, volume bounds, trade mode) may change between starts; an instrument is withdrawn with `tradeMode`
 * DISABLED, and a new scale needs a new symbol. Before recovery: the journal is read at these scales.
 */
export async function checkInstrumentScales(
  store: PlatformStore,
  instruments: readonly InstrumentSpec[],
): Promise<void> {
  const configured = new Map(instruments.map((instrument) => [instrument.symbol, scaleOf(instrument)]));
  const problems: string[] = [];
  for (const kept of await store.instrumentScales()) {
    const now = configured.get(kept.symbol);
    if (!now) {
      problems.push(`${kept.symbol} is missing (withdraw an instrument with "tradeMode": "DISABLED" instead)`);
      continue;
    }
    for (const field of SCALE_FIELDS)
      if (now[field] !== kept[field])
        problems.push(
          `${kept.symbol}: ${field} was ${kept[field]}, is now ${now[field]} (a new scale needs a new symbol)`,
        );
  }
  if (problems.length > 0)
    throw new InstrumentsFileError(
      `the instruments do not match those this database has run with: ${problems.join("; ")}`,
    );
}

/**
 * Keeps the scales of the instruments this start runs with: once it holds the journal and has recovered (a start
 * refused before, by another server on the journal say, has run with nothing).
 */
export async function keepInstrumentScales(
  store: PlatformStore,
  instruments: readonly InstrumentSpec[],
): Promise<void> {
  await store.saveInstrumentScales(instruments.map(scaleOf));
}
