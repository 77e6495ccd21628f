/**
 * What the faces show of engine records: integers turned into decimals with the right digits
 * (wire.ts), times into ISO strings. One view per record, shared by every face that shows it.
 */
import type { Account, AccountMetrics } from "@bourse/core";
import type { User } from "@bourse/store";
import { Type, type Static } from "@sinclair/typebox";
import type { Platform } from "./platform.ts";
import { TableOf } from "./schemas.ts";
import { marginLevelToWire, moneyToWire, timeToWire } from "./wire.ts";

export const AccountViewSchema = Type.Object({
  login: Type.Integer(),
  currency: Type.String(),
  leverage: Type.Integer(),
  mode: Type.Union([Type.Literal("HEDGING"), Type.Literal("NETTING")]),
  group: Type.String(),
  balance: Type.Number(),
  credit: Type.Number(),
  equity: Type.Number(),
  margin: Type.Number(),
  freeMargin: Type.Number(),
  marginLevel: Type.Union([Type.Number(), Type.Null()], { description: "Percent; null without margin" }),
  profit: Type.Number({
    description:
      "Floating profit of the open positions with their swaps, account currency: equity − balance − credit (a " +
      "position's own profit leaves its swap apart)",
  }),
  tradingEnabled: Type.Boolean(),
  marginCall: Type.Boolean(),
  createdAt: Type.String({ format: "date-time" }),
});

export type AccountView = Static<typeof AccountViewSchema>;

/** An account's money fields: its table columns, and an order check's account after the order. */
const ACCOUNT_MONEY_FIELDS = [
  "balance",
  "credit",
  "equity",
  "margin",
  "freeMargin",
  "marginLevel",
  "profit",
] as const satisfies readonly (keyof AccountView)[];

export const ACCOUNT_COLUMNS = [
  "login",
  "currency",
  "leverage",
  "mode",
  "group",
  ...ACCOUNT_MONEY_FIELDS,
  "tradingEnabled",
  "marginCall",
  "createdAt",
] as const satisfies readonly (keyof AccountView)[];

/** The user's accounts as a table (GET /api/v1/accounts). */
export const AccountTable = TableOf(ACCOUNT_COLUMNS, AccountViewSchema);

/** The account's money now (balance, credit, equity, margin, free margin, margin level, floating profit). */
export function accountMoneyView(platform: Platform, account: Account) {
  return metricsMoneyView(platform.engine.accountMetrics(account.id));
}

export const AccountMoneyViewSchema = Type.Pick(AccountViewSchema, ACCOUNT_MONEY_FIELDS);

/** An account's figures (now, or as an order check says they would be) in the account currency's digits. */
export function metricsMoneyView(metrics: AccountMetrics): Static<typeof AccountMoneyViewSchema> {
  const currency = metrics.currency;
  return {
    balance: moneyToWire(metrics.balance, currency),
    credit: moneyToWire(metrics.credit, currency),
    equity: moneyToWire(metrics.equity, currency),
    margin: moneyToWire(metrics.margin, currency),
    freeMargin: moneyToWire(metrics.freeMargin, currency),
    marginLevel: marginLevelToWire(metrics.marginLevelBasisPoints),
    profit: moneyToWire(metrics.profit, currency),
  };
}

export function accountView(platform: Platform, account: Account): AccountView {
  return {
    login: account.id,
    currency: account.currency,
    leverage: account.leverage,
    mode: account.mode,
    group: account.group,
    ...accountMoneyView(platform, account),
    tradingEnabled: account.tradingEnabled,
    marginCall: account.marginCall,
    createdAt: timeToWire(account.createdAt),
  };
}

export const UserViewSchema = Type.Object({
  id: Type.String(),
  email: Type.String(),
  name: Type.String(),
  createdAt: Type.String({ format: "date-time" }),
});

export function userView(user: User): Static<typeof UserViewSchema> {
  return { id: user.id, email: user.email, name: user.name, createdAt: timeToWire(user.createdAt) };
}
