/**
 * The response serializer (response-serializer.ts) rewrites nullable fields and string unions so that
 * fast-json-stringify needs no validator to pick a branch. The rewrite must not change a byte: for every
 * response schema of every registered route (`app.routeRegistry`, so a new route cannot escape it), values
 * drawn from the schema serialize the same through the rewritten schema as through the one written.
 */
import { Type } from "@sinclair/typebox";
import fc from "fast-check";
import fastJsonStringify from "fast-json-stringify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileResponseSerializer, serializableSchema } from "../src/response-serializer.ts";
import { DataResponse, Decimal } from "../src/schemas.ts";
import { CloseResult, OrderResult } from "../src/trading-service.ts";
import { startTestServer, type TestServer } from "./helpers.ts";

type JsonSchema = { readonly [keyword: string]: unknown };

const RUNS_PER_SCHEMA = Number(process.env.BOURSE_SERIALIZER_RUNS ?? 25);

/** Times fast-json-stringify's date-time accepts (ISO 8601 with a zone), between 1970 and 2100. */
const dateTime = fc
  .integer({ min: 0, max: Date.UTC(2100, 0, 1) })
  .map((milliseconds) => new Date(milliseconds).toISOString());

/**
 * Values a JSON schema admits, for the keywords the server's response schemas use; any other keyword is an
 * error here, so a schema this cannot draw from fails the test instead of being skipped.
 */
function valuesOf(schema: JsonSchema): fc.Arbitrary<unknown> {
  const known = new Set([
    "type",
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "items",
    "prefixItems",
    "anyOf",
    "allOf",
    "const",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "description",
    "default",
    "examples",
    "title",
    "$id",
  ]);
  for (const keyword of Object.keys(schema))
    if (!known.has(keyword)) throw new Error(`no values drawn for keyword ${keyword} in ${JSON.stringify(schema)}`);
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
  if (Array.isArray(schema.anyOf)) return fc.oneof(...(schema.anyOf as JsonSchema[]).map(valuesOf));
  if (Array.isArray(schema.allOf))
    return fc
      .tuple(...(schema.allOf as JsonSchema[]).map(valuesOf))
      .map((parts) => Object.assign({}, ...(parts as object[])) as unknown);
  if (Array.isArray(schema.type))
    return fc.oneof(...(schema.type as string[]).map((type) => valuesOf({ ...schema, type })));
  // A tuple (a table's row): a value for each of its items, and no more (the tables' `items: false`).
  if (Array.isArray(schema.prefixItems)) return fc.tuple(...(schema.prefixItems as JsonSchema[]).map(valuesOf));
  switch (schema.type) {
    case undefined:
      return fc.jsonValue({ maxDepth: 2 });
    case "null":
      return fc.constant(null);
    case "boolean":
      return fc.boolean();
    case "integer":
      return fc.integer({
        min: typeof schema.minimum === "number" ? schema.minimum : Number.MIN_SAFE_INTEGER,
        max: typeof schema.maximum === "number" ? schema.maximum : Number.MAX_SAFE_INTEGER,
      });
    case "number":
      return fc.double({
        noNaN: true,
        noDefaultInfinity: true,
        ...(typeof schema.minimum === "number" ? { min: schema.minimum } : {}),
        ...(typeof schema.maximum === "number" ? { max: schema.maximum } : {}),
      });
    case "string":
      if (schema.format === "date-time") return dateTime;
      if (typeof schema.pattern === "string") return fc.stringMatching(new RegExp(schema.pattern));
      return fc.string({
        unit: "binary",
        minLength: typeof schema.minLength === "number" ? schema.minLength : 0,
        maxLength: typeof schema.maxLength === "number" ? Math.min(schema.maxLength, 20) : 20,
      });
    case "array": {
      // A few items: at least as many as the schema asks (the contract specification's seven swapDays).
      const minLength = typeof schema.minItems === "number" ? schema.minItems : 0;
      return fc.array(valuesOf((schema.items ?? {}) as JsonSchema), { minLength, maxLength: Math.max(minLength, 3) });
    }
    case "object": {
      const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
      const required = (schema.required ?? []) as string[];
      const record = fc.record(
        Object.fromEntries(Object.entries(properties).map(([name, property]) => [name, valuesOf(property)])),
        { requiredKeys: required },
      );
      const patterns = Object.values((schema.patternProperties ?? {}) as Record<string, JsonSchema>);
      if (patterns.length === 0) return record;
      return fc
        .tuple(record, fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), valuesOf(patterns[0]!)))
        .map(([named, extra]) => ({ ...extra, ...named }));
    }
    default:
      throw new Error(`no values drawn for type ${JSON.stringify(schema.type)}`);
  }
}

/** The schema as JSON (TypeBox's symbol keys dropped), as both serializers read it. */
function plain(schema: unknown): JsonSchema {
  return JSON.parse(JSON.stringify(schema)) as JsonSchema;
}

/**
 * The JSON bodies a response documents: the schema itself, or with a `content` map (a route that answers another
 * media type, as /metrics answers Prometheus text) its JSON media types' schemas; text is sent as it is.
 */
function jsonBodiesOf(response: JsonSchema): JsonSchema[] {
  if (typeof response.content !== "object" || response.content === null) return [response];
  return Object.entries(response.content as Record<string, { schema: JsonSchema }>)
    .filter(([mediaType]) => mediaType.includes("json"))
    .map(([, { schema }]) => schema);
}

describe("serializableSchema", () => {
  it("makes an order's string unions enums and its nullable fields type lists, keeping their descriptions", () => {
    const schema = serializableSchema(DataResponse(OrderResult)) as {
      properties: { data: { properties: { order: { properties: Record<string, JsonSchema> } } } };
    };
    const order = schema.properties.data.properties.order.properties;
    expect(order.side).toEqual({ type: "string", enum: ["BUY", "SELL"] });
    expect(order.status).toEqual({
      type: "string",
      enum: ["PLACED", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "EXPIRED", "REJECTED"],
    });
    expect(order.price).toEqual({
      type: ["number", "null"],
      description: "Limit or stop price; for a market order the requested price, if any",
    });
    expect(order.expiration).toEqual({ type: ["string", "null"], format: "date-time" });
    expect(order.cmd).toMatchObject({ type: ["integer", "null"], minimum: 0, maximum: 5 });
    expect(JSON.stringify(schema)).not.toContain("anyOf");
  });

  it("makes a nullable object a type list with its properties", () => {
    const schema = serializableSchema(CloseResult) as { properties: { position: JsonSchema } };
    expect(schema.properties.position.type).toEqual(["object", "null"]);
    expect(Object.keys(schema.properties.position.properties as object)).toContain("volume");
  });

  it("leaves other unions to the validator, and the schema it was given unchanged", () => {
    const numberOrText = Type.Object({ value: Decimal });
    expect(serializableSchema(numberOrText)).toEqual(plain(numberOrText));
    const nullableUnion = Type.Union([Type.Union([Type.Number(), Type.String()]), Type.Null()]);
    expect(serializableSchema(nullableUnion)).toEqual(plain(nullableUnion));
    const nullableConstant = Type.Union([Type.Literal(1), Type.Null()]);
    expect(serializableSchema(nullableConstant)).toEqual(plain(nullableConstant));
    const before = JSON.stringify(DataResponse(OrderResult));
    serializableSchema(DataResponse(OrderResult));
    expect(JSON.stringify(DataResponse(OrderResult))).toBe(before);
  });

  it("still refuses a value its schema does not admit (a string where a nullable number goes)", () => {
    const serialize = compileResponseSerializer({
      schema: Type.Object({ price: Type.Union([Type.Number(), Type.Null()]) }),
    });
    expect(serialize({ price: null })).toBe('{"price":null}');
    expect(serialize({ price: 1.5 })).toBe('{"price":1.5}');
    expect(() => serialize({ price: [] })).toThrow(TypeError);
  });
});

describe("every route's responses serialize to the same bytes", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("for values drawn from each response schema, through the rewritten schema and the one written", () => {
    const schemas = server.app.routeRegistry.flatMap((route) =>
      Object.entries(route.responses).flatMap(([status, schema]) =>
        jsonBodiesOf(plain(schema)).map((body) => ({ name: `${route.method} ${route.url} ${status}`, schema: body })),
      ),
    );
    expect(schemas.length).toBeGreaterThan(100);
    let rewritten = 0;
    for (const { name, schema } of schemas) {
      const written = fastJsonStringify(schema as unknown as Parameters<typeof fastJsonStringify>[0]);
      const served = compileResponseSerializer({ schema });
      if (JSON.stringify(serializableSchema(schema)) !== JSON.stringify(schema)) rewritten += 1;
      fc.assert(
        fc.property(valuesOf(schema), (value) => {
          expect(served(value), name).toBe(written(value));
        }),
        { numRuns: RUNS_PER_SCHEMA },
      );
    }
    // The rewrite reached the schemas it is for (the trading and account views), not none of them.
    expect(rewritten).toBeGreaterThan(20);
  });

  // A table route documents each column's schema (TableOf: `rows.items.prefixItems`), which fast-json-stringify does
  // not read (it knows tuples as draft-07 `items` arrays): a row is written cell by cell as the untyped table's
  // `unknown` cells were, so the typed tables changed no byte, whatever a cell holds.
  it("for every table route, as the untyped table they replaced", () => {
    const untypedTable = Type.Object({
      structure: Type.Array(Type.String()),
      rows: Type.Array(Type.Array(Type.Unknown())),
      nextCursor: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    });
    const untyped = compileResponseSerializer({ schema: untypedTable });
    const anyTable = fc.record(
      {
        structure: fc.array(fc.string()),
        rows: fc.array(fc.array(fc.jsonValue({ maxDepth: 2 }))),
        nextCursor: fc.option(fc.string()),
      },
      { requiredKeys: ["structure", "rows"] },
    );
    const tables = server.app.routeRegistry.filter((route) => {
      const rows = (plain(route.responses["200"] ?? {}).properties as Record<string, JsonSchema> | undefined)?.rows;
      return Array.isArray((rows?.items as JsonSchema | undefined)?.prefixItems);
    });
    expect(tables.length).toBeGreaterThanOrEqual(27);
    for (const route of tables) {
      const name = `${route.method} ${route.url}`;
      const served = compileResponseSerializer({ schema: route.responses["200"] });
      for (const values of [valuesOf(plain(route.responses["200"])), anyTable])
        fc.assert(
          fc.property(values, (value) => {
            expect(served(value), name).toBe(untyped(value));
          }),
          { numRuns: RUNS_PER_SCHEMA },
        );
    }
  });
});
