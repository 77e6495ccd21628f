/**
 * API keys for the Automation API and the streams (API.md "API keys", DESIGN.md section 5): a key is
 * bound to one of the user's accounts and one scope (read, trade, full). Creating or rotating answers
 * the whole key (`key`, `tk_live_...`) once; it is never shown again: the server keeps its SHA-256 only.
 * Rotation revokes the old key at once; so does DELETE. The list shows revoked keys too, without secrets.
 */
import { API_KEY_SCOPES, PLATFORM_LIMITS, type ApiKey } from "@bourse/store";
import { Type, type Static } from "@sinclair/typebox";
import { ACTIVE_API_KEYS_PER_USER, ApiKeyService, type IssuedApiKey } from "../api-keys.ts";
import type { RouteModule } from "../app.ts";
import {
  Closed,
  DataResponse,
  ErrorResponse,
  OkResponse,
  TableOf,
  authenticatedErrors,
  columnsDescription,
  toTable,
} from "../schemas.ts";
import { optionalTimeToWire, timeToWire } from "../wire.ts";

const Scope = Type.Union(
  API_KEY_SCOPES.map((scope) => Type.Literal(scope)),
  { description: "read: the GETs; trade: the GETs and trading; full: everything" },
);

const ApiKeyViewSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  accountId: Type.Integer(),
  scope: Scope,
  prefix: Type.String({ description: "The public part of the key: `tk_live_<prefix>_...`" }),
  status: Type.Union([Type.Literal("active"), Type.Literal("revoked")]),
  createdAt: Type.String({ format: "date-time" }),
  lastUsedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()], {
    description: "Recorded at most once a minute",
  }),
  revokedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  rotatedFrom: Type.Union([Type.String(), Type.Null()], { description: "The key this one replaced" }),
});
type ApiKeyView = Static<typeof ApiKeyViewSchema>;

const IssuedSchema = Type.Intersect([
  ApiKeyViewSchema,
  Type.Object({ key: Type.String({ description: "The whole key, shown this once: `tk_live_...`" }) }),
]);

export const ApiKeyTable = TableOf(Object.keys(ApiKeyViewSchema.properties) as (keyof ApiKeyView)[], ApiKeyViewSchema);

export function apiKeyView(key: ApiKey): ApiKeyView {
  return {
    id: key.id,
    name: key.name,
    accountId: key.accountId,
    scope: key.scope,
    prefix: key.prefix,
    status: key.revokedAt === null ? "active" : "revoked",
    createdAt: timeToWire(key.createdAt),
    lastUsedAt: optionalTimeToWire(key.lastUsedAt),
    revokedAt: optionalTimeToWire(key.revokedAt),
    rotatedFrom: key.rotatedFrom,
  };
}

function issuedView(issued: IssuedApiKey): Static<typeof IssuedSchema> {
  return { ...apiKeyView(issued.key), key: issued.secret };
}

/** An API key's `id` as a path takes it (the Client API's and the back office's routes). */
export const KeyIdParameter = Type.String({
  pattern: "^[A-Za-z0-9_.:-]{1,128}$",
  description: "The key's `id` (not the key itself)",
});
const KeyParams = Closed({ id: KeyIdParameter });

export const apiKeyRoutes: RouteModule = (app, { platform }) => {
  const keys = ApiKeyService.for(platform);

  app.get(
    "/api/v1/api-keys",
    {
      schema: {
        tags: ["API keys"],
        summary: `The user's API keys, the active ones first, each newest first, revoked ones included (table, at most ${PLATFORM_LIMITS.apiKeysListed}); never their secrets`,
        description: columnsDescription(ApiKeyTable),
        response: { 200: ApiKeyTable, ...authenticatedErrors },
      },
    },
    async (request) => toTable(ApiKeyTable, (await keys.list(request.principal!.userId)).map(apiKeyView)),
  );

  app.put(
    "/api/v1/api-keys",
    {
      schema: {
        tags: ["API keys"],
        summary: "Create an API key for one of the user's accounts; answers the whole key once (`key`)",
        description: `At most ${ACTIVE_API_KEYS_PER_USER} active keys per user (LIMIT_REACHED). An account of another user is FORBIDDEN.`,
        body: Closed({
          name: Type.String({ minLength: 1, maxLength: PLATFORM_LIMITS.nameLength }),
          accountId: Type.Integer({ minimum: 1 }),
          scope: Scope,
        }),
        response: { 200: DataResponse(IssuedSchema), ...authenticatedErrors, 409: ErrorResponse },
      },
    },
    async (request) => ({ data: issuedView(await keys.create(request.principal!.userId, request.body)) }),
  );

  app.post(
    "/api/v1/api-keys/:id/rotate",
    {
      schema: {
        tags: ["API keys"],
        summary: "Rotate a key: a new key (same account, name, scope) shown once; the old one stops working at once",
        params: KeyParams,
        response: { 200: DataResponse(IssuedSchema), ...authenticatedErrors },
      },
    },
    async (request) => ({ data: issuedView(await keys.rotate(request.principal!.userId, request.params.id)) }),
  );

  app.delete(
    "/api/v1/api-keys/:id",
    {
      schema: {
        tags: ["API keys"],
        summary: "Revoke a key: it stops working at once",
        params: KeyParams,
        response: { 200: OkResponse, ...authenticatedErrors },
      },
    },
    async (request) => {
      await keys.revoke(request.principal!.userId, request.params.id);
      return { data: "OK" as const };
    },
  );
};
