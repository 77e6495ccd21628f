/**
 * Private user scripts (seed 000 "Scripts", API.md): name, language, source, description. The list
 * leaves the source out; one script carries it. Another user's script is a 404, never data.
 */
import { PLATFORM_LIMITS, type Script, type ScriptSummary } from "@bourse/store";
import { Type, type Static } from "@sinclair/typebox";
import { randomUUID } from "node:crypto";
import type { RouteModule } from "../app.ts";
import { ApiError } from "../errors.ts";
import {
  Closed,
  DataResponse,
  ErrorResponse,
  OkResponse,
  TableOf,
  columnsDescription,
  authenticatedErrors,
  toTable,
} from "../schemas.ts";
import { timeToWire } from "../wire.ts";

const Name = Type.String({ minLength: 1, maxLength: PLATFORM_LIMITS.nameLength });
const Language = Type.String({
  pattern: "^[A-Za-z0-9_.+-]{1,32}$",
  description: "Free text such as `javascript`, `python`, `mql5`",
});
const Source = Type.String({
  maxLength: PLATFORM_LIMITS.scriptSourceBytes,
  description: `At most ${PLATFORM_LIMITS.scriptSourceBytes} bytes as UTF-8`,
});
const Description = Type.String({ maxLength: PLATFORM_LIMITS.descriptionLength });
const ScriptParams = Closed({
  id: Type.String({ pattern: "^[A-Za-z0-9_.:-]{1,128}$", description: "The script's id" }),
});

const ScriptSummarySchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  language: Type.String(),
  description: Type.String(),
  createdAt: Type.String({ format: "date-time" }),
  updatedAt: Type.String({ format: "date-time" }),
});
const ScriptSchema = Type.Intersect([ScriptSummarySchema, Type.Object({ source: Type.String() })]);
type ScriptSummaryView = Static<typeof ScriptSummarySchema>;

const ScriptTable = TableOf(["id", "name", "language", "description", "createdAt", "updatedAt"], ScriptSummarySchema);

function summaryView(script: ScriptSummary): ScriptSummaryView {
  return {
    id: script.id,
    name: script.name,
    language: script.language,
    description: script.description,
    createdAt: timeToWire(script.createdAt),
    updatedAt: timeToWire(script.updatedAt),
  };
}

function scriptView(script: Script): Static<typeof ScriptSchema> {
  return { ...summaryView(script), source: script.source };
}

const notFound = () => new ApiError("NOT_FOUND", "No such script");

export const scriptRoutes: RouteModule = (app, { platform }) => {
  app.get(
    "/api/v1/scripts",
    {
      schema: {
        tags: ["Scripts"],
        summary: "The user's scripts, oldest first, without their source (table)",
        description: columnsDescription(ScriptTable),
        response: { 200: ScriptTable, ...authenticatedErrors },
      },
    },
    async (request) =>
      toTable(ScriptTable, (await platform.store.listScripts(request.principal!.userId)).map(summaryView)),
  );

  app.get(
    "/api/v1/scripts/:id",
    {
      schema: {
        tags: ["Scripts"],
        summary: "One script with its source",
        params: ScriptParams,
        response: { 200: DataResponse(ScriptSchema), ...authenticatedErrors },
      },
    },
    async (request) => {
      const script = await platform.store.getScript(request.principal!.userId, request.params.id);
      if (!script) throw notFound();
      return { data: scriptView(script) };
    },
  );

  app.put(
    "/api/v1/scripts",
    {
      schema: {
        tags: ["Scripts"],
        summary: `Add a script (at most ${PLATFORM_LIMITS.scriptsPerUser} per user); answers it with its id`,
        body: Closed({ name: Name, language: Language, source: Source, description: Type.Optional(Description) }),
        response: { 200: DataResponse(ScriptSchema), ...authenticatedErrors, 409: ErrorResponse },
      },
    },
    async (request) => {
      const userId = request.principal!.userId;
      if ((await platform.store.listScripts(userId)).length >= PLATFORM_LIMITS.scriptsPerUser)
        throw new ApiError("LIMIT_REACHED", `At most ${PLATFORM_LIMITS.scriptsPerUser} scripts per user`);
      const script = await platform.store.createScript({
        id: randomUUID(),
        userId,
        ...request.body,
        createdAt: platform.clock.now(),
      });
      return { data: scriptView(script) };
    },
  );

  app.post(
    "/api/v1/scripts/:id",
    {
      schema: {
        tags: ["Scripts"],
        summary: "Update a script: the fields given replace the stored ones",
        params: ScriptParams,
        body: Type.Object(
          {
            name: Type.Optional(Name),
            language: Type.Optional(Language),
            source: Type.Optional(Source),
            description: Type.Optional(Description),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: DataResponse(ScriptSchema), ...authenticatedErrors },
      },
    },
    async (request) => {
      const script = await platform.store.updateScript(
        request.principal!.userId,
        request.params.id,
        request.body,
        platform.clock.now(),
      );
      if (!script) throw notFound();
      return { data: scriptView(script) };
    },
  );

  app.delete(
    "/api/v1/scripts/:id",
    {
      schema: {
        tags: ["Scripts"],
        summary: "Delete a script",
        params: ScriptParams,
        response: { 200: OkResponse, ...authenticatedErrors },
      },
    },
    async (request) => {
      if (!(await platform.store.deleteScript(request.principal!.userId, request.params.id))) throw notFound();
      return { data: "OK" as const };
    },
  );
};
