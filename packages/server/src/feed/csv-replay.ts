/**
 * CSV replay (`BOURSE_FEED=csv:PATH`): a tick file pushed through `platform.pushQuote` in file order.
 *
 * Format: a header naming the columns (any order) `time,symbol,bid,ask`, optionally `bids,asks`; then one
 * tick per line, no more cells than the header names (empty ones past them aside). `time` is ISO 8601 with a zone or epoch milliseconds (from 1973 on:
 * seconds are refused); `bid`/`ask` decimals with at most
 * the instrument's digits; `bids`/`asks` book levels best first as `price:lots` separated by `;`
 * (e.g. `1.08500:1.5;1.08490:3`). Blank lines and lines starting with `#` are ignored.
 *
 * The quotes are stamped with the server's clock (the engine's time never goes back): the file's times
 * give the spacing, replayed as recorded (`speed` 1), faster (`speed` 10) or as fast as the engine takes
 * them (`speed` Infinity). A bad line (unknown symbol, a bad number, time going back, a quote the engine
 * refuses) is reported with its line number and skipped. The file is streamed: memory stays bounded
 * whatever its size (a line longer than 64 KiB is a bad line).
 */
import { isEngineTime, parseDecimal, type BookLevel, type InstrumentSpec } from "@bourse/core";
import { createReadStream } from "node:fs";
import { isMarketClosed } from "../errors.ts";
import type { Platform, QuoteInput } from "../platform.ts";
import { EARLIEST_EPOCH_MILLISECONDS, parseIsoTime } from "../wire.ts";
import type { FeedHandle } from "./simulator.ts";

export const MAX_CSV_LINE_LENGTH = 64 * 1024;
/** Bad lines reported one by one; after that only counted. */
export const REPORTED_BAD_LINES = 100;
const MAX_LEVELS = 50;
/** The longest delay setTimeout keeps (Node's TimeoutOverflowWarning past it). */
const MAX_TIMER_MILLISECONDS = 2 ** 31 - 1;

export interface CsvColumns {
  /** The header's cells: every line has as many (a line with more or fewer is a bad one). */
  readonly count: number;
  readonly time: number;
  readonly symbol: number;
  readonly bid: number;
  readonly ask: number;
  readonly bids: number | null;
  readonly asks: number | null;
}

export interface CsvTick {
  readonly time: number;
  readonly quote: QuoteInput;
}

export type CsvLineResult = { ok: true; tick: CsvTick } | { ok: false; reason: string };

export class CsvFormatError extends Error {
  override readonly name = "CsvFormatError";
}

/** Reads the header line: the column index of each field. */
export function parseCsvHeader(line: string): CsvColumns {
  const names = line.split(",").map((name) => name.trim().toLowerCase());
  // A trailing comma names no column.
  while (names.length > 1 && names.at(-1) === "") names.pop();
  const index = (name: string, required: boolean): number | null => {
    const at = names.indexOf(name);
    if (at < 0 && required)
      throw new CsvFormatError(`the header must name the columns time,symbol,bid,ask (got "${line.slice(0, 200)}")`);
    return at < 0 ? null : at;
  };
  return {
    count: names.length,
    time: index("time", true)!,
    symbol: index("symbol", true)!,
    bid: index("bid", true)!,
    ask: index("ask", true)!,
    bids: index("bids", false),
    asks: index("asks", false),
  };
}

function parseTime(text: string): number | null {
  if (/^\d{1,15}$/.test(text)) {
    const time = Number(text);
    return isEngineTime(time) && time >= EARLIEST_EPOCH_MILLISECONDS ? time : null;
  }
  return parseIsoTime(text);
}

function parsePrice(text: string, instrument: InstrumentSpec): number | null {
  const result = parseDecimal(text, instrument.digits);
  return result.ok && result.value > 0 ? result.value : null;
}

function parseLevels(text: string, instrument: InstrumentSpec, field: string): BookLevel[] | string {
  if (text === "") return [];
  const parts = text.split(";");
  if (parts.length > MAX_LEVELS) return `${field} has more than ${MAX_LEVELS} levels`;
  const levels: BookLevel[] = [];
  for (const [index, part] of parts.entries()) {
    const pieces = part.split(":").map((piece) => piece.trim());
    const [priceText = "", volumeText = ""] = pieces;
    const price = parsePrice(priceText, instrument);
    const volume = parseDecimal(volumeText, instrument.volumeDigits);
    // Exactly two pieces: "1.08000:1:999" was read as 1 lot at 1.08000, its ":999" dropped.
    if (pieces.length !== 2 || price === null || !volume.ok || volume.value <= 0)
      return `${field}[${index}] must be price:lots with positive numbers, got "${part.slice(0, 60)}"`;
    levels.push({ price, volume: volume.value });
  }
  return levels;
}

/** Reads one data line. Pure: the columns and the instruments in, a tick or a reason out. */
export function parseCsvLine(
  line: string,
  columns: CsvColumns,
  instruments: ReadonlyMap<string, InstrumentSpec>,
): CsvLineResult {
  const cells = line.split(",").map((cell) => cell.trim());
  // Empty cells past the header's (a trailing comma) are nothing.
  while (cells.length > columns.count && cells.at(-1) === "") cells.pop();
  // A decimal comma (1,08500) or a stray separator shifts every cell after it: the shifted ones would be read as
  // prices and traded (found by the audit of market data of 7 December: 1,08500,1,08510 became bid 1, ask 8500).
  // Fewer cells leave columns empty: a missing time, symbol, bid or ask is refused below, missing levels are none.
  if (cells.length > columns.count)
    return {
      ok: false,
      reason: `${cells.length} cells where the header names ${columns.count} (a decimal comma, or a stray comma?)`,
    };
  const cell = (index: number | null) => (index === null ? "" : (cells[index] ?? ""));
  const time = parseTime(cell(columns.time));
  if (time === null)
    return {
      ok: false,
      reason: `bad time "${cell(columns.time).slice(0, 60)}" (ISO 8601 with a zone, or epoch milliseconds)`,
    };
  const symbol = cell(columns.symbol);
  const instrument = instruments.get(symbol);
  if (!instrument) return { ok: false, reason: `unknown symbol "${symbol.slice(0, 60)}"` };
  const bid = parsePrice(cell(columns.bid), instrument);
  if (bid === null) return { ok: false, reason: `bad bid "${cell(columns.bid).slice(0, 60)}"` };
  const ask = parsePrice(cell(columns.ask), instrument);
  if (ask === null) return { ok: false, reason: `bad ask "${cell(columns.ask).slice(0, 60)}"` };
  if (ask < bid) return { ok: false, reason: "ask below bid" };
  const bids = parseLevels(cell(columns.bids), instrument, "bids");
  if (typeof bids === "string") return { ok: false, reason: bids };
  const asks = parseLevels(cell(columns.asks), instrument, "asks");
  if (typeof asks === "string") return { ok: false, reason: asks };
  const quote: QuoteInput = {
    symbol,
    bid,
    ask,
    ...(bids.length > 0 ? { bids } : {}),
    ...(asks.length > 0 ? { asks } : {}),
  };
  return { ok: true, tick: { time, quote } };
}

export interface CsvReplayOptions {
  /** 1: as recorded; 10: ten times faster; Infinity: no waiting. Default 1. */
  readonly speed?: number;
  /** Where bad lines are reported; default the platform's log (warn). */
  readonly report?: (line: number, reason: string) => void;
}

export interface CsvReplaySummary {
  /** Data lines read (header, blank and comment lines excluded). */
  readonly lines: number;
  readonly pushed: number;
  /**
   * Quotes not taken because their market was closed at the server's time (quotes take the server's clock, not the
   * file's: a replay on a weekend moves only the markets open at weekends). Not bad lines.
   */
  readonly closed: number;
  readonly badLines: number;
  /** True when `stop` ended the replay before the end of the file. */
  readonly stopped: boolean;
}

export interface CsvReplayHandle extends FeedHandle {
  /** Resolves at the end of the file (or on stop); rejects if the file cannot be read or has no header. */
  readonly done: Promise<CsvReplaySummary>;
}

/** Splits a byte stream into lines (bounded: an overlong line comes out as null, its length known). */
async function* linesOf(path: string): AsyncGenerator<string | null> {
  let carry = "";
  let overlong = false;
  for await (const chunk of createReadStream(path, { encoding: "utf8", highWaterMark: 64 * 1024 })) {
    let text = carry + (chunk as string);
    let newline: number;
    while ((newline = text.indexOf("\n")) >= 0) {
      const line = text.slice(0, newline);
      text = text.slice(newline + 1);
      if (overlong) {
        overlong = false;
        yield null;
      } else yield line.length > MAX_CSV_LINE_LENGTH ? null : line.replace(/\r$/, "");
    }
    if (text.length > MAX_CSV_LINE_LENGTH) {
      overlong = true;
      text = "";
    }
    carry = text;
  }
  if (overlong) yield null;
  else if (carry !== "") yield carry.replace(/\r$/, "");
}

/** Replays a tick file through the platform; `stop` ends it early. */
export function startCsvReplay(platform: Platform, path: string, options: CsvReplayOptions = {}): CsvReplayHandle {
  const speed = options.speed ?? 1;
  if (!(speed > 0)) throw new Error(`the replay speed must be positive, got ${speed}`);
  let reported = 0;
  const report =
    options.report ??
    ((line: number, reason: string) => {
      reported += 1;
      if (reported <= REPORTED_BAD_LINES) platform.log.warn(`csv feed: ${path}:${line}: ${reason}; line skipped`);
      else if (reported === REPORTED_BAD_LINES + 1)
        platform.log.warn(`csv feed: ${path}: more bad lines; counting them without reporting each`);
    });
  let stopped = false;
  let wake: (() => void) | null = null;
  let timer: NodeJS.Timeout | null = null;

  const sleepOnce = (milliseconds: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, milliseconds);
    }).finally(() => {
      wake = null;
      timer = null;
    });
  // In pieces: setTimeout fires at once for a delay past 2^31 − 1 ms (24.8 days), so a longer gap between two
  // ticks, or an hour at speed 0.001, was not waited at all.
  const sleep = async (milliseconds: number) => {
    for (let left = milliseconds; left > 0 && !stopped; left -= MAX_TIMER_MILLISECONDS)
      await sleepOnce(Math.min(left, MAX_TIMER_MILLISECONDS));
  };

  const run = async (): Promise<CsvReplaySummary> => {
    let lineNumber = 0;
    let columns: CsvColumns | null = null;
    let lines = 0;
    let pushed = 0;
    let closed = 0;
    let badLines = 0;
    let previousTime: number | null = null;
    const bad = (reason: string) => {
      badLines += 1;
      report(lineNumber, reason);
    };
    for await (const line of linesOf(path)) {
      lineNumber += 1;
      if (stopped) break;
      if (line === null) {
        if (columns === null) throw new CsvFormatError(`${path}:${lineNumber}: the header line is too long`);
        lines += 1;
        bad(`longer than ${MAX_CSV_LINE_LENGTH} characters`);
        continue;
      }
      const trimmed = line.trim();
      if (trimmed === "" || trimmed.startsWith("#")) continue;
      if (columns === null) {
        columns = parseCsvHeader(trimmed.replace(/^\uFEFF/, ""));
        continue;
      }
      lines += 1;
      const parsed = parseCsvLine(trimmed, columns, platform.instruments);
      if (!parsed.ok) {
        bad(parsed.reason);
        continue;
      }
      const { time, quote } = parsed.tick;
      if (previousTime !== null && time < previousTime) {
        bad(`time goes back (${new Date(time).toISOString()} after ${new Date(previousTime).toISOString()})`);
        continue;
      }
      if (previousTime !== null && time > previousTime && Number.isFinite(speed)) {
        await sleep((time - previousTime) / speed);
        if (stopped) break;
      }
      previousTime = time;
      try {
        await platform.pushQuote(quote);
        pushed += 1;
      } catch (error) {
        if (!isMarketClosed(error)) bad(`quote refused: ${(error as Error).message}`);
        else if ((closed += 1) === 1)
          platform.log.info(
            `csv feed: ${path}:${lineNumber}: ${(error as Error).message}; quotes of closed markets are counted, not pushed`,
          );
      }
    }
    if (columns === null && !stopped) throw new CsvFormatError(`${path}: no header line (time,symbol,bid,ask)`);
    return { lines, pushed, closed, badLines, stopped };
  };

  const done = run();
  // A caller that only stops must not see an unhandled rejection: the server logs it.
  done.catch((error: unknown) => platform.log.error(`csv feed: ${String((error as Error).message ?? error)}`));
  return {
    done,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      wake?.();
      await done.catch(() => undefined);
    },
  };
}
