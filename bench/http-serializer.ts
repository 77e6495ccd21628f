/**
 * Group http.serializer: the bodies of the two busiest trading answers (a filled market order, a partial
 * close) serialized by the server's response serializer (packages/server/src/response-serializer.ts: the
 * schema with its nullable fields as type lists and its string unions as enums) beside Fastify's default,
 * fast-json-stringify over the schema as written, which runs an Ajv validator for every branch of every
 * `anyOf`. Interleaved rounds in one process.
 *
 * A tight loop keeps both serializers' code and Ajv's validators hot: inside the server, between requests,
 * they are not, and the difference per answer is larger there (BENCHMARKS.md, "HTTP orders").
 */
import type { Static } from "@sinclair/typebox";
import fastJsonStringify from "fast-json-stringify";
import { compileResponseSerializer } from "../packages/server/src/response-serializer.ts";
import { DataResponse } from "../packages/server/src/schemas.ts";
import { CloseResult, OrderResult } from "../packages/server/src/trading-service.ts";
import type { DealView, OrderView, PositionView } from "../packages/server/src/trading-views.ts";
import { measureTogether, row, type BenchContext, type BenchGroup, type Measurement, type Row } from "./harness.ts";

const ANSWERS_PER_RUN = 100_000;
const TIME = "2026-06-02T12:00:00.000Z";

const order: OrderView = {
  id: 3000,
  accountId: 100002,
  symbol: "EURUSD",
  side: "BUY",
  type: "MARKET",
  cmd: 0,
  volume: 0.01,
  quantity: 1000,
  filledVolume: 0.01,
  price: null,
  stopLimitPrice: null,
  sl: null,
  tp: null,
  timeInForce: "FOK",
  expiration: null,
  status: "FILLED",
  statusReason: null,
  reason: "CLIENT",
  clientOrderId: null,
  comment: "",
  magic: 0,
  closePositionId: null,
  createdAt: TIME,
  updatedAt: TIME,
  trailingDistance: null,
  deviation: null,
  triggered: false,
};
const deal: DealView = {
  id: 3000,
  orderId: 3000,
  positionId: 1,
  symbol: "EURUSD",
  side: "BUY",
  entry: "IN",
  volume: 0.01,
  price: 1.0844,
  profit: 0,
  commission: 0,
  swap: 0,
  reason: "CLIENT",
  time: TIME,
};
const position: PositionView = {
  id: 1,
  symbol: "EURUSD",
  side: "BUY",
  volume: 0.05,
  openPrice: 1.0844,
  currentPrice: 1.0851,
  sl: 1.079,
  tp: null,
  trailingDistance: null,
  profit: 3.5,
  swap: 0,
  commission: 0,
  margin: 54.22,
  comment: "",
  magic: 0,
  openOrderId: 3000,
  openTime: TIME,
  updatedAt: TIME,
};
const orderAnswer: { data: Static<typeof OrderResult> } = {
  data: { order, deals: [deal], positionId: 1, duplicate: false },
};
const closeAnswer: { data: Static<typeof CloseResult> } = {
  data: {
    positionId: 1,
    orderId: 3001,
    deals: [{ ...deal, id: 3001, orderId: 3001, side: "SELL", entry: "OUT", profit: 0.7 }],
    position,
    duplicate: false,
  },
};

function serializeMany(serialize: (value: unknown) => string, answer: unknown): number {
  let bytes = 0;
  for (let index = 0; index < ANSWERS_PER_RUN; index++) bytes += serialize(answer).length;
  if (bytes === 0) throw new Error("nothing serialized");
  return ANSWERS_PER_RUN;
}

function serializerBenchmarks(context: BenchContext): Row[] {
  const rows: Row[] = [];
  for (const [what, schema, answer] of [
    ["a filled market order (POST orders)", DataResponse(OrderResult), orderAnswer],
    ["a partial close (DELETE positions/:id)", DataResponse(CloseResult), closeAnswer],
  ] as const) {
    const written = fastJsonStringify(schema);
    const served = compileResponseSerializer({ schema });
    if (served(answer) !== written(answer)) throw new Error(`the two serializers disagree on ${what}`);
    context.log(`http.serializer: ${what}, ${ANSWERS_PER_RUN} answers a run...`);
    const [baseline, server] = measureTogether(
      [
        { name: `${what}: schema as written (Fastify's default)`, fn: () => serializeMany(written, answer) },
        { name: `${what}: the server's serializer`, fn: () => serializeMany(served, answer) },
      ],
      { warmupRuns: 2, runs: 7 },
    ) as [Measurement, Measurement];
    rows.push(
      row("http.serializer", "answers/s", server, baseline, {
        note: `${served(answer).length} bytes; nullable fields as type lists, string unions as enums (no Ajv call)`,
      }),
    );
  }
  return rows;
}

export const httpSerializerGroup: BenchGroup = {
  name: "http.serializer",
  description: "response bodies through the server's serializer beside Fastify's default over the same schema",
  run: serializerBenchmarks,
};
