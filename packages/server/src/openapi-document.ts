/**
 * Rewrites of the OpenAPI document @fastify/swagger builds from the routes' schemas, for the code generators that read
 * it. They change the document only, never the schemas that validate.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The one value of a schema that is exactly `{type, enum: [value]}` (TypeBox's Literal), else undefined. */
function literalOf(schema: Json): { type: string; value: Json } | undefined {
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) return undefined;
  const keys = Object.keys(schema);
  if (keys.length !== 2 || typeof schema.type !== "string" || !Array.isArray(schema.enum)) return undefined;
  if (schema.enum.length !== 1) return undefined;
  return { type: schema.type, value: schema.enum[0]! };
}

/**
 * TypeBox writes a choice of literals (`Type.Union([Type.Literal("BUY"), Type.Literal("SELL")])`) as an `anyOf` of
 * one-value enums. openapi-generator and its kind make a wrapper type with a variant per member of an `anyOf`, but an
 * enum of `enum`: the literals of an `anyOf` are gathered into one enum per type, where the first of them stood, and
 * an `anyOf` left with one member becomes that member, its other words (description, default) kept. Anything else is
 * copied as it is.
 */
export function literalUnionsAsEnums<Document extends object>(document: Document): Document {
  return rewrite(document as unknown as Json) as unknown as Document;
}

function rewrite(document: Json): Json {
  if (Array.isArray(document)) return document.map(rewrite);
  if (document === null || typeof document !== "object") return document;
  const copy: { [key: string]: Json } = {};
  for (const [key, value] of Object.entries(document)) copy[key] = rewrite(value);
  if (!Array.isArray(copy.anyOf)) return copy;
  const members: Json[] = [];
  const enumOfType = new Map<string, Json[]>();
  for (const member of copy.anyOf) {
    const literal = literalOf(member);
    if (literal === undefined) {
      members.push(member);
      continue;
    }
    const values = enumOfType.get(literal.type);
    if (values !== undefined) values.push(literal.value);
    else {
      const gathered = [literal.value];
      enumOfType.set(literal.type, gathered);
      members.push({ type: literal.type, enum: gathered });
    }
  }
  const { anyOf: _members, ...words } = copy;
  const only = members.length === 1 ? members[0] : undefined;
  if (only !== undefined && only !== null && typeof only === "object" && !Array.isArray(only))
    return { ...only, ...words };
  return { ...words, anyOf: members };
}

type JsonObject = { [key: string]: Json };

function isJsonObject(value: Json | undefined): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * Records `definition` as the component `name` of `shared` and answers a reference to it. A second definition under
 * one name must be the first: a name means one thing.
 */
function share(shared: JsonObject, kind: "schemas" | "headers", name: string, definition: Json): Json {
  const known = shared[name];
  if (known !== undefined && JSON.stringify(known) !== JSON.stringify(definition))
    throw new Error(`The OpenAPI document defines ${kind} ${name} two ways`);
  shared[name] = definition;
  return { $ref: `#/components/${kind}/${name}` };
}

function withComponents(document: JsonObject, kind: "schemas" | "headers", shared: JsonObject): JsonObject {
  const components = isJsonObject(document.components) ? document.components : {};
  const existing = isJsonObject(components[kind]) ? components[kind] : {};
  return { ...document, components: { ...components, [kind]: { ...existing, ...shared } } };
}

/**
 * The response headers written out on every response that sends them (RateLimit-*, Retry-After, Bourse-Seq: some
 * hundreds of responses) defined once, in `components.headers`, and referred to from each response.
 */
export function sharedResponseHeaders<Document extends object>(document: Document): Document {
  const copy = structuredClone(document) as unknown as JsonObject;
  const shared: JsonObject = {};
  for (const operations of Object.values(isJsonObject(copy.paths) ? copy.paths : {}))
    for (const operation of Object.values(isJsonObject(operations) ? operations : {})) {
      const responses = isJsonObject(operation) ? operation.responses : undefined;
      for (const response of Object.values(isJsonObject(responses) ? responses : {})) {
        const headers = isJsonObject(response) ? response.headers : undefined;
        if (!isJsonObject(headers)) continue;
        for (const [name, header] of Object.entries(headers)) headers[name] = share(shared, "headers", name, header);
      }
    }
  return withComponents(copy, "headers", shared) as unknown as Document;
}

/**
 * The schemas titled one of `titles` (the error bodies and the error code, written out on most of the document's
 * hundreds of responses) defined once, in `components.schemas` under their title, and referred to wherever they
 * stood; one inside another is referred to from it.
 */
export function sharedSchemas<Document extends object>(document: Document, titles: readonly string[]): Document {
  const shared: JsonObject = {};
  const refer = (node: Json): Json => {
    if (Array.isArray(node)) return node.map(refer);
    if (!isJsonObject(node)) return node;
    const copy: JsonObject = {};
    for (const [key, value] of Object.entries(node)) copy[key] = refer(value);
    return typeof copy.title === "string" && titles.includes(copy.title)
      ? share(shared, "schemas", copy.title, copy)
      : copy;
  };
  return withComponents(refer(document as unknown as Json) as JsonObject, "schemas", shared) as unknown as Document;
}

/**
 * The request bodies of `routes` (Fastify's method and URL, `:name` for a path parameter) marked optional: @fastify/swagger
 * writes every body `required: true`, and these routes take no body at all (closing a whole position, say).
 */
export function optionalRequestBodies<Document extends object>(
  document: Document,
  routes: readonly { readonly method: string; readonly url: string }[],
): Document {
  const copy = structuredClone(document) as unknown as JsonObject;
  const paths = isJsonObject(copy.paths) ? copy.paths : {};
  for (const { method, url } of routes) {
    const operations = paths[url.replace(/:([A-Za-z0-9_]+)/g, "{$1}")];
    const operation = isJsonObject(operations) ? operations[method.toLowerCase()] : undefined;
    const requestBody = isJsonObject(operation) ? operation.requestBody : undefined;
    if (!isJsonObject(requestBody)) throw new Error(`${method} ${url} has no request body in the OpenAPI document`);
    requestBody.required = false;
  }
  return copy as unknown as Document;
}
