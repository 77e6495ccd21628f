/**
 * Shared TypeBox pieces of the Client API's wire shapes (seed 001): tables as `structure`+`rows`,
 * objects as `data`, acknowledgements as `{"data":"OK"}`, errors as `{"error","message"}`.
 * Request objects are closed (`additionalProperties: false`): an unknown field is a 400.
 */
import { Type, type Static, type TObject, type TProperties, type TSchema, type TUnsafe } from "@sinclair/typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import { PLATFORM_LIMITS } from "@bourse/store";
import { ApiErrorCodes, type ApiErrorCode } from "./errors.ts";

/**
 * A code of the error registry (errors.ts, the one list), as the enum a generated client can switch on. Titled: the
 * document defines it once (openapi-document.ts `sharedSchemas`).
 */
export const ErrorCode = Type.Union(
  (Object.keys(ApiErrorCodes) as ApiErrorCode[]).map((code) => Type.Literal(code)),
  {
    title: "ErrorCode",
    description:
      "A stable code of the error registry, for programs (the table in the API description gives each one's status " +
      "and meaning); codes are never renamed or reused, and new ones may be added",
  },
);

export const ErrorResponse = Type.Object(
  { error: ErrorCode, message: Type.String({ description: "What went wrong, for people" }) },
  {
    $id: "ErrorResponse",
    title: "ErrorResponse",
    description: "An error: a stable machine-readable code and a message for people",
  },
);

export const OkResponse = Type.Object({ data: Type.Literal("OK") }, { description: "Acknowledgement" });

export function DataResponse<Schema extends TSchema>(schema: Schema) {
  return Type.Object({ data: schema });
}

/** `schema` or null (a field with nothing to say, e.g. no price yet). */
export const Nullable = <Schema extends TSchema>(schema: Schema, description?: string) =>
  Type.Union([schema, Type.Null()], description === undefined ? {} : { description });

export interface Table {
  structure: string[];
  rows: unknown[][];
  nextCursor?: string | null;
}

/** Where a table's schema keeps its columns and row schema for toTable: a symbol, which neither /docs nor the serializer reads. */
const TABLE_OF = Symbol("TableOf");

/** A table route's response schema (TableOf), which also builds the route's answers (toTable). */
export type TableSchema<RowSchema extends TObject, Column extends string> = TUnsafe<Table> & {
  readonly [TABLE_OF]: { readonly columns: readonly Column[]; readonly row: RowSchema };
};

/**
 * The response schema of a table (seed 001) whose rows are `row`'s `columns`, in that order: `structure` is exactly
 * that list, and each row a tuple (`prefixItems`) of the columns' own schemas, so a generated client knows what each
 * cell holds (it had `unknown[][]`). The same value builds the answers (toTable), so the columns a route sends and
 * the ones it documents are one list.
 *
 * It serializes to the bytes the untyped table did: fast-json-stringify knows tuples only as draft-07 `items` arrays,
 * so it reads `items: false` as no item schema and writes each cell with JSON.stringify, as it wrote the `unknown`
 * cells (response-serializer.test.ts compares the two on every table route).
 */
export function TableOf<RowSchema extends TObject, Column extends keyof RowSchema["properties"] & string>(
  columns: readonly Column[],
  row: RowSchema,
): TableSchema<RowSchema, Column> {
  const width = columns.length;
  const schema = Type.Object(
    {
      structure: Type.Unsafe<string[]>({
        type: "array",
        description: "Column names, in row order",
        prefixItems: columns.map((column) => ({ type: "string", const: column })),
        items: false,
        minItems: width,
      }),
      rows: Type.Array(
        Type.Unsafe<unknown[]>({
          type: "array",
          description: "One row: a value per column of `structure`, in its order",
          // Each cell's schema, titled with its column: the document says which cell is which.
          prefixItems: columns.map((column) => ({ ...row.properties[column], title: column })),
          items: false,
          minItems: width,
        }),
      ),
      nextCursor: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    },
    { description: "A table (seed 001): column names and rows of values in that order" },
  );
  return Object.assign(schema as unknown as TUnsafe<Table>, { [TABLE_OF]: { columns, row } });
}

/** A table route's description: its columns, in row order, then `more`. */
export function columnsDescription(table: TableSchema<TObject, string>, more = ""): string {
  return `Columns: ${table[TABLE_OF].columns.join(", ")}.${more ? ` ${more}` : ""}`;
}

/** A table's answer from objects: each row's values in the order of the table's columns. */
export function toTable<RowSchema extends TObject, Column extends string>(
  table: TableSchema<RowSchema, Column>,
  rows: readonly Pick<Static<RowSchema>, Column & keyof Static<RowSchema>>[],
  nextCursor?: string | null,
): Table {
  const { columns } = table[TABLE_OF];
  const answer: Table = {
    structure: [...columns],
    rows: rows.map((row) => columns.map((column) => row[column as Column & keyof Static<RowSchema>])),
  };
  if (nextCursor !== undefined) answer.nextCursor = nextCursor;
  return answer;
}

/** A closed request object: unknown properties are refused. */
export function Closed<Properties extends TProperties>(
  properties: Properties,
  options: { description?: string } = {},
): TObject<Properties> {
  return Type.Object(properties, { ...options, additionalProperties: false });
}

/** A decimal as a JSON number or a string ("1.0844"); the handler reads it exactly (wire.ts). */
export const DECIMAL_PATTERN = "^-?[0-9]{1,17}(\\.[0-9]{1,17})?$";
export const Decimal = Type.Union([Type.Number(), Type.String({ pattern: DECIMAL_PATTERN })]);

/** ISO 8601 with a zone, or epoch milliseconds. */
export const TimeInput = Type.Union([Type.Integer({ minimum: 0 }), Type.String({ maxLength: 40 })]);

/** Rows of a page of a user's list (notifications, alert logs) when the query names no `limit`. */
export const DEFAULT_PAGE_ROWS = 100;

/** A page of a user's list, newest first: `limit` rows after the previous page's `nextCursor`. */
export const PageQuery = Closed({
  limit: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: PLATFORM_LIMITS.pageLimit,
      default: DEFAULT_PAGE_ROWS,
      description: `Rows per page, 1 to ${PLATFORM_LIMITS.pageLimit}; ${DEFAULT_PAGE_ROWS} when omitted`,
    }),
  ),
  cursor: Type.Optional(
    Type.String({ pattern: "^[0-9]{1,15}$", description: "The `nextCursor` of the previous page" }),
  ),
});

/** A trading account's login in a path. */
export const AccountIdParams = Closed({
  accountId: Type.String({ pattern: "^[0-9]{1,15}$", description: "The account's login" }),
});

export const Email = Type.String({ format: "email", maxLength: 254, minLength: 3 });

/** The error statuses most authenticated routes can answer, for the OpenAPI document. */
export const authenticatedErrors = {
  400: ErrorResponse,
  401: ErrorResponse,
  403: ErrorResponse,
  404: ErrorResponse,
  429: ErrorResponse,
  503: ErrorResponse,
} as const;

/**
 * preValidation of POST routes whose body is optional: no body at all (as `requests.post(url)` sends, or an empty one,
 * json-body.ts) is `{}`. A body of JSON `null` is a body, which the schema refuses: found by the audit of bad input of
 * 7 December (sixth session), `null` was taken for none, and close-all closed every position of the account.
 */
export async function emptyBodyIsObject(request: FastifyRequest): Promise<void> {
  if (request.body === undefined) request.body = {};
}

/**
 * The header of a snapshot answer (an account, its positions, its working orders) naming the `seq` of the last account
 * event it reflects: a terminal that subscribed to the stream first applies on it only the events of a higher `seq`,
 * and may resume from it (`sinceSeq`). Found by the audit of a terminal's journey of 7 December (sixth session): no
 * answer said where it stood, so joining a snapshot to the stream double-counted or missed the deals between.
 */
export const SNAPSHOT_SEQ_HEADER = "bourse-seq";

/** Sets SNAPSHOT_SEQ_HEADER; called in the same turn as the state is read, before any await. */
export function markSnapshotSequence(reply: FastifyReply, sequence: number): void {
  void reply.header(SNAPSHOT_SEQ_HEADER, String(sequence));
}

/** What /docs says of the header on the routes that send it. */
export const SNAPSHOT_SEQ_DESCRIPTION =
  "The answer's `Bourse-Seq` header is the seq of the last account event it reflects: apply on it only stream " +
  "events of a higher seq, or resume the stream from it (subscribe's `sinceSeq`).";
