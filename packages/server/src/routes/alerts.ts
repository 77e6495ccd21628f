/**
 * Price alerts and their trigger history (seed 000/001 "Price Alerts", API.md "Alerts").
 *
 * An alert watches one symbol's BID or ASK (`side`, or 0/1) for one of 13 conditions (by name or code):
 * 0 CROSSING_UP, 1 CROSSING_DOWN, 2 GREATER_THAN, 3 LESS_THAN, 12 CROSSING_EITHER need `targetPrice`;
 * 4 ENTERING_CHANNEL, 5 EXITING_CHANNEL, 6 INSIDE_CHANNEL, 7 OUTSIDE_CHANNEL need `channelLow` <
 * `channelHigh`; 8 MOVING_UP, 9 MOVING_DOWN need `moveThreshold` > 0 as a price distance, 10
 * MOVING_UP_PERCENT, 11 MOVING_DOWN_PERCENT as a percent (2 decimals), measured from `referencePrice`
 * (by default the price when the alert is armed). A parameter the condition does not use is refused.
 * Prices are decimals with the instrument's digits. Statuses: active, triggered, disabled, expired; a
 * client sets active or disabled, and setting active re-arms the alert (a MOVING_* alert then measures
 * from the current price unless the update gives `referencePrice`). The evaluation is alert-engine.ts.
 */
import { maxPricePoints, parseDecimal, type InstrumentSpec } from "@bourse/core";
import {
  ALERT_CONDITIONS,
  PLATFORM_LIMITS,
  type AlertCondition,
  type AlertSide,
  type PriceAlert,
  type PriceAlertPatch,
} from "@bourse/store";
import { Type, type Static } from "@sinclair/typebox";
import { randomUUID } from "node:crypto";
import {
  AlertEngine,
  AlertLogTable,
  AlertTable,
  AlertViewSchema,
  CHANNEL_CONDITIONS,
  MOVE_CONDITIONS,
  PERCENT_CONDITIONS,
  TARGET_CONDITIONS,
  alertLogView,
  alertView,
  canTrigger,
  isMovingCondition,
} from "../alert-engine.ts";
import { formatPrice } from "../notifications.ts";
import type { RouteModule } from "../app.ts";
import { ApiError } from "../errors.ts";
import type { Platform } from "../platform.ts";
import {
  Closed,
  DEFAULT_PAGE_ROWS,
  DataResponse,
  ErrorResponse,
  OkResponse,
  PageQuery,
  authenticatedErrors,
  columnsDescription,
  toTable,
} from "../schemas.ts";
import { priceFromWire, timeFromWire } from "../wire.ts";

/** A percent move may be at most 1,000 % (in basis points). */
const MAX_PERCENT_BASIS_POINTS = 100_000;
const ONE_HUNDRED_PERCENT_BASIS_POINTS = 10_000;

const SideInput = Type.Union([Type.Literal("BID"), Type.Literal("ASK"), Type.Literal(0), Type.Literal(1)], {
  description: "BID (0) or ASK (1): the price the alert watches",
});
const ConditionInput = Type.Union(
  [...ALERT_CONDITIONS.map((condition) => Type.Literal(condition)), Type.Integer({ minimum: 0, maximum: 12 })],
  { description: "A condition name, or its code 0-12" },
);
/*
 * Nullable inputs as one `type` list, not a union: with the server's type coercion, ajv coerces only
 * when no listed type matches, so null stays null and 0 stays 0 (a union would coerce in its first branch).
 */
const NullableDecimal = (description?: string) =>
  Type.Unsafe<number | string | null>({
    type: ["number", "string", "null"],
    pattern: "^-?[0-9]{1,17}(\\.[0-9]{1,17})?$",
    ...(description ? { description } : {}),
  });
const OptionalPrice = Type.Optional(NullableDecimal());
const StatusInput = Type.Union([Type.Literal("active"), Type.Literal("disabled")], {
  description: "active (re-arms the alert) or disabled",
});

const parameterFields = {
  targetPrice: OptionalPrice,
  channelLow: OptionalPrice,
  channelHigh: OptionalPrice,
  moveThreshold: Type.Optional(
    NullableDecimal("MOVING_UP/DOWN: a price distance; MOVING_*_PERCENT: a percent with up to 2 decimals"),
  ),
  referencePrice: OptionalPrice,
  repeating: Type.Optional(Type.Boolean({ description: "false (default): fires once; true: re-arms after firing" })),
  expiration: Type.Optional(
    Type.Unsafe<number | string | null>({
      type: ["integer", "string", "null"],
      minimum: 0,
      maxLength: 40,
      description: "ISO 8601 with a zone, or epoch milliseconds; null: never",
    }),
  ),
  message: Type.Optional(Type.String({ maxLength: PLATFORM_LIMITS.messageLength })),
  status: Type.Optional(StatusInput),
  accountId: Type.Optional(
    Type.Unsafe<number | null>({
      type: ["integer", "null"],
      minimum: 1,
      description: "One of the user's accounts, which the notifications then name",
    }),
  ),
};

const CreateBody = Closed({
  symbol: Type.String({ minLength: 1, maxLength: 32 }),
  side: SideInput,
  condition: ConditionInput,
  ...parameterFields,
});
const UpdateBody = Type.Object(
  { side: Type.Optional(SideInput), condition: Type.Optional(ConditionInput), ...parameterFields },
  { additionalProperties: false, minProperties: 1 },
);
type ParameterBody = Partial<Static<typeof UpdateBody>>;

const AlertParams = Closed({
  id: Type.String({ pattern: "^[A-Za-z0-9_.:-]{1,128}$", description: "The price alert's id" }),
});
const LogParams = Closed({ logId: Type.String({ pattern: "^[0-9]{1,15}$", description: "The trigger log row's id" }) });

function sideOf(input: "BID" | "ASK" | 0 | 1): AlertSide {
  return input === 0 || input === "BID" ? "BID" : "ASK";
}

function conditionOf(input: string | number): AlertCondition {
  return typeof input === "number" ? ALERT_CONDITIONS[input]! : (input as AlertCondition);
}

interface Parameters {
  targetPrice: number | null;
  channelLow: number | null;
  channelHigh: number | null;
  moveThreshold: number | null;
  referencePrice: number | null;
}

type ParameterName = keyof Parameters;

/** Whether `condition` uses the parameter. */
function uses(condition: AlertCondition, name: ParameterName): boolean {
  switch (name) {
    case "targetPrice":
      return TARGET_CONDITIONS.has(condition);
    case "channelLow":
    case "channelHigh":
      return CHANNEL_CONDITIONS.has(condition);
    case "moveThreshold":
    case "referencePrice":
      return isMovingCondition(condition);
  }
}

/** Reads the parameters the body gives (undefined: not given; null: cleared) at the instrument's digits. */
function readParameters(
  body: ParameterBody,
  condition: AlertCondition,
  instrument: InstrumentSpec,
): Partial<Record<ParameterName, number | null>> {
  const out: Partial<Record<ParameterName, number | null>> = {};
  for (const name of ["targetPrice", "channelLow", "channelHigh", "referencePrice"] as const) {
    const value = body[name];
    if (value === undefined) continue;
    out[name] = value === null ? null : priceFromWire(value, instrument, name);
    // A target or a reference is a price, which is positive: a target of 0 made CROSSING_UP fire on the first tick.
    // A channel may start at 0 (below any price).
    if ((name === "targetPrice" || name === "referencePrice") && out[name] !== null && out[name]! <= 0)
      throw new ApiError("INVALID_PRICE", `${name} must be a positive price`);
  }
  const move = body.moveThreshold;
  if (move !== undefined && move !== null) {
    if (PERCENT_CONDITIONS.has(condition)) {
      const parsed = parseDecimal(move, 2);
      if (!parsed.ok) throw new ApiError("INVALID_DATA", "moveThreshold must be a percent with at most 2 decimals");
      if (parsed.value <= 0 || parsed.value > MAX_PERCENT_BASIS_POINTS)
        throw new ApiError("INVALID_DATA", "moveThreshold must be a percent above 0 and at most 1000");
      out.moveThreshold = parsed.value;
    } else {
      out.moveThreshold = priceFromWire(move, instrument, "moveThreshold");
    }
  } else if (move === null) {
    out.moveThreshold = null;
  }
  return out;
}

/** Refuses a parameter the condition does not use, a missing one, and a channel or move out of order. */
function checkParameters(condition: AlertCondition, parameters: Parameters): void {
  for (const name of Object.keys(parameters) as ParameterName[])
    if (parameters[name] !== null && !uses(condition, name))
      throw new ApiError("INVALID_DATA", `${name} is not a parameter of ${condition}`);
  if (TARGET_CONDITIONS.has(condition) && parameters.targetPrice === null)
    throw new ApiError("INVALID_DATA", `${condition} needs targetPrice`);
  if (CHANNEL_CONDITIONS.has(condition)) {
    if (parameters.channelLow === null || parameters.channelHigh === null)
      throw new ApiError("INVALID_DATA", `${condition} needs channelLow and channelHigh`);
    if (parameters.channelLow >= parameters.channelHigh)
      throw new ApiError("INVALID_DATA", "channelLow must be below channelHigh");
  }
  if (isMovingCondition(condition) && (parameters.moveThreshold === null || parameters.moveThreshold <= 0))
    throw new ApiError("INVALID_DATA", `${condition} needs moveThreshold above 0`);
  // A fall the price cannot make: the alert could never fire (it was taken, and waited for ever).
  if (condition === "MOVING_DOWN_PERCENT" && parameters.moveThreshold! >= ONE_HUNDRED_PERCENT_BASIS_POINTS)
    throw new ApiError("INVALID_DATA", "MOVING_DOWN_PERCENT needs moveThreshold below 100: no price falls further");
}

/** Refuses a MOVING_DOWN the price cannot make from its reference (given, or the current price taken for it). */
/** One check for every condition: a level past either end of the quotes (a MOVING_DOWN to 0 or below among them). */
function checkReachable(condition: AlertCondition, parameters: Parameters, instrument: InstrumentSpec): void {
  const maxPrice = maxPricePoints(instrument);
  if (!canTrigger({ condition, ...parameters }, maxPrice))
    throw new ApiError(
      "INVALID_DATA",
      `No ${instrument.symbol} quote can reach this alert's level: quotes go from ${formatPrice(1, instrument)} ` +
        `to ${formatPrice(maxPrice, instrument)}`,
    );
}

function readExpiration(value: number | string | null | undefined, now: number): number | null | undefined {
  if (value === undefined || value === null) return value;
  const expiration = timeFromWire(value, "expiration");
  if (expiration <= now) throw new ApiError("INVALID_EXPIRATION", "expiration must be in the future");
  return expiration;
}

function checkAccount(platform: Platform, userId: string, accountId: number | null | undefined): void {
  if (accountId !== undefined && accountId !== null) platform.ownedAccount(userId, accountId);
}

const notFound = () => new ApiError("NOT_FOUND", "No such alert");

export const alertRoutes: RouteModule = (app, { platform }) => {
  const engine = AlertEngine.for(platform);
  const view = (alert: PriceAlert) => alertView(alert, platform.instruments.get(alert.symbol));

  app.get(
    "/api/v1/alerts",
    {
      schema: {
        tags: ["Alerts"],
        summary: `The user's price alerts, oldest first (table, at most ${PLATFORM_LIMITS.alertsPerUser})`,
        description: columnsDescription(AlertTable),
        response: { 200: AlertTable, ...authenticatedErrors },
      },
    },
    async (request) => {
      const alerts = await platform.store.listAlerts(request.principal!.userId);
      return toTable(
        AlertTable,
        alerts.map((alert) => view(engine.withUnwrittenChanges(alert, null))),
      );
    },
  );

  app.put(
    "/api/v1/alerts",
    {
      schema: {
        tags: ["Alerts"],
        summary: "Create a price alert; answers it",
        description: `At most ${PLATFORM_LIMITS.alertsPerUser} alerts per user, whatever their status (LIMIT_REACHED).`,
        body: CreateBody,
        response: { 200: DataResponse(AlertViewSchema), ...authenticatedErrors, 409: ErrorResponse },
      },
    },
    async (request) => {
      const userId = request.principal!.userId;
      const body = request.body;
      const instrument = platform.instrument(body.symbol);
      checkAccount(platform, userId, body.accountId);
      const now = platform.clock.now();
      const side = sideOf(body.side);
      const condition = conditionOf(body.condition);
      const given = readParameters(body, condition, instrument);
      const parameters: Parameters = {
        targetPrice: given.targetPrice ?? null,
        channelLow: given.channelLow ?? null,
        channelHigh: given.channelHigh ?? null,
        moveThreshold: given.moveThreshold ?? null,
        referencePrice: given.referencePrice ?? null,
      };
      checkParameters(condition, parameters);
      const expiration = readExpiration(body.expiration, now) ?? null;
      const status = body.status ?? "active";
      if (isMovingCondition(condition) && parameters.referencePrice === null && status === "active")
        parameters.referencePrice = engine.currentPrice(instrument.symbol, side);
      checkReachable(condition, parameters, instrument);
      if ((await platform.store.listAlerts(userId)).length >= PLATFORM_LIMITS.alertsPerUser)
        throw new ApiError("LIMIT_REACHED", `At most ${PLATFORM_LIMITS.alertsPerUser} alerts per user`);
      const alert = await platform.store.createAlert({
        id: randomUUID(),
        userId,
        accountId: body.accountId ?? null,
        symbol: instrument.symbol,
        side,
        condition,
        ...parameters,
        repeating: body.repeating ?? false,
        expiration,
        message: body.message ?? "",
        status,
        createdAt: now,
      });
      engine.sync(alert, true);
      return { data: view(alert) };
    },
  );

  app.post(
    "/api/v1/alerts/:id",
    {
      schema: {
        tags: ["Alerts"],
        summary: "Update a price alert: the fields given replace the stored ones; status active re-arms it",
        description:
          "Changing the condition clears the parameters the new condition does not use. Setting status `active` " +
          "re-arms the alert (also a triggered or expired one); a MOVING_* alert then measures from the current " +
          "price unless `referencePrice` is given.",
        params: AlertParams,
        body: UpdateBody,
        response: { 200: DataResponse(AlertViewSchema), ...authenticatedErrors },
      },
    },
    async (request) => {
      const userId = request.principal!.userId;
      const body = request.body;
      // What the engine did to it and has not yet written (it fired): the change replaces the stored row. Taken
      // before the read as well, in case that write lands while the read runs.
      const before = engine.unwrittenChanges(request.params.id);
      const stored = await platform.store.getAlert(userId, request.params.id);
      if (!stored) throw notFound();
      const current = engine.withUnwrittenChanges(stored, before);
      checkAccount(platform, userId, body.accountId);
      const instrument = platform.instrument(current.symbol);
      const now = platform.clock.now();
      const side = body.side === undefined ? current.side : sideOf(body.side);
      const condition = body.condition === undefined ? current.condition : conditionOf(body.condition);
      const given = readParameters(body, condition, instrument);
      const sameMoveUnit =
        (MOVE_CONDITIONS.has(condition) && MOVE_CONDITIONS.has(current.condition)) ||
        (PERCENT_CONDITIONS.has(condition) && PERCENT_CONDITIONS.has(current.condition));
      const keep = (name: ParameterName): number | null => {
        if (given[name] !== undefined) return given[name];
        if (!uses(condition, name)) return null;
        if (name === "moveThreshold" && !sameMoveUnit) return null;
        return current[name];
      };
      const parameters: Parameters = {
        targetPrice: keep("targetPrice"),
        channelLow: keep("channelLow"),
        channelHigh: keep("channelHigh"),
        moveThreshold: keep("moveThreshold"),
        referencePrice: keep("referencePrice"),
      };
      checkParameters(condition, parameters);
      const givenExpiration = readExpiration(body.expiration, now);
      const expiration = givenExpiration === undefined ? current.expiration : givenExpiration;
      const status = body.status ?? current.status;
      if (status === "active") {
        if (expiration !== null && expiration <= now)
          throw new ApiError("INVALID_EXPIRATION", "The alert has expired: give a new expiration to re-arm it");
        const rearm = body.status === "active" || side !== current.side;
        if (
          isMovingCondition(condition) &&
          given.referencePrice === undefined &&
          (rearm || parameters.referencePrice === null)
        )
          parameters.referencePrice = engine.currentPrice(current.symbol, side);
      }
      checkReachable(condition, parameters, instrument);
      const patch: PriceAlertPatch = {
        side,
        condition,
        ...parameters,
        expiration,
        status,
        ...(body.repeating === undefined ? {} : { repeating: body.repeating }),
        ...(body.message === undefined ? {} : { message: body.message }),
        ...(body.accountId === undefined ? {} : { accountId: body.accountId }),
      };
      // What the user's change sets wins over what the engine did to the alert while it was written: a field it
      // changes, and the status when given (a re-arm). Only the fields it left as they were take the engine's change
      // (the review of 7 December: a side or condition change kept a reference the engine took meanwhile).
      const userSet = new Set<keyof PriceAlertPatch>(
        (Object.keys(patch) as (keyof PriceAlertPatch)[]).filter((field) => patch[field] !== current[field]),
      );
      if (body.status !== undefined) userSet.add("status");
      const updated = await engine.writeUserUpdate(current, patch, userSet, now, body.status === "active");
      if (!updated) {
        engine.forget(current.id);
        throw notFound();
      }
      return { data: view(updated) };
    },
  );

  app.delete(
    "/api/v1/alerts/:id",
    {
      schema: {
        tags: ["Alerts"],
        summary: "Delete a price alert (its logs stay)",
        params: AlertParams,
        response: { 200: OkResponse, ...authenticatedErrors },
      },
    },
    async (request) => {
      const userId = request.principal!.userId;
      const current = await platform.store.getAlert(userId, request.params.id);
      if (!current) throw notFound();
      if (!(await engine.writeUserChange(current, () => platform.store.deleteAlert(userId, current.id))))
        throw notFound();
      engine.forget(current.id);
      return { data: "OK" as const };
    },
  );

  app.get(
    "/api/v1/alerts/logs",
    {
      schema: {
        tags: ["Alerts"],
        summary: "Trigger history, newest first, by pages (table with nextCursor)",
        description: columnsDescription(
          AlertLogTable,
          "`target` is the level that was reached: the target price, the channel edge, or the reference price plus or minus the move.",
        ),
        querystring: PageQuery,
        response: { 200: AlertLogTable, ...authenticatedErrors },
      },
    },
    async (request) => {
      const { limit = DEFAULT_PAGE_ROWS, cursor } = request.query;
      const page = await platform.store.listAlertLogs(request.principal!.userId, {
        limit,
        cursor: cursor === undefined ? null : Number(cursor),
      });
      const rows = page.rows.map((log) => alertLogView(log, platform.instruments.get(log.symbol)));
      return toTable(AlertLogTable, rows, page.nextCursor === null ? null : String(page.nextCursor));
    },
  );

  app.delete(
    "/api/v1/alerts/logs/:logId",
    {
      schema: {
        tags: ["Alerts"],
        summary: "Delete one trigger log row",
        params: LogParams,
        response: { 200: OkResponse, ...authenticatedErrors },
      },
    },
    async (request) => {
      const logId = Number(request.params.logId);
      if (logId < 1 || !(await platform.store.deleteAlertLog(request.principal!.userId, logId)))
        throw new ApiError("NOT_FOUND", "No such alert log");
      return { data: "OK" as const };
    },
  );

  app.delete(
    "/api/v1/alerts/logs",
    {
      schema: {
        tags: ["Alerts"],
        summary: "Delete the user's whole trigger history",
        response: { 200: OkResponse, ...authenticatedErrors },
      },
    },
    async (request) => {
      await platform.store.deleteAllAlertLogs(request.principal!.userId);
      return { data: "OK" as const };
    },
  );
};
