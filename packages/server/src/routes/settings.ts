/**
 * Per-user terminal preferences (seed 000 "Settings", API.md): one JSON object per user, at most
 * 64 KiB as JSON. GET reads (`{}` before the first save), PUT replaces, POST merges (shallow: each
 * top-level key of the body replaces the stored one; a key set to null is kept as null).
 */
import { PLATFORM_LIMITS } from "@bourse/store";
import { Type } from "@sinclair/typebox";
import type { RouteModule } from "../app.ts";
import { DataResponse, authenticatedErrors } from "../schemas.ts";

const MAX_KEYS = PLATFORM_LIMITS.settingsKeys;

// Key bounds as `propertyNames`: a string-keyed record drops its key schema's bounds (a 300-character key and "" were
// taken; the audit of 7 December).
const Document = Type.Record(Type.String(), Type.Unknown(), {
  maxProperties: MAX_KEYS,
  propertyNames: { minLength: 1, maxLength: 200 },
  description: `A JSON object of at most ${MAX_KEYS} top-level keys and ${PLATFORM_LIMITS.settingsBytes} bytes as JSON`,
});

const SettingsResponse = DataResponse(
  Type.Record(Type.String(), Type.Unknown(), { description: "The user's settings document" }),
);

export const settingsRoutes: RouteModule = (app, { platform }) => {
  app.get(
    "/api/v1/settings",
    {
      schema: {
        tags: ["Settings"],
        summary: "The user's settings document (`{}` before the first save)",
        response: { 200: SettingsResponse, ...authenticatedErrors },
      },
    },
    async (request) => ({ data: await platform.store.getSettings(request.principal!.userId) }),
  );

  app.put(
    "/api/v1/settings",
    {
      schema: {
        tags: ["Settings"],
        summary: "Replace the settings document; answers it",
        body: Document,
        response: { 200: SettingsResponse, ...authenticatedErrors },
      },
    },
    async (request) => ({
      data: await platform.store.replaceSettings(request.principal!.userId, request.body, platform.clock.now()),
    }),
  );

  app.post(
    "/api/v1/settings",
    {
      schema: {
        tags: ["Settings"],
        summary:
          "Merge into the settings document: each top-level key given replaces the stored one; answers the result",
        body: Document,
        response: { 200: SettingsResponse, ...authenticatedErrors },
      },
    },
    async (request) => ({
      data: await platform.store.mergeSettings(request.principal!.userId, request.body, platform.clock.now()),
    }),
  );
};
