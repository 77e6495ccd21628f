/**
 * Auth (seed 000 "Auth", API.md): sign up, sign in, check the session, change the password, sign out.
 * Sign-up and sign-in are public and rate limited per address like every route; sign-ups also per address per hour
 * (BOURSE_SIGNUPS_PER_ADDRESS_PER_HOUR): each makes a user and a funded demo account, which the request rate alone
 * allowed by the hundred thousand an hour. Attempts count, refused ones too: each costs an argon2 hash. An IPv6
 * address counts with its /64 (`subscriberBlock`: one subscriber's line picks any address in it). The back office's
 * sign-ups (`/admin/v1`) are not counted. BOURSE_SIGNUP=closed refuses every sign-up here (403 SIGNUP_CLOSED): a live
 * broker's users are created by its back office, which that setting does not close.
 */
import { Type } from "@sinclair/typebox";
import type { RouteModule } from "../app.ts";
import { ApiError } from "../errors.ts";
import { subscriberBlock } from "../client-address.ts";
import { FixedWindowLimiter } from "../rate-window.ts";
import type { FastifyRequest } from "fastify";
import {
  PASSWORD_MAX_LENGTH,
  PASSWORD_MIN_LENGTH,
  REFRESH_TOKEN_REUSE_GRACE_MS,
  type IssuedSession,
  type Principal,
} from "../auth.ts";
import {
  Closed,
  DataResponse,
  Email,
  ErrorResponse,
  OkResponse,
  authenticatedErrors,
  emptyBodyIsObject,
} from "../schemas.ts";
import { AccountViewSchema, UserViewSchema, accountView, userView } from "../views.ts";
import { timeToWire } from "../wire.ts";

const Password = Type.String({ minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH });

const TokenData = Type.Object({
  token: Type.String({ description: "Send as `Authorization: <token>` or `Authorization: Bearer <token>`" }),
  expiresAt: Type.String({ format: "date-time" }),
  refreshToken: Type.Optional(
    Type.String({
      description:
        "With `keepSignedIn: true` at sign-in or sign-up, and on each refresh that presented one: keep it as a " +
        "password (a phone's keychain), and send it to POST /api/v1/session/refresh for a new token when this one " +
        "expired. Each use answers the next; store it before using it.",
    }),
  ),
  refreshExpiresAt: Type.Optional(
    Type.String({
      format: "date-time",
      description: "Until when the refresh token renews the session: 7 days from the sign-in",
    }),
  ),
  user: UserViewSchema,
  account: Type.Union([AccountViewSchema, Type.Null()], { description: "The session's current account" }),
});

/** A refresh token: `rt_`, the session's id, its generation and 43 characters (the service checks the pattern). */
const RefreshToken = Type.String({ minLength: 1, maxLength: 200 });

const KeepSignedIn = Type.Optional(
  Type.Boolean({
    description:
      "Default false. true: the answer carries a refresh token, which renews the session without the password for 7 days " +
      "(a phone's \"keep me signed in\"); such a session counts toward the user's 100 for its 7 days, unless signed out",
  }),
);

/** The window of BOURSE_SIGNUPS_PER_ADDRESS_PER_HOUR: an hour from an address's first sign-up. */
const SIGNUP_WINDOW_MS = 3_600_000;

export const authRoutes: RouteModule = (app, { platform, auth }) => {
  const signupsByAddress = new FixedWindowLimiter(platform.config.signupsPerAddressPerHour, SIGNUP_WINDOW_MS, () =>
    platform.clock.now(),
  );
  // Failed sign-ins per client address in a lock period (BOURSE_LOGIN_ADDRESS_MAX_FAILURES): the lockout per user
  // alone let one address try a common password on every user in turn.
  /** Sign-ins under way per address (bounded by the addresses sending requests at once). */
  const loginsUnderWay = new Map<string, number>();
  const failedLoginsByAddress = new FixedWindowLimiter(
    platform.config.loginAddressMaxFailures,
    platform.config.loginLockSeconds * 1000,
    () => platform.clock.now(),
  );

  /** A sign-in's or a refresh's answer: the token, its expiry, the user and the session's account. */
  const tokenData = ({ token, session, user, refreshToken }: IssuedSession) => {
    const account = session.accountId === null ? null : (platform.engine.state.accounts.get(session.accountId) ?? null);
    return {
      token,
      expiresAt: timeToWire(session.expiresAt),
      ...(refreshToken === undefined || session.refreshExpiresAt === null
        ? {}
        : { refreshToken, refreshExpiresAt: timeToWire(session.refreshExpiresAt) }),
      user: userView(user),
      account: account ? accountView(platform, account) : null,
    };
  };

  app.post(
    "/api/v1/signup",
    {
      config: { auth: "public" },
      schema: {
        tags: ["Auth"],
        summary: "Sign up: creates the user and a funded demo account, and signs in",
        description:
          "One client address may attempt BOURSE_SIGNUPS_PER_ADDRESS_PER_HOUR sign-ups (default 30) in an hour counted from its first, refused ones included; the next answer 429 RATE_LIMITED with Retry-After. " +
          "With BOURSE_SIGNUP=closed every sign-up answers 403 SIGNUP_CLOSED, and users are created by the back office (PUT /admin/v1/users).",
        body: Closed({
          email: Email,
          password: Password,
          name: Type.String({ minLength: 1, maxLength: 100 }),
          keepSignedIn: KeepSignedIn,
        }),
        response: {
          200: DataResponse(TokenData),
          400: ErrorResponse,
          403: ErrorResponse,
          409: ErrorResponse,
          429: ErrorResponse,
          503: ErrorResponse,
        },
      },
    },
    async (request) => {
      // Before the count: a refusal that costs nothing spends none of the address's sign-ups.
      if (platform.config.signup === "closed") throw new ApiError("SIGNUP_CLOSED");
      const attempts = signupsByAddress.hit(subscriberBlock(request.ip));
      if (attempts.exceeded)
        throw new ApiError(
          "RATE_LIMITED",
          `At most ${attempts.limit} sign-ups per hour from one address: try again in ${Math.ceil(attempts.resetSeconds / 60)} minutes`,
          { "retry-after": String(attempts.resetSeconds) },
        );
      const { account, ...issued } = await auth.signup(request.body);
      return { data: { ...tokenData(issued), account: accountView(platform, account) } };
    },
  );

  app.post(
    "/api/v1/login",
    {
      config: { auth: "public" },
      schema: {
        tags: ["Auth"],
        summary: "Sign in with email or account login, and password",
        description:
          "BOURSE_LOGIN_MAX_FAILURES wrong passwords in a row lock the user (or an identifier no user has) for " +
          "BOURSE_LOGIN_LOCK_SECONDS; BOURSE_LOGIN_ADDRESS_MAX_FAILURES failed sign-ins from one client address in such " +
          "a period, whichever users they name, lock the address until it ends. Both answer 429 LOGIN_LOCKED with " +
          "Retry-After. A user the broker disabled answers 403 USER_DISABLED, told only after the right password.",
        body: Type.Union([
          Closed({
            email: Email,
            password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }),
            keepSignedIn: KeepSignedIn,
          }),
          Closed({
            login: Type.Union([Type.Integer({ minimum: 1 }), Type.String({ pattern: "^[0-9]{1,15}$" })]),
            password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }),
            keepSignedIn: KeepSignedIn,
          }),
        ]),
        response: {
          200: DataResponse(TokenData),
          400: ErrorResponse,
          401: ErrorResponse,
          403: ErrorResponse,
          429: ErrorResponse,
          503: ErrorResponse,
        },
      },
    },
    async (request) => {
      const body = request.body;
      const keepSignedIn = body.keepSignedIn ?? false;
      const credentials =
        "email" in body
          ? { email: body.email, password: body.password, keepSignedIn }
          : { login: Number(body.login), password: body.password, keepSignedIn };
      const address = subscriberBlock(request.ip);
      // Refused before any password work: a locked address costs no argon2 either. Attempts under way count as
      // failures to come: sent in parallel, each passed the check before any failure was counted (the review of
      // 7 December: 12 parallel guesses against a bound of 3 were 12 password checks).
      const underWay = loginsUnderWay.get(address) ?? 0;
      const lockedSeconds = failedLoginsByAddress.blocked(address, underWay);
      if (lockedSeconds !== null)
        throw new ApiError(
          "LOGIN_LOCKED",
          `Too many failed sign-ins from this address: try again in ${lockedSeconds} s`,
          { "retry-after": String(lockedSeconds) },
        );
      loginsUnderWay.set(address, underWay + 1);
      let signedIn: Awaited<ReturnType<typeof auth.login>>;
      try {
        signedIn = await auth.login(credentials);
      } catch (error) {
        if (error instanceof ApiError && error.code === "INVALID_CREDENTIALS") failedLoginsByAddress.hit(address);
        throw error;
      } finally {
        const left = (loginsUnderWay.get(address) ?? 1) - 1;
        if (left === 0) loginsUnderWay.delete(address);
        else loginsUnderWay.set(address, left);
      }
      return { data: tokenData(signedIn) };
    },
  );

  app.get(
    "/api/v1/session",
    {
      schema: {
        tags: ["Auth"],
        summary: "Check the session: its user, current account and expiry",
        response: {
          200: DataResponse(
            Type.Object({
              user: UserViewSchema,
              account: Type.Union([AccountViewSchema, Type.Null()]),
              accounts: Type.Array(Type.Integer(), { description: "Logins of every account of the user" }),
              expiresAt: Type.String({ format: "date-time" }),
              serverTime: Type.String({
                format: "date-time",
                description: "The server's clock: a client measures its own offset by it (expiry, expirations)",
              }),
            }),
          ),
          ...authenticatedErrors,
        },
      },
    },
    async (request) => {
      const principal = request.principal!;
      const [user, session] = await Promise.all([
        platform.store.findUserById(principal.userId),
        platform.store.findSession(principal.sessionId),
      ]);
      if (!user || !session) throw new ApiError("UNAUTHORIZED", "The token is not valid");
      const account =
        session.accountId === null ? null : (platform.engine.state.accounts.get(session.accountId) ?? null);
      return {
        data: {
          user: userView(user),
          account: account ? accountView(platform, account) : null,
          accounts: [...platform.accountIdsOf(user.id)],
          expiresAt: timeToWire(principal.expiresAt),
          serverTime: timeToWire(platform.clock.now()),
        },
      };
    },
  );

  app.post(
    "/api/v1/session/refresh",
    {
      config: { auth: "userOrRefreshToken" },
      schema: {
        tags: ["Auth"],
        summary: "A new token for this session, expiring a full lifetime from now",
        description:
          "Two ways: with the session's token in Authorization while it works, or with no token (or an expired one) " +
          'and the session\'s refresh token in the body, `{"refreshToken": ...}` (a phone back from the background ' +
          "past its token's hour). A refresh token is single-use: the answer carries the next one, and the one sent is " +
          "taken again only for " +
          `${REFRESH_TOKEN_REUSE_GRACE_MS / 1000} s (its answer may have been lost); sent after that, it ends the ` +
          "session (401 SESSION_REVOKED: one of its two holders is not its owner). A refresh with the Authorization " +
          "token answers no refresh token: the one held stays. " +
          "The session keeps its id: a logout or a password change still ends every token of it, and the native " +
          "streams it authorised go on (send `authorize` with the new token on an open stream to move its expiry; " +
          "a Pusher channel ends at the expiry it was granted with: ask /api/v2/ws/auth again). The old token works " +
          "until its own expiry. A session lives at most 7 days from its sign-in, whatever the refreshes: then " +
          "sign in again (401 SESSION_EXPIRED with a refresh token, TOKEN_EXPIRED with a token; the new token's " +
          "expiresAt says when).",
        body: Closed({ refreshToken: Type.Optional(RefreshToken) }),
        response: { 200: DataResponse(TokenData), ...authenticatedErrors },
      },
      // No body at all: the refresh with the Authorization token, as before the refresh token.
      preValidation: emptyBodyIsObject,
    },
    async (request) => {
      const refreshToken = request.body.refreshToken;
      if (refreshToken !== undefined) return { data: tokenData(await auth.refreshWithToken(refreshToken)) };
      return { data: tokenData(await auth.refresh(principalOrRefusal(request))) };
    },
  );

  app.post(
    "/api/v1/password",
    {
      schema: {
        tags: ["Auth"],
        summary: "Change the password; every other session of the user ends",
        description:
          "This session goes on with its token (and so does any copy of it), and its refresh tokens end (a copy not " +
          'yet used no longer works): the answer is `"OK"`. With `keepSignedIn: true` this session ends too, and the answer is a new ' +
          "session's, as a sign-in's (a token, a refresh token for 7 days, the user and the account): a thief who had " +
          "renewed the session with a copied refresh token is signed out with it. Its streams close with 4004: " +
          "reconnect them with the new token.",
        body: Closed({
          currentPassword: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }),
          newPassword: Password,
          keepSignedIn: KeepSignedIn,
        }),
        response: { 200: Type.Union([OkResponse, DataResponse(TokenData)]), ...authenticatedErrors },
      },
    },
    async (request) => {
      const { currentPassword, newPassword, keepSignedIn } = request.body;
      const issued = await auth.changePassword(request.principal!, currentPassword, newPassword, { keepSignedIn });
      return issued ? { data: tokenData(issued) } : { data: "OK" as const };
    },
  );

  app.post(
    "/api/v1/logout",
    {
      config: { auth: "userOrRefreshToken" },
      schema: {
        tags: ["Auth"],
        summary: "End this session: its token and refresh token stop working at once",
        description:
          "With the session's token in Authorization, or with its refresh token in the body, " +
          '`{"refreshToken": ...}` (a phone whose token expired signs out without renewing the session first).',
        body: Closed({ refreshToken: Type.Optional(RefreshToken) }),
        response: { 200: OkResponse, ...authenticatedErrors },
      },
      preValidation: emptyBodyIsObject,
    },
    async (request) => {
      const refreshToken = request.body.refreshToken;
      if (refreshToken !== undefined) await auth.logoutWithToken(refreshToken);
      else await auth.logout(principalOrRefusal(request));
      return { data: "OK" as const };
    },
  );
};

/** The `userOrRefreshToken` route's principal when no refresh token came: the refusal of its token, if one came. */
function principalOrRefusal(request: FastifyRequest): Principal {
  if (request.principal) return request.principal;
  throw (
    request.credentialRefusal ??
    new ApiError("UNAUTHORIZED", "Missing Authorization header, or a refreshToken in the body")
  );
}
