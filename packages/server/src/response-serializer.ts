/**
 * The serializer of every response body: fast-json-stringify, as Fastify's own, over the route's response
 * schema rewritten into an equivalent that serializes without validating.
 *
 * fast-json-stringify picks the branch of an `anyOf` by running an Ajv validator against each branch in turn,
 * for every value (the code its `buildOneOf` generates). TypeBox writes a nullable field as
 * `anyOf: [X, {type: "null"}]` and a string union as `anyOf` of `const`s, so an order's answer ran some twenty
 * validators (one for a date-time's format among them): half its serialization time in a hot loop (bench
 * http.serializer), a third of a larger time inside the server, where they run cold. The same schemas said as
 * `type: [X's type, "null"]` and `enum` serialize by `typeof` checks alone, to the same bytes for every value
 * the original schema admits (response-serializer.test.ts checks every route's schemas). The OpenAPI document
 * keeps the schemas as written; only the serializer sees the rewrite.
 */
import fastJsonStringify from "fast-json-stringify";

type JsonSchema = { readonly [keyword: string]: unknown };

/** `{type: "null"}`, whatever it says beside (a description). */
function isNullSchema(schema: JsonSchema): boolean {
  return schema.type === "null" && schema.anyOf === undefined && schema.const === undefined;
}

/** Keywords that make a branch more than "a value of this JSON type": such a union is left to Ajv. */
const BRANCHING_KEYWORDS = ["anyOf", "oneOf", "allOf", "not", "if", "$ref", "const"] as const;

function isPlainTyped(schema: JsonSchema): boolean {
  return typeof schema.type === "string" && BRANCHING_KEYWORDS.every((keyword) => schema[keyword] === undefined);
}

function isObject(value: unknown): value is JsonSchema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The schema with every `anyOf` of string constants made a string `enum`, and every `anyOf` of one plainly
 * typed schema and null made that schema with a type list; everything else as it was. A copy: the route's
 * schema (which the OpenAPI document shows) is not changed. TypeBox's symbol keys are not copied
 * (fast-json-stringify reads none).
 */
export function serializableSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(serializableSchema);
  if (!isObject(schema)) return schema;
  const copy: Record<string, unknown> = {};
  for (const [keyword, value] of Object.entries(schema)) copy[keyword] = serializableSchema(value);
  const branches = copy.anyOf;
  if (!Array.isArray(branches) || !branches.every(isObject) || branches.length === 0) return copy;
  const { anyOf: _branches, ...siblings } = copy;
  if (branches.every((branch) => typeof branch.const === "string" && (branch.type ?? "string") === "string"))
    return { ...siblings, type: "string", enum: branches.map((branch) => branch.const) };
  const nonNull = branches.filter((branch) => !isNullSchema(branch));
  if (branches.length === 2 && nonNull.length === 1 && isPlainTyped(nonNull[0]!))
    return { ...nonNull[0], ...siblings, type: [nonNull[0]!.type, "null"] };
  return copy;
}

/** Fastify's serializer compiler (`setSerializerCompiler`): one serializer per route and status. */
export function compileResponseSerializer({ schema }: { schema: unknown }): (value: unknown) => string {
  return fastJsonStringify(serializableSchema(schema) as Parameters<typeof fastJsonStringify>[0]);
}
