/**
 * The broker's back office and feed bridge at `/admin/v1` (`Authorization: Bearer <BOURSE_ADMIN_TOKEN>`):
 * push quotes with depth, deposit and withdraw, list and inspect users and accounts, change an
 * account's leverage, group or trading permission, create users. Tests drive prices exactly through it.
 */
import {
  MAX_BOOK_LEVELS,
  maxPricePoints,
  readTick,
  type Account,
  type BookLevel,
  type InstrumentSpec,
} from "@bourse/core";
import { PLATFORM_LIMITS, type User } from "@bourse/store";
import { Type, type Static } from "@sinclair/typebox";
import type { RouteModule } from "../app.ts";
import { LEDGER_DESCRIPTION, LEDGER_SUMMARY, ledgerTable } from "./accounts.ts";
import { HISTORIES, HISTORY_DESCRIPTION } from "./trade.ts";
import { ApiKeyTable, KeyIdParameter, apiKeyView } from "./api-keys.ts";
import { ApiKeyService } from "../api-keys.ts";
import {
  ClosePositionBody,
  CloseResult,
  HistoryQuerySchema,
  PositionParams,
  closePositionOf,
  openPositionsOf,
  workingOrdersOf,
} from "../trading-service.ts";
import { LedgerQuerySchema, LedgerTable, NoQuery, PositionTable, WorkingOrderTable } from "../trading-views.ts";
import { ApiError, isMarketClosed } from "../errors.ts";
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from "../auth.ts";
import {
  AccountIdParams,
  Closed,
  DataResponse,
  Decimal,
  Email,
  ErrorResponse,
  OkResponse,
  TableOf,
  columnsDescription,
  emptyBodyIsObject,
  toTable,
} from "../schemas.ts";
import { ACCOUNT_COLUMNS, AccountViewSchema, UserViewSchema, accountView, userView } from "../views.ts";

/**
 * A user as the back office sees them: the client's view and the sign-in lock (an operator could not tell whether
 * a user was locked out: the audit of the back office of 7 December).
 */
const AdminUserView = Type.Object({
  ...UserViewSchema.properties,
  failedLoginCount: Type.Integer({ description: "Failed sign-ins in a row" }),
  lockedUntil: Type.Union([Type.String({ format: "date-time" }), Type.Null()], {
    description: "Signing in is refused (LOGIN_LOCKED) until then; null when not locked",
  }),
  disabledAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()], {
    description: "When the back office disabled the user (no sign-in, sessions ended, API keys revoked); null if not",
  }),
});

/** The back office's list of users: each with the logins of their trading accounts. */
const AdminUserTable = TableOf(
  ["id", "email", "name", "createdAt", "failedLoginCount", "lockedUntil", "accounts", "disabledAt"],
  Type.Object({
    ...AdminUserView.properties,
    accounts: Type.Array(Type.Integer(), { description: "The logins of the user's trading accounts" }),
  }),
);

function adminUserView(user: User, now: number): Static<typeof AdminUserView> {
  return {
    ...userView(user),
    failedLoginCount: user.failedLoginCount,
    lockedUntil: user.lockedUntil !== null && user.lockedUntil > now ? timeToWire(user.lockedUntil) : null,
    disabledAt: user.disabledAt === null ? null : timeToWire(user.disabledAt),
  };
}
import { lotsFromWire, moneyFromWire, priceFromWire, timeToWire } from "../wire.ts";

/**
 * Logins in order, per accounts map, sorted again only when an account has been opened since (accounts are never
 * removed, so the count tells). A page copied and sorted every account before (the audit of complexity of 7 December,
 * sixth session).
 */
const sortedLogins = new WeakMap<ReadonlyMap<number, unknown>, number[]>();

function loginsInOrder(accounts: ReadonlyMap<number, unknown>): readonly number[] {
  let logins = sortedLogins.get(accounts);
  if (!logins || logins.length !== accounts.size) {
    logins = [...accounts.keys()].sort((a, b) => a - b);
    sortedLogins.set(accounts, logins);
  }
  return logins;
}

/** The index of the first of the ascending `values` above `bound` (their length when none is). */
function firstAbove(values: readonly number[], bound: number): number {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((values[middle] as number) <= bound) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** Quotes one push may carry: a feed bridge batches, but a request stays bounded. */
export const MAX_QUOTES_PER_PUSH = 1000;

const BookLevelInput = Closed({ price: Decimal, volume: Decimal });

/** A page of a back-office list: `limit` rows (1,000 at most, the default) after the previous page's `nextCursor`. */
function adminPageQuery(cursor: ReturnType<typeof Type.String>) {
  return Closed({
    limit: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: PLATFORM_LIMITS.pageLimit,
        default: PLATFORM_LIMITS.pageLimit,
        description: `Rows per page, 1 to ${PLATFORM_LIMITS.pageLimit} (the default)`,
      }),
    ),
    cursor: Type.Optional(cursor),
  });
}
const UserParams = Closed({ userId: Type.String({ minLength: 1, maxLength: 128, description: "The user's id" }) });
const AccountsPageQuery = adminPageQuery(
  Type.String({ pattern: "^[0-9]{1,15}$", description: "The `nextCursor` of the previous page (its last login)" }),
);
const UsersPageQuery = adminPageQuery(
  Type.String({
    minLength: 1,
    maxLength: 128,
    description:
      "The `nextCursor` of the previous page (its last user id); a full page always gives one, so the last page " +
      "may be empty",
  }),
);
const QuoteInputSchema = Closed({
  symbol: Type.String({ minLength: 1, maxLength: 32 }),
  bid: Decimal,
  ask: Decimal,
  bids: Type.Optional(
    Type.Array(BookLevelInput, { maxItems: MAX_BOOK_LEVELS, description: "Best first; volumes in lots" }),
  ),
  asks: Type.Optional(Type.Array(BookLevelInput, { maxItems: MAX_BOOK_LEVELS })),
});
type QuoteBody = Static<typeof QuoteInputSchema>;

const adminErrors = {
  400: ErrorResponse,
  401: ErrorResponse,
  403: ErrorResponse,
  404: ErrorResponse,
  503: ErrorResponse,
} as const;
/** An account as the back office sees it: the client's view and the user who holds it. */
const AdminAccount = Type.Object({ ...AccountViewSchema.properties, userId: Type.String() });

const AdminAccountTable = TableOf([...ACCOUNT_COLUMNS, "userId"], AdminAccount);

/** The account groups: their levels, whether new accounts join it, and how many accounts it holds. */
const AdminGroupTable = TableOf(
  ["name", "marginCallLevel", "stopOutLevel", "default", "accounts"],
  Type.Object({
    name: Type.String(),
    marginCallLevel: Type.Integer({
      description: "Percent: at this margin level or below, an account is in margin call",
    }),
    stopOutLevel: Type.Integer({
      description: "Percent: at this margin level or below, an account's most losing position is closed",
    }),
    default: Type.Boolean({ description: "New accounts join this group" }),
    accounts: Type.Integer({ description: "Accounts in the group" }),
  }),
);

/** A balance operation's answer: the account after it, and the operation. */
const AdminBalanceResult = Type.Intersect([
  // Nested as it was first written: the serializer lays the operation's fields out first then, and the answer's bytes
  // stay as they were (found by the review of 7 December, seventh session, when the account became one object).
  Type.Intersect([AccountViewSchema, Type.Object({ userId: Type.String() })]),
  Type.Object({
    operationId: Type.Integer({ description: "The operation's id in the account's ledger (`operationId`)" }),
    duplicate: Type.Boolean({ description: "True when `reference` repeated an earlier operation: its result, again" }),
  }),
]);

function bookFromWire(levels: QuoteBody["bids"], instrument: InstrumentSpec, field: string): BookLevel[] | undefined {
  return levels?.map((level, index) => ({
    price: priceFromWire(level.price, instrument, `${field}[${index}].price`),
    volume: lotsFromWire(level.volume, instrument, `${field}[${index}].volume`),
  }));
}

export const adminRoutes: RouteModule = (app, { platform, auth }) => {
  const config = { auth: "admin", face: "admin", rateLimit: false } as const;
  const adminAccount = (account: Account) => ({ ...accountView(platform, account), userId: account.userId });
  const accountOf = (accountId: string): Account => {
    const account = platform.engine.state.accounts.get(Number(accountId));
    if (!account) throw new ApiError("ACCOUNT_NOT_FOUND");
    return account;
  };
  const userOf = async (userId: string): Promise<User> => {
    const user = await platform.store.findUserById(userId);
    if (!user) throw new ApiError("NOT_FOUND", "No such user");
    return user;
  };

  app.post(
    "/admin/v1/quotes",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "Push one quote or many (in order): the engine fills, triggers and re-prices on each",
        description:
          "A quote of a symbol whose market is closed at the server's time is not taken (as MetaTrader 5 takes no quote " +
          "outside a symbol's sessions): it is listed in `closed` and the push goes on with the others.",
        body: Type.Union([
          QuoteInputSchema,
          Closed({ quotes: Type.Array(QuoteInputSchema, { minItems: 1, maxItems: MAX_QUOTES_PER_PUSH }) }),
        ]),
        response: {
          200: DataResponse(
            Type.Object({
              accepted: Type.Integer({ description: "quotes taken" }),
              closed: Type.Array(Type.String(), {
                description: "the symbols of the quotes not taken because their market was closed, in push order",
              }),
              time: Type.String({ format: "date-time" }),
            }),
          ),
          ...adminErrors,
        },
      },
    },
    async (request) => {
      const quotes = "quotes" in request.body ? request.body.quotes : [request.body];
      // Read and check every quote as the engine will before pushing any: a bad one refuses the whole push,
      // nothing half-applied. (A refused quote inside the batch used to answer 400 after the quotes before it
      // had moved the market and closed positions at their stops.) Only the storage failing part-way (503)
      // can leave a batch half pushed.
      const inputs = quotes.map((quote, index) => {
        const instrument = platform.instrument(quote.symbol);
        const field = quotes.length > 1 ? `quotes[${index}]` : "quote";
        const input = {
          symbol: instrument.symbol,
          bid: priceFromWire(quote.bid, instrument, `${field}.bid`),
          ask: priceFromWire(quote.ask, instrument, `${field}.ask`),
          bids: bookFromWire(quote.bids, instrument, `${field}.bids`),
          asks: bookFromWire(quote.asks, instrument, `${field}.asks`),
        };
        const checked = readTick(input, maxPricePoints(instrument));
        if (!checked.ok) throw new ApiError(checked.code, `${field}: ${checked.message}`);
        return input;
      });
      let time = platform.clock.now();
      let accepted = 0;
      const closed: string[] = [];
      for (const input of inputs) {
        try {
          time = (await platform.pushQuote(input)).time;
          accepted += 1;
        } catch (error) {
          if (!isMarketClosed(error)) throw error;
          closed.push(input.symbol);
        }
      }
      return { data: { accepted, closed, time: timeToWire(time) } };
    },
  );

  const BalanceBody = Closed({
    amount: Decimal,
    comment: Type.Optional(Type.String({ maxLength: 200 })),
    reference: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description:
          "Your id of the operation (a payment's), unique per account (the last 1,000 are remembered): a retry with " +
          "it and the same amount answers the first operation (`duplicate: true`) and moves no money again; another " +
          "operation with it is DUPLICATE_REFERENCE (409)",
      }),
    ),
  });
  // The engine's credit command is signed; the back office gives a positive amount to each route (found by an
  // audit: a credit could be granted but never taken back, every negative amount being refused).
  for (const [path, kind, sign, summary] of [
    ["deposit", "deposit", 1, "Deposit to an account"],
    ["withdraw", "withdraw", 1, "Withdraw from an account"],
    ["credit", "credit", 1, "Grant credit to an account"],
    [
      "credit/remove",
      "credit",
      -1,
      "Take credit back from an account (at most its credit, and not below the margin its positions use)",
    ],
  ] as const) {
    app.post(
      `/admin/v1/accounts/:accountId/${path}`,
      {
        config,
        schema: {
          tags: ["Admin"],
          summary: `${summary} (amount in the account currency)`,
          params: AccountIdParams,
          body: BalanceBody,
          response: { 200: DataResponse(AdminBalanceResult), ...adminErrors, 409: ErrorResponse },
        },
      },
      async (request) => {
        const account = accountOf(request.params.accountId);
        const result = await platform.execute({
          kind,
          accountId: account.id,
          amount: sign * moneyFromWire(request.body.amount, account.currency),
          comment: request.body.comment,
          reference: request.body.reference,
        });
        return {
          data: { ...adminAccount(account), operationId: result.operationId!, duplicate: result.duplicate === true },
        };
      },
    );
  }

  app.get(
    "/admin/v1/accounts",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "Trading accounts by login, a page at a time (table with nextCursor)",
        description: columnsDescription(AdminAccountTable),
        querystring: AccountsPageQuery,
        response: { 200: AdminAccountTable, ...adminErrors },
      },
    },
    async (request) => {
      const limit = request.query.limit ?? PLATFORM_LIMITS.pageLimit;
      const after = request.query.cursor === undefined ? 0 : Number(request.query.cursor);
      if (!Number.isSafeInteger(after) || after < 0)
        throw new ApiError("INVALID_DATA", "cursor must be the nextCursor of the previous page");
      // Unbounded before (found by the audit of the back office of 7 December): every account and its metrics.
      const accounts = platform.engine.state.accounts;
      const logins = loginsInOrder(accounts);
      const start = firstAbove(logins, after);
      const page = logins.slice(start, start + limit + 1).map((login) => accounts.get(login)!);
      const rows = page.slice(0, limit).map(adminAccount);
      return toTable(AdminAccountTable, rows, page.length > limit ? String(rows.at(-1)!.login) : null);
    },
  );

  app.get(
    "/admin/v1/groups",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "Account groups: their margin-call and stop-out levels, and how many accounts each holds (table)",
        description: columnsDescription(
          AdminGroupTable,
          "The groups are the server's configuration (BOURSE_GROUPS_FILE); `default` marks the one new accounts join. " +
            "Levels are percent of margin level (equity / margin × 100).",
        ),
        response: { 200: AdminGroupTable, ...adminErrors },
      },
    },
    async () => {
      const counts = new Map<string, number>();
      for (const account of platform.engine.state.accounts.values())
        counts.set(account.group, (counts.get(account.group) ?? 0) + 1);
      const { groups, defaultGroup } = platform.engineConfig;
      return toTable(
        AdminGroupTable,
        groups.map((group) => ({
          name: group.name,
          marginCallLevel: group.marginCallLevelPercent,
          stopOutLevel: group.stopOutLevelPercent,
          default: group.name === defaultGroup,
          accounts: counts.get(group.name) ?? 0,
        })),
      );
    },
  );

  app.get(
    "/admin/v1/accounts/:accountId/ledger",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: `${LEDGER_SUMMARY}: the client's ledger, for the back office`,
        // The back office could not read an account's balance operations at all (the audit of 7 December): a
        // payment bridge had nothing to look an operation up in after a lost answer.
        description: LEDGER_DESCRIPTION,
        params: AccountIdParams,
        querystring: LedgerQuerySchema,
        response: { 200: LedgerTable, ...adminErrors },
      },
    },
    async (request) => ledgerTable(platform, accountOf(request.params.accountId), request.query),
  );

  // The client's trading as the back office sees it: the same tables the Client API answers its owner (support could
  // read an account's balance and ledger, never its positions, orders or histories).
  app.get(
    "/admin/v1/accounts/:accountId/positions",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "An account's open positions (table) with current price and floating profit, as its client sees them",
        description: columnsDescription(PositionTable),
        params: AccountIdParams,
        querystring: NoQuery,
        response: { 200: PositionTable, ...adminErrors },
      },
    },
    async (request) => openPositionsOf(platform, accountOf(request.params.accountId)),
  );

  app.post(
    "/admin/v1/accounts/:accountId/positions/:positionId/close",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "Close a client's position, whole or partly, for them (the dealing desk)",
        description:
          "The close a client asks the broker for (their app does not work) or the dealing desk makes: the same rules " +
          "and answer as the client's own close (POST /api/v1/accounts/{accountId}/positions/{positionId}/close, " +
          "clientOrderId included), but its order and deal say `reason: DEALER`, and the client is notified " +
          "(DEALER_CLOSE) and sees it on their stream.",
        params: PositionParams,
        body: ClosePositionBody,
        response: { 200: DataResponse(CloseResult), ...adminErrors, 409: ErrorResponse },
      },
      // No body at all closes the whole position.
      preValidation: emptyBodyIsObject,
    },
    async (request) =>
      closePositionOf(
        platform,
        accountOf(request.params.accountId),
        Number(request.params.positionId),
        request.body ?? {},
        "DEALER",
      ),
  );

  app.get(
    "/admin/v1/accounts/:accountId/orders",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "An account's working (pending) orders (table), as its client sees them",
        description: columnsDescription(WorkingOrderTable),
        params: AccountIdParams,
        querystring: NoQuery,
        response: { 200: WorkingOrderTable, ...adminErrors },
      },
    },
    async (request) => workingOrdersOf(platform, accountOf(request.params.accountId)),
  );

  for (const [kind, summary, history] of HISTORIES)
    app.get(
      `/admin/v1/accounts/:accountId/history/${kind}`,
      {
        config,
        schema: {
          tags: ["Admin"],
          summary: `${summary}, as its client sees it`,
          description: columnsDescription(history.table, HISTORY_DESCRIPTION),
          params: AccountIdParams,
          querystring: HistoryQuerySchema,
          response: { 200: history.table, ...adminErrors },
        },
      },
      async (request) => history.ofAccount(platform, accountOf(request.params.accountId), request.query),
    );

  app.get(
    "/admin/v1/accounts/:accountId",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "One account",
        params: AccountIdParams,
        response: { 200: DataResponse(AdminAccount), ...adminErrors },
      },
    },
    async (request) => ({ data: adminAccount(accountOf(request.params.accountId)) }),
  );

  app.post(
    "/admin/v1/accounts/:accountId",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "Change an account's leverage, group or trading permission",
        description:
          "A new leverage margins the open positions at it (FOREX and CFD_LEVERAGE instruments); the account is then " +
          "judged at once, at the new group's levels too, so the change may enter a margin call or stop the account " +
          "out in this request (its answer shows the account after).",
        params: AccountIdParams,
        body: Closed({
          leverage: Type.Optional(
            Type.Integer({ minimum: platform.engineConfig.leverageMin, maximum: platform.engineConfig.leverageMax }),
          ),
          group: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          tradingEnabled: Type.Optional(Type.Boolean()),
        }),
        response: { 200: DataResponse(AdminAccount), ...adminErrors },
      },
    },
    async (request) => {
      const account = accountOf(request.params.accountId);
      await platform.execute({ kind: "changeAccount", accountId: account.id, ...request.body });
      return { data: adminAccount(account) };
    },
  );

  app.get(
    "/admin/v1/users",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "Users by id, a page at a time, with their trading accounts (table with nextCursor)",
        description: columnsDescription(AdminUserTable),
        querystring: UsersPageQuery,
        response: { 200: AdminUserTable, ...adminErrors },
      },
    },
    async (request) => {
      const limit = request.query.limit ?? PLATFORM_LIMITS.pageLimit;
      // One query a page: it was one query per user at once, which a PostgreSQL pool refused past 1,000 users (and
      // every request meanwhile); found by the audit of the back office of 7 December.
      const users = await platform.store.listUsers(request.query.cursor ?? null, limit);
      const now = platform.clock.now();
      const rows = users.map((user) => ({
        ...adminUserView(user, now),
        accounts: [...platform.accountIdsOf(user.id)],
      }));
      return toTable(AdminUserTable, rows, users.length === limit ? users.at(-1)!.id : null);
    },
  );

  app.get(
    "/admin/v1/users/:userId",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "One user and their accounts",
        params: UserParams,
        response: {
          200: DataResponse(Type.Object({ user: AdminUserView, accounts: Type.Array(AdminAccount) })),
          ...adminErrors,
        },
      },
    },
    async (request) => {
      const user = await userOf(request.params.userId);
      const accounts = platform
        .accountIdsOf(user.id)
        .map((id) => adminAccount(platform.engine.state.accounts.get(id)!));
      return { data: { user: adminUserView(user, platform.clock.now()), accounts } };
    },
  );

  app.post(
    "/admin/v1/users/:userId/unlock",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "Lift a user's sign-in lock and clear their count of failed sign-ins",
        params: UserParams,
        response: { 200: OkResponse, ...adminErrors },
      },
    },
    async (request) => {
      const user = await userOf(request.params.userId);
      await platform.store.recordSuccessfulLogin(user.id);
      return { data: "OK" as const };
    },
  );

  const SessionsEnded = DataResponse(
    Type.Object({ sessionsEnded: Type.Integer({ description: "Sessions of the user that were still active" }) }),
  );

  app.post(
    "/admin/v1/users/:userId",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "Disable a user (compliance, fraud) or enable them again",
        description:
          "Disabled, the user cannot sign in (USER_DISABLED, told only to whoever gives the right password; anyone " +
          "else gets INVALID_CREDENTIALS), every session of theirs ends and every API key is revoked, their streams " +
          "closed at once (REVOKED). Their accounts, positions and working orders stay: stops, take profits and " +
          "stop-outs go on, and the back office may still close positions (the dealing desk). Enabled again, they " +
          "sign in and make new API keys.",
        params: UserParams,
        body: Closed({ disabled: Type.Boolean() }),
        response: {
          200: DataResponse(
            Type.Object({
              user: AdminUserView,
              sessionsEnded: Type.Integer({ description: "Sessions this change ended" }),
              apiKeysRevoked: Type.Integer({ description: "API keys this change revoked" }),
            }),
          ),
          ...adminErrors,
        },
      },
    },
    async (request) => {
      const { user, sessionsEnded, apiKeysRevoked } = await auth.setDisabled(
        request.params.userId,
        request.body.disabled,
      );
      return { data: { user: adminUserView(user, platform.clock.now()), sessionsEnded, apiKeysRevoked } };
    },
  );

  app.post(
    "/admin/v1/users/:userId/password",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "Set a user's password (support for a client who forgot theirs); every session of the user ends",
        description:
          "The user's sessions end at once (their streams close with REVOKED), as a lost password may be a stolen " +
          "one, and the sign-in lock is lifted. The user's API keys stay valid: list them (GET " +
          "/admin/v1/users/{userId}/api-keys) and revoke those in doubt (DELETE …/api-keys/{keyId}), or disable " +
          "the user.",
        params: UserParams,
        body: Closed({ password: Type.String({ minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH }) }),
        response: { 200: SessionsEnded, ...adminErrors },
      },
    },
    async (request) => ({ data: await auth.resetPassword(request.params.userId, request.body.password) }),
  );

  // A reset password may have been a stolen one, and keys made with it outlive the sessions: the back office lists and
  // revokes them (found by the review of 7 December, seventh session: the reset's description said so, no route did).
  app.get(
    "/admin/v1/users/:userId/api-keys",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary:
          "A user's API keys, the active ones first, each newest first, revoked ones included (table); never their secrets",
        description: columnsDescription(ApiKeyTable),
        params: UserParams,
        response: { 200: ApiKeyTable, ...adminErrors },
      },
    },
    async (request) => {
      const user = await userOf(request.params.userId);
      return toTable(ApiKeyTable, (await ApiKeyService.for(platform).list(user.id)).map(apiKeyView));
    },
  );

  app.delete(
    "/admin/v1/users/:userId/api-keys/:keyId",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "Revoke one of a user's API keys at once; its sockets close (4004, INVALID_API_KEY)",
        params: Closed({ ...UserParams.properties, keyId: KeyIdParameter }),
        response: { 200: OkResponse, ...adminErrors },
      },
    },
    async (request) => {
      await ApiKeyService.for(platform).revoke(request.params.userId, request.params.keyId);
      return { data: "OK" as const };
    },
  );

  app.delete(
    "/admin/v1/users/:userId/sessions",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "End every session of a user: signed out everywhere (a lost phone), their streams closed at once",
        params: UserParams,
        response: { 200: SessionsEnded, ...adminErrors },
      },
    },
    async (request) => ({ data: await auth.endSessions(request.params.userId) }),
  );

  app.put(
    "/admin/v1/users",
    {
      config,
      schema: {
        tags: ["Admin"],
        summary: "Create a user with a funded account (the back office's sign-up)",
        body: Closed({
          email: Email,
          password: Type.String({ minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH }),
          name: Type.String({ minLength: 1, maxLength: 100 }),
        }),
        response: {
          200: DataResponse(Type.Object({ user: UserViewSchema, account: AdminAccount })),
          ...adminErrors,
          409: ErrorResponse,
        },
      },
    },
    async (request) => {
      const { user, account } = await auth.signup(request.body);
      return { data: { user: userView(user), account: adminAccount(account) } };
    },
  );
};
