/**
 * The journal's binary form of a batch of events: what a row's payload holds since format 1 (rows written
 * before it hold the batch as JSON text, which records.ts still reads).
 *
 * Why not JSON: recovery spent most of its time in `JSON.parse` (about 2.5 µs an event against 1 µs for the
 * fold), and an append in `JSON.stringify` and the exactness check; the text is ~320 bytes an event, most of
 * it key names and enum strings repeated in every event. Here each event is its shape's number followed by
 * its values in the shape's key order, small integers in one byte and the strings every event repeats
 * (symbols, sides, statuses…) as one byte: about 55 bytes an event, encoded in less than half the time and
 * decoded in about a fifth (BENCHMARKS.md, "the journal's events in a binary form").
 *
 * Exactness is the same rule as JSON's: only safe integers, strings, booleans and null (and the nested
 * records a shape names) go in, and what comes out is the same value, with its keys in the same order (the
 * state hash is over JSON text, so an order's keys must come back in the order the engine wrote them). An
 * event whose keys are not its shape's, in that order (a field added to an event and not yet to the
 * table below), is written as its JSON text inside the payload instead, so a shape table behind the engine
 * costs speed, never a refused trade; a test keeps the engine's events on the compact path.
 *
 * Payload: FORMAT_BINARY, then one value per event. A value is a tag byte and what the tag says:
 *   ABSENT | NULL | FALSE | TRUE                  nothing more (ABSENT: a key whose value is undefined)
 *   UINT8 b | INT32 i32 | INT53 f64               an integer (INT53: any other safe integer, as a double)
 *   NAME n                                        NAMES[n]
 *   TEXT u32 bytes | TEXT16 u32 units             a string as UTF-8, or as UTF-16 code units when it holds a
 *                                                 lone surrogate (which UTF-8 cannot carry and JSON can)
 *   RECORD s value…                               an object of SHAPES[s]: one value per key it does not fix
 *   LIST u32 value…                               an array
 *   JSON u32 bytes                                an event the shapes do not fit, as JSON text (UTF-8)
 * Integers in the payload are little-endian.
 *
 * SHAPES and NAMES are append-only, like migrations: a row written today must decode the same in every later
 * version. Never edit or reorder an entry that has shipped; add one (a test pins the bytes of a known batch).
 */
import type { EngineEvent } from "@bourse/core";

/** The first byte of a binary payload. A JSON payload starts with `[` or `{`. */
export const FORMAT_BINARY = 0x01;

const TAG = {
  ABSENT: 0,
  NULL: 1,
  FALSE: 2,
  TRUE: 3,
  UINT8: 4,
  INT32: 5,
  INT53: 6,
  NAME: 7,
  TEXT: 8,
  TEXT16: 9,
  RECORD: 10,
  LIST: 11,
  JSON: 12,
} as const;

/** A key of a shape: a plain value, a nested record of a shape (or of a family chosen by a key), or a list of such records. */
type KeySpec =
  | string
  | { readonly key: string; readonly record: string }
  | {
      readonly key: string;
      readonly recordBy: { readonly key: string; readonly shapes: Readonly<Record<string, string>> };
    }
  | { readonly key: string; readonly listOf: string };

interface ShapeSpec {
  readonly name: string;
  /** A key every object of the shape has with this value (an event's `type`, an effect's `kind`): not written. */
  readonly fixed?: { readonly key: string; readonly value: string };
  readonly keys: readonly KeySpec[];
}

// The order's and the deal's keys as format 1 has them: frozen, so not shared with the read models' column
// lists (read-models.ts), which may change with their tables.
const ORDER_KEYS = [
  "id",
  "accountId",
  "symbol",
  "side",
  "type",
  "volume",
  "filledVolume",
  "price",
  "stopLimitPrice",
  "sl",
  "tp",
  "trailingDistance",
  "timeInForce",
  "expiration",
  "deviation",
  "clientOrderId",
  "comment",
  "magic",
  "status",
  "triggered",
  "closePositionId",
  "reason",
  "createdAt",
  "updatedAt",
  "statusReason",
];

const DEAL_KEYS = [
  "id",
  "orderId",
  "positionId",
  "accountId",
  "symbol",
  "side",
  "entry",
  "volume",
  "price",
  "profit",
  "commission",
  "swap",
  "reason",
  "time",
];

const event = (type: string, keys: readonly KeySpec[]): ShapeSpec => ({
  name: type,
  fixed: { key: "type", value: type },
  keys: ["type", ...keys],
});
const effect = (kind: string, keys: readonly string[], name = `effect ${kind}`): ShapeSpec => ({
  name,
  fixed: { key: "kind", value: kind },
  keys: ["kind", ...keys],
});

/** Format 1's shapes, in the key order the engine (packages/core/src/engine.ts) builds its events. Append only. */
const SHAPES: readonly ShapeSpec[] = [
  event("AccountOpened", ["time", "accountId", "userId", "currency", "leverage", "mode", "group"]),
  event("AccountChanged", ["time", "accountId", "leverage", "group", "tradingEnabled"]),
  event("BalanceOperation", ["time", "accountId", "operationId", "kind", "amount", "comment"]),
  event("OrderAccepted", ["time", { key: "order", record: "order" }]),
  event("OrderChanged", [
    "time",
    "accountId",
    "orderId",
    "price",
    "stopLimitPrice",
    "sl",
    "tp",
    "trailingDistance",
    "expiration",
    "triggered",
  ]),
  event("OrderStatusChanged", ["time", "accountId", "orderId", "status", "filledVolume", "reason"]),
  event("DealExecuted", [
    "time",
    { key: "deal", record: "deal" },
    {
      key: "effect",
      recordBy: {
        key: "kind",
        shapes: { OPEN: "effect OPEN", INCREASE: "effect INCREASE", DECREASE: "effect DECREASE" },
      },
    },
  ]),
  event("PositionChanged", ["time", "accountId", "positionId", "sl", "tp", "trailingDistance", "reason"]),
  event("Rollover", ["time", "rolloverTime", "multiplier", { key: "charges", listOf: "charge" }]),
  event("MarginCallEntered", ["time", "accountId", "equity", "margin"]),
  event("MarginCallCleared", ["time", "accountId", "equity", "margin"]),
  event("StopOut", ["time", "accountId", "equity", "margin", "positionId"]),
  { name: "order", keys: ORDER_KEYS },
  { name: "deal", keys: DEAL_KEYS },
  effect("OPEN", ["margin", "sl", "tp", "trailingDistance", "comment", "magic"]),
  effect("INCREASE", ["margin", "sl", "tp"]),
  effect("DECREASE", ["closedCost", "marginReleased"]),
  { name: "charge", keys: ["accountId", "positionId", "amount"] },
  event("SwapsDeferred", ["time", "rolloverTime", { key: "deferrals", listOf: "deferral" }]),
  { name: "deferral", keys: ["accountId", "positionId", "days"] },
  event("DeferredSwapsCharged", ["time", { key: "charges", listOf: "charge" }]),
  event("PositionMarginChanged", ["time", "accountId", "positionId", "margin"]),
  // A balance operation with the back office's reference (the key is there only then): a second shape of the type.
  {
    name: "BalanceOperation referenced",
    fixed: { key: "type", value: "BalanceOperation" },
    keys: ["type", "time", "accountId", "operationId", "kind", "amount", "comment", "reference"],
  },
  // 7 December 2026: an INCREASE's and a DECREASE's effect carry the position's volume after the deal.
  effect("INCREASE", ["margin", "sl", "tp", "positionVolume"], "effect INCREASE with volume"),
  effect("DECREASE", ["closedCost", "marginReleased", "positionVolume"], "effect DECREASE with volume"),
  {
    name: "DealExecuted with volumes",
    fixed: { key: "type", value: "DealExecuted" },
    keys: [
      "type",
      "time",
      { key: "deal", record: "deal" },
      {
        key: "effect",
        recordBy: {
          key: "kind",
          shapes: {
            OPEN: "effect OPEN",
            INCREASE: "effect INCREASE with volume",
            DECREASE: "effect DECREASE with volume",
          },
        },
      },
    ],
  },
];

/** Strings events repeat (one byte each instead of their text). Append only. */
const NAMES: readonly string[] = [
  "",
  "BUY",
  "SELL",
  "MARKET",
  "LIMIT",
  "STOP",
  "STOP_LIMIT",
  "GTC",
  "DAY",
  "GTD",
  "IOC",
  "FOK",
  "PLACED",
  "PARTIALLY_FILLED",
  "FILLED",
  "CANCELLED",
  "EXPIRED",
  "REJECTED",
  "CLIENT",
  "STOP_LOSS",
  "TAKE_PROFIT",
  "STOP_OUT",
  "TRAILING",
  "IN",
  "OUT",
  "DEPOSIT",
  "WITHDRAWAL",
  "CREDIT",
  "CORRECTION",
  "HEDGING",
  "NETTING",
  "standard",
  "pro",
  "USD",
  "EUR",
  "GBP",
  "JPY",
  "CHF",
  "AUD",
  "CAD",
  "EURUSD",
  "GBPUSD",
  "USDJPY",
  "USDCHF",
  "AUDUSD",
  "USDCAD",
  "EURJPY",
  "EURGBP",
  "XAUUSD",
  "XAGUSD",
  "US500",
  "NAS100",
  "GER40",
  "USOIL",
  "BTCUSD",
  "ETHUSD",
  "CLIENT_CANCEL",
  "IOC_REMAINDER",
  "so",
];

/** A shape resolved for the encoder: each key with how its value is written. */
interface Shape {
  readonly id: number;
  readonly spec: ShapeSpec;
  /** Every key of the object, in order (fixed one included): what `for…in` must visit. */
  readonly keys: readonly string[];
  readonly fixedKey: string | null;
  /** Per key: null for a plain value, else how to find the nested record's shape. */
  readonly nested: readonly (NestedSpec | null)[];
}

type NestedSpec =
  | {
      readonly kind: "record";
      readonly shape: Shape | null;
      readonly by: string | null;
      readonly shapes: ReadonlyMap<string, Shape>;
    }
  | { readonly kind: "list"; readonly shape: Shape };

const SHAPE_IDS = new Map<string, number>(SHAPES.map((shape, id) => [shape.name, id]));
const NAME_IDS = new Map<string, number>(NAMES.map((name, id) => [name, id]));

function resolveShapes(): Shape[] {
  const shapes: (Shape & { nested: (NestedSpec | null)[] })[] = SHAPES.map((spec, id) => ({
    id,
    spec,
    keys: spec.keys.map((key) => (typeof key === "string" ? key : key.key)),
    fixedKey: spec.fixed?.key ?? null,
    nested: [],
  }));
  const byName = (name: string): Shape => {
    const id = SHAPE_IDS.get(name);
    if (id === undefined) throw new Error(`event codec: no shape named ${name}`);
    return shapes[id]!;
  };
  for (const shape of shapes)
    for (const key of shape.spec.keys)
      shape.nested.push(
        typeof key === "string"
          ? null
          : "record" in key
            ? { kind: "record", shape: byName(key.record), by: null, shapes: new Map() }
            : "recordBy" in key
              ? {
                  kind: "record",
                  shape: null,
                  by: key.recordBy.key,
                  shapes: new Map(Object.entries(key.recordBy.shapes).map(([value, name]) => [value, byName(name)])),
                }
              : { kind: "list", shape: byName(key.listOf) },
      );
  return shapes;
}

const RESOLVED: readonly Shape[] = resolveShapes();
/**
 * Each event type's shapes, in the table's order: an event is written in the first that fits it. A miss costs a thrown
 * DOES_NOT_FIT (about 0.5 µs): a DealExecuted that increases or decreases a position (its effect carries the position's
 * volume since 7 December 2026) misses the type's first shape once; the bytes of what the first shape fits never change.
 */
const EVENT_SHAPES = new Map<string, Shape[]>();
for (const shape of RESOLVED)
  if (shape.fixedKey === "type") {
    const type = shape.spec.fixed!.value;
    EVENT_SHAPES.set(type, [...(EVENT_SHAPES.get(type) ?? []), shape]);
  }

/** Thrown inside the encoder when an event does not fit its shape: the event is written as JSON instead. */
const DOES_NOT_FIT = new Error("the event does not fit its shape");

// A shape's number and a name's are one byte each.
if (SHAPES.length > 256 || NAMES.length > 256) throw new Error("event codec: more than 256 shapes or names");

const INITIAL_BUFFER_BYTES = 64 * 1024;
/** A buffer grown past this for a large batch is let go after it (a batch of 500 orders takes about 90 KB). */
const MAX_RETAINED_BUFFER_BYTES = 4 * 1024 * 1024;
const UTF8_BYTES_PER_CODE_UNIT_MAX = 3;

/**
 * The encoder's state between calls: one growing buffer, reused (an append encodes into it and copies out
 * the bytes it wrote). One per thread, as modules are.
 */
class Writer {
  bytes!: Uint8Array;
  view!: DataView;
  /** The same bytes as a Buffer, for its UTF-8 writer. */
  text!: Buffer;
  position = 0;

  constructor() {
    this.reset(INITIAL_BUFFER_BYTES);
  }

  ensure(more: number): void {
    const needed = this.position + more;
    if (needed <= this.bytes.length) return;
    const previous = this.bytes.subarray(0, this.position);
    const position = this.position;
    this.reset(Math.max(needed, this.bytes.length * 2));
    this.bytes.set(previous);
    this.position = position;
  }

  byte(value: number): void {
    this.ensure(1);
    this.bytes[this.position++] = value;
  }

  uint32(value: number): void {
    this.ensure(4);
    this.view.setUint32(this.position, value, true);
    this.position += 4;
  }

  /** `value` is a safe integer. */
  integer(value: number): void {
    this.ensure(9);
    const bytes = this.bytes;
    if (value >= 0 && value <= 0xff) {
      bytes[this.position] = TAG.UINT8;
      bytes[this.position + 1] = value;
      this.position += 2;
    } else if ((value | 0) === value) {
      bytes[this.position] = TAG.INT32;
      this.view.setInt32(this.position + 1, value, true);
      this.position += 5;
    } else {
      bytes[this.position] = TAG.INT53;
      this.view.setFloat64(this.position + 1, value, true);
      this.position += 9;
    }
  }

  string(value: string): void {
    const name = NAME_IDS.get(value);
    if (name !== undefined) {
      this.ensure(2);
      this.bytes[this.position] = TAG.NAME;
      this.bytes[this.position + 1] = name;
      this.position += 2;
      return;
    }
    const length = value.length;
    this.ensure(5 + length);
    const bytes = this.bytes;
    const start = this.position + 5;
    let index = 0;
    // Most free text is ASCII: copied a code unit at a time, cheaper than a native call for short strings.
    for (; index < length; index++) {
      const unit = value.charCodeAt(index);
      if (unit > 0x7f) break;
      bytes[start + index] = unit;
    }
    if (index === length) {
      bytes[this.position] = TAG.TEXT;
      this.view.setUint32(this.position + 1, length, true);
      this.position = start + length;
      return;
    }
    if (hasLoneSurrogate(value, index)) {
      this.ensure(5 + length * 2);
      this.bytes[this.position] = TAG.TEXT16;
      this.view.setUint32(this.position + 1, length, true);
      for (let unit = 0; unit < length; unit++)
        this.view.setUint16(this.position + 5 + unit * 2, value.charCodeAt(unit), true);
      this.position += 5 + length * 2;
      return;
    }
    this.utf8(TAG.TEXT, value);
  }

  /** `tag`, then `text` as UTF-8 after its byte length (`text` holds no lone surrogate). */
  utf8(tag: number, text: string): void {
    this.ensure(5 + text.length * UTF8_BYTES_PER_CODE_UNIT_MAX);
    const written = this.text.write(text, this.position + 5, "utf8");
    this.bytes[this.position] = tag;
    this.view.setUint32(this.position + 1, written, true);
    this.position += 5 + written;
  }

  /** The bytes written, copied into a buffer of their own (the writer's is reused, unless it grew too large to keep). */
  take(): Buffer {
    const written = Buffer.from(this.bytes.slice(0, this.position).buffer);
    if (this.bytes.length > MAX_RETAINED_BUFFER_BYTES) this.reset(INITIAL_BUFFER_BYTES);
    return written;
  }

  private reset(size: number): void {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
    this.text = Buffer.from(this.bytes.buffer);
    this.position = 0;
  }
}

function hasLoneSurrogate(value: string, from: number): boolean {
  for (let index = from; index < value.length; index++) {
    const unit = value.charCodeAt(index);
    if (unit < 0xd800 || unit > 0xdfff) continue;
    if (unit >= 0xdc00) return true;
    const next = value.charCodeAt(index + 1);
    if (!(next >= 0xdc00 && next <= 0xdfff)) return true;
    index++;
  }
  return false;
}

const writer = new Writer();

function writeValue(value: unknown): void {
  switch (typeof value) {
    case "number":
      if (!Number.isSafeInteger(value)) throw DOES_NOT_FIT;
      writer.integer(value);
      return;
    case "string":
      writer.string(value);
      return;
    case "boolean":
      writer.byte(value ? TAG.TRUE : TAG.FALSE);
      return;
    case "undefined":
      writer.byte(TAG.ABSENT);
      return;
    case "object":
      if (value === null) {
        writer.byte(TAG.NULL);
        return;
      }
  }
  throw DOES_NOT_FIT;
}

function writeRecord(shape: Shape, value: unknown): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw DOES_NOT_FIT;
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) throw DOES_NOT_FIT;
  const keys = shape.keys;
  const record = value as Record<string, unknown>;
  // Its keys must be the shape's, in the shape's order: that is the order decoding gives them back.
  let index = 0;
  for (const key in record) {
    if (key !== keys[index]) throw DOES_NOT_FIT;
    index++;
  }
  if (index !== keys.length) throw DOES_NOT_FIT;
  writer.ensure(2);
  writer.bytes[writer.position] = TAG.RECORD;
  writer.bytes[writer.position + 1] = shape.id;
  writer.position += 2;
  const nested = shape.nested;
  for (index = 0; index < keys.length; index++) {
    const key = keys[index]!;
    if (key === shape.fixedKey) continue;
    const item = record[key];
    const spec = nested[index];
    if (spec === null || spec === undefined) writeValue(item);
    else if (spec.kind === "list") writeList(spec.shape, item);
    else writeRecord(spec.shape ?? nestedShape(spec.shapes, spec.by!, item), item);
  }
}

function nestedShape(shapes: ReadonlyMap<string, Shape>, by: string, value: unknown): Shape {
  if (typeof value !== "object" || value === null) throw DOES_NOT_FIT;
  const shape = shapes.get((value as Record<string, unknown>)[by] as string);
  if (shape === undefined) throw DOES_NOT_FIT;
  return shape;
}

function writeList(shape: Shape, value: unknown): void {
  if (!Array.isArray(value)) throw DOES_NOT_FIT;
  writer.byte(TAG.LIST);
  writer.uint32(value.length);
  for (let index = 0; index < value.length; index++) writeRecord(shape, value[index]);
}

/** Writes `event` in its shape; false, with nothing written, when the shapes do not fit it. */
function writeCompact(event: EngineEvent): boolean {
  const shapes = EVENT_SHAPES.get(event.type);
  if (shapes === undefined) return false;
  const start = writer.position;
  for (const shape of shapes) {
    try {
      writeRecord(shape, event);
      return true;
    } catch (error) {
      if (error !== DOES_NOT_FIT) throw error;
      writer.position = start;
    }
  }
  return false;
}

/**
 * The payload of a batch of events. An event that does not fit its shape goes as JSON text, once
 * `assertExactJson(event, index)` has returned (it throws for a value JSON would not keep exactly).
 */
export function encodeEvents(
  events: readonly EngineEvent[],
  assertExactJson: (event: EngineEvent, index: number) => void,
): Buffer {
  writer.position = 0;
  writer.byte(FORMAT_BINARY);
  for (let index = 0; index < events.length; index++) {
    const event = events[index]!;
    if (writeCompact(event)) continue;
    assertExactJson(event, index);
    // JSON.stringify escapes lone surrogates: its text is always sound UTF-8.
    writer.utf8(TAG.JSON, JSON.stringify(event));
  }
  return writer.take();
}

/** How many of `events` the shapes fit (the rest would go as JSON): for the test that keeps the table current. */
export function eventsFittingShapes(events: readonly EngineEvent[]): number {
  let fitting = 0;
  for (const event of events) {
    writer.position = 0;
    if (writeCompact(event)) fitting++;
  }
  writer.position = 0;
  return fitting;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** A payload the decoder cannot read: records.ts reports it as corruption at the row's sequence. */
export class EventDecodingError extends Error {
  override readonly name = "EventDecodingError";
}

interface Reader {
  bytes: Buffer;
  view: DataView;
  position: number;
}

type Builder = (readValue: () => unknown) => unknown;

/**
 * One function per shape that builds its object with a literal, `{type: "OrderAccepted", time: read(), …}`:
 * a literal gives every object of a shape one hidden class from the start and is several times faster than
 * adding keys one by one. Generated from the constant tables above only (no text from a payload reaches
 * the source). The values are read in key order, as JavaScript evaluates a literal's values.
 */
const BUILDERS: readonly Builder[] = SHAPES.map((shape) => {
  const properties = shape.keys.map((key) => {
    const name = typeof key === "string" ? key : key.key;
    const value = name === shape.fixed?.key ? JSON.stringify(shape.fixed.value) : "read()";
    return `${JSON.stringify(name)}: ${value}`;
  });
  return new Function("read", `return {${properties.join(", ")}};`) as Builder;
});

let reader: Reader = { bytes: Buffer.alloc(0), view: new DataView(new ArrayBuffer(0)), position: 0 };

function readValue(): unknown {
  const { bytes, view } = reader;
  const position = reader.position;
  if (position >= bytes.length) throw new EventDecodingError(`the payload ends inside a value at byte ${position}`);
  const tag = bytes[position]!;
  reader.position = position + 1;
  switch (tag) {
    case TAG.ABSENT:
      return undefined;
    case TAG.NULL:
      return null;
    case TAG.FALSE:
      return false;
    case TAG.TRUE:
      return true;
    case TAG.UINT8:
      reader.position = position + 2;
      return view.getUint8(position + 1);
    case TAG.INT32:
      reader.position = position + 5;
      return view.getInt32(position + 1, true);
    case TAG.INT53: {
      reader.position = position + 9;
      const value = view.getFloat64(position + 1, true);
      if (!Number.isSafeInteger(value))
        throw new EventDecodingError(`byte ${position} holds ${value}, not a safe integer`);
      return value;
    }
    case TAG.NAME: {
      reader.position = position + 2;
      const name = NAMES[view.getUint8(position + 1)];
      if (name === undefined)
        throw new EventDecodingError(`byte ${position} names string ${bytes[position + 1]}, unknown`);
      return name;
    }
    case TAG.TEXT:
      return bytes.toString("utf8", readSpan(position, 1), reader.position);
    case TAG.TEXT16:
      return bytes.toString("utf16le", readSpan(position, 2), reader.position);
    case TAG.RECORD: {
      const builder = BUILDERS[view.getUint8(position + 1)];
      if (builder === undefined)
        throw new EventDecodingError(`byte ${position} names shape ${bytes[position + 1]}, unknown`);
      reader.position = position + 2;
      return builder(readValue);
    }
    case TAG.LIST: {
      const count = view.getUint32(position + 1, true);
      // Every item takes at least one byte: a count beyond the bytes left is damage, not a list to allocate.
      if (count > bytes.length - position - 5)
        throw new EventDecodingError(`the list at byte ${position} claims ${count} items`);
      reader.position = position + 5;
      const items: unknown[] = [];
      for (let index = 0; index < count; index++) items.push(readValue());
      return items;
    }
    case TAG.JSON:
      return JSON.parse(bytes.toString("utf8", readSpan(position, 1), reader.position));
  }
  throw new EventDecodingError(`byte ${position} holds tag ${tag}, unknown`);
}

/**
 * The value after the tag at `position`: a u32 count of `unitBytes`-byte units, then the units. Returns where they
 * start and moves the reader past their end; throws when they run past the payload.
 */
function readSpan(position: number, unitBytes: number): number {
  const start = position + 5;
  const end = start + reader.view.getUint32(position + 1, true) * unitBytes;
  if (end > reader.bytes.length) throw new EventDecodingError(`the value at byte ${position} runs past the payload`);
  reader.position = end;
  return start;
}

/** True when `payload` is in this binary form (its first byte), false for a JSON payload. */
export function isBinaryPayload(payload: Uint8Array): boolean {
  return payload.length > 0 && payload[0] === FORMAT_BINARY;
}

/** The events of a binary payload, exactly `count` of them; throws EventDecodingError when it holds anything else. */
export function decodeEvents(bytes: Buffer, count: number): EngineEvent[] {
  if (!isBinaryPayload(bytes)) throw new EventDecodingError("the payload is not in the binary form");
  const previous = reader;
  reader = { bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), position: 1 };
  try {
    const events: EngineEvent[] = [];
    for (let index = 0; index < count; index++) {
      const value = readValue();
      if (typeof value !== "object" || value === null || typeof (value as { type?: unknown }).type !== "string")
        throw new EventDecodingError(`event ${index} of the payload is not an event`);
      events.push(value as EngineEvent);
    }
    if (reader.position !== bytes.length)
      throw new EventDecodingError(`${bytes.length - reader.position} bytes follow the payload's ${count} events`);
    return events;
  } catch (error) {
    if (error instanceof EventDecodingError) throw error;
    // A DataView read past the end, or JSON that does not parse.
    throw new EventDecodingError(String(error));
  } finally {
    reader = previous;
  }
}
