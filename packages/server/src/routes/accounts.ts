/**
 * Account (seed 000 "Account", API.md): the user's trading accounts, opening another one, the session's
 * current account, one account's profile and balance snapshot, and its balance ledger.
 * Every account-scoped route checks ownership first: another user's login is a 403, never data.
 */
import { ACCOUNT_CURRENCIES, currencyDigits, type Account } from "@bourse/core";
import { Type, type Static } from "@sinclair/typebox";
import type { RouteModule } from "../app.ts";
import { ApiError } from "../errors.ts";
import type { Platform } from "../platform.ts";
import {
  AccountIdParams,
  Closed,
  DataResponse,
  ErrorResponse,
  columnsDescription,
  authenticatedErrors,
  emptyBodyIsObject,
  markSnapshotSequence,
  toTable,
  type Table,
} from "../schemas.ts";
import {
  LedgerQuerySchema,
  LedgerTable,
  NoQuery,
  PositionTable,
  WorkingOrderTable,
  ledgerView,
  readHistoryQuery,
} from "../trading-views.ts";
import { openPositionsOf, workingOrdersOf } from "../trading-service.ts";
import { AccountTable, AccountViewSchema, accountView } from "../views.ts";

/** Bound on the trading accounts one user may hold (the sign-up account included). */
export const MAX_ACCOUNTS_PER_USER = 10;

// The group's levels and the currency's digits: a terminal drew its margin bar and formatted money with values it had
// to hard-code (found by the audit of a terminal's journey of 7 December, sixth session).
const AccountDetailSchema = Type.Intersect([
  AccountViewSchema,
  Type.Object({
    openPositions: Type.Integer({ description: "Positions open now" }),
    workingOrders: Type.Integer({ description: "Pending orders working now" }),
    marginCallLevel: Type.Integer({
      description: "Percent: at this margin level or below, the account is in margin call",
    }),
    stopOutLevel: Type.Integer({
      description:
        "Percent: at this margin level or below, the most losing position is closed, again, until it is above",
    }),
    currencyDigits: Type.Integer({ description: "Decimals of the account currency's money (2 for USD, 0 for JPY)" }),
  }),
]);

function accountDetail(platform: Platform, account: Account) {
  const state = platform.engine.state;
  const group = platform.engine.config.groups.find((candidate) => candidate.name === account.group);
  if (!group) throw new Error(`account ${account.id} has unknown group ${account.group}`);
  return {
    ...accountView(platform, account),
    openPositions: state.accountPositions.get(account.id)?.size ?? 0,
    workingOrders: state.accountWorkingOrders.get(account.id)?.size ?? 0,
    marginCallLevel: group.marginCallLevelPercent,
    stopOutLevel: group.stopOutLevelPercent,
    currencyDigits: currencyDigits(account.currency),
  };
}

export const LEDGER_SUMMARY =
  "Balance operations (table, paged): deposits, withdrawals, credit, realised profit, commissions, swaps, corrections";
export const LEDGER_DESCRIPTION = columnsDescription(
  LedgerTable,
  "Oldest first, or newest first with `direction=desc`. `from` (inclusive) and `to` (exclusive) bound the time; " +
    "`limit` rows per page; pass `nextCursor` back as `cursor`, with the same `direction`, for the next page (null " +
    "on the last one).",
);

/** One page of an account's balance ledger as a table: the client's route and the back office's. */
export async function ledgerTable(
  platform: Platform,
  account: Account,
  query: Static<typeof LedgerQuerySchema>,
): Promise<Table> {
  const page = await platform.readModels.ledger(readHistoryQuery(platform, account.id, query));
  return toTable(
    LedgerTable,
    page.rows.map((row) => ledgerView(account, row)),
    page.nextCursor,
  );
}

export const accountRoutes: RouteModule = (app, { platform, auth }) => {
  /** One account opening at a time per user, so two racing requests cannot pass the limit together. */
  const openings = new Map<string, Promise<unknown>>();
  const serialized = async <T>(userId: string, task: () => Promise<T>): Promise<T> => {
    const previous = openings.get(userId) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(task);
    openings.set(userId, next);
    try {
      return await next;
    } finally {
      if (openings.get(userId) === next) openings.delete(userId);
    }
  };

  app.get(
    "/api/v1/accounts",
    {
      schema: {
        tags: ["Account"],
        summary: "The user's trading accounts (table), oldest first",
        description: columnsDescription(AccountTable),
        querystring: NoQuery,
        response: { 200: AccountTable, ...authenticatedErrors },
      },
    },
    async (request) => {
      const accounts = platform.engine.state.accounts;
      const rows = platform
        .accountIdsOf(request.principal!.userId)
        .map((id) => accounts.get(id))
        .filter((account): account is Account => account !== undefined)
        .map((account) => accountView(platform, account));
      return toTable(AccountTable, rows);
    },
  );

  app.put(
    "/api/v1/accounts",
    {
      schema: {
        tags: ["Account"],
        summary: `Open another demo account, funded like the sign-up one (at most ${MAX_ACCOUNTS_PER_USER} per user)`,
        description:
          `currency, leverage and mode default to the server's demo settings (${platform.config.demoCurrency}, ` +
          `1:${platform.config.demoLeverage}, HEDGING). ` +
          "The demo balance is deposited in the account's currency. The session's current account does not change.",
        body: Closed({
          // Any three letters, refused below as INVALID_CURRENCY unless taken here: a union of the codes answered an
          // unknown one INVALID_DATA with its clause seven times over (the audit of 7 December).
          currency: Type.Optional(
            Type.String({
              pattern: "^[A-Z]{3}$",
              description:
                `Taken here: ${platform.accountCurrencies.join(", ")}, the currencies every instrument's money ` +
                `converts into (of ${ACCOUNT_CURRENCIES.join(", ")}); another is INVALID_CURRENCY`,
            }),
          ),
          leverage: Type.Optional(
            Type.Integer({
              minimum: platform.engineConfig.leverageMin,
              maximum: platform.engineConfig.leverageMax,
              description: "1:leverage",
            }),
          ),
          mode: Type.Optional(Type.Union([Type.Literal("HEDGING"), Type.Literal("NETTING")])),
        }),
        response: { 200: DataResponse(AccountViewSchema), ...authenticatedErrors, 409: ErrorResponse },
      },
      // Every field is optional: no body at all is the defaults (it was 400 "body must be object"; the audit of
      // 7 December).
      preValidation: emptyBodyIsObject,
    },
    async (request) => {
      const userId = request.principal!.userId;
      const account = await serialized(userId, async () => {
        const currency = request.body.currency;
        // Orders of an account whose money no instrument converts into would all answer NO_QUOTES, for good.
        if (currency !== undefined && !platform.accountCurrencies.includes(currency))
          throw new ApiError(
            "INVALID_CURRENCY",
            `Accounts are kept in ${platform.accountCurrencies.join(", ")} here: the instruments convert into those`,
          );
        if (platform.accountIdsOf(userId).length >= MAX_ACCOUNTS_PER_USER)
          throw new ApiError("LIMIT_REACHED", `A user may hold at most ${MAX_ACCOUNTS_PER_USER} trading accounts`);
        return auth.openDemoAccount(userId, request.body);
      });
      return { data: accountView(platform, account) };
    },
  );

  app.get(
    "/api/v1/account",
    {
      config: { snapshotSequence: true },
      schema: {
        tags: ["Account"],
        summary: "The session's current account: profile and balance snapshot",
        description: "The account the session signed in to (by login), else the user's first account.",
        querystring: NoQuery,
        response: { 200: DataResponse(AccountDetailSchema), ...authenticatedErrors },
      },
    },
    async (request, reply) => {
      const principal = request.principal!;
      const session = await platform.store.findSession(principal.sessionId);
      if (!session) throw new ApiError("UNAUTHORIZED", "The token is not valid");
      const accountId = session.accountId ?? platform.accountIdsOf(principal.userId)[0];
      if (accountId === undefined) throw new ApiError("NOT_FOUND", "The user has no trading account");
      const data = accountDetail(platform, platform.ownedAccount(principal.userId, accountId));
      markSnapshotSequence(reply, platform.durableSequence);
      return { data };
    },
  );

  app.get(
    "/api/v1/accounts/:accountId",
    {
      config: { snapshotSequence: true },
      schema: {
        tags: ["Account"],
        summary:
          "One account: login, currency, leverage, mode, balance, credit, equity, margin, free margin, margin level, profit",
        params: AccountIdParams,
        querystring: NoQuery,
        response: { 200: DataResponse(AccountDetailSchema), ...authenticatedErrors },
      },
    },
    async (request, reply) => {
      const account = platform.ownedAccount(request.principal!.userId, Number(request.params.accountId));
      const data = accountDetail(platform, account);
      markSnapshotSequence(reply, platform.durableSequence);
      return { data };
    },
  );

  // One answer at one seq: the account, its open positions and its working orders, read in one turn. A terminal or an
  // app loading the three snapshots apart could see an event between them, each with its own Bourse-Seq (found by the
  // audit of a mobile client's journey of 7 December, seventh session).
  app.get(
    "/api/v1/accounts/:accountId/snapshot",
    {
      config: { snapshotSequence: true },
      schema: {
        tags: ["Account"],
        summary: "The account, its open positions and its working orders in one answer, as of one seq (Bourse-Seq)",
        description:
          "The three snapshots of GET /api/v1/accounts/{accountId}, …/positions and …/orders, taken together: " +
          "subscribe to the stream, load this, and apply only the events of a higher seq.",
        params: AccountIdParams,
        querystring: NoQuery,
        response: {
          200: DataResponse(
            Type.Object({ account: AccountDetailSchema, positions: PositionTable, orders: WorkingOrderTable }),
          ),
          ...authenticatedErrors,
        },
      },
    },
    async (request, reply) => {
      const account = platform.ownedAccount(request.principal!.userId, Number(request.params.accountId));
      const data = {
        account: accountDetail(platform, account),
        positions: openPositionsOf(platform, account),
        orders: workingOrdersOf(platform, account),
      };
      markSnapshotSequence(reply, platform.durableSequence);
      return { data };
    },
  );

  app.get(
    "/api/v1/accounts/:accountId/ledger",
    {
      schema: {
        tags: ["Account"],
        summary: LEDGER_SUMMARY,
        description: LEDGER_DESCRIPTION,
        params: AccountIdParams,
        querystring: LedgerQuerySchema,
        response: { 200: LedgerTable, ...authenticatedErrors },
      },
    },
    async (request) =>
      ledgerTable(
        platform,
        platform.ownedAccount(request.principal!.userId, Number(request.params.accountId)),
        request.query,
      ),
  );
};
