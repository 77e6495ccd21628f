/**
 * Users, passwords and sessions (DESIGN.md section 4).
 * - Passwords: argon2id with OWASP's minimum parameters (19 MiB, 2 passes, 1 lane).
 * - Tokens: JWT signed HS256 with the server's secret; the algorithm is pinned on verify, so a token
 *   claiming `none` or another algorithm is refused. Each token names its session (`jti`); the session
 *   row is checked on every request, so logout and a password change revoke at once; each revocation is
 *   published on the bus (`session.{sessionId}`), so the streams close the sockets it authorised at once.
 * - Sessions per user are bounded by the store: signing in at the bound revokes the user's oldest session.
 * - Sign-in answers the same error, after the same work, for an unknown email and a wrong password:
 *   an unknown email is verified against a dummy hash.
 * - Lockout: after `loginMaxFailures` failures in a row a user is locked for `loginLockSeconds`; so is an email
 *   or login no user has (remembered in memory), so the lock does not tell which are registered. The attempts
 *   for one user (by email or by any account login), and their password changes, run one at a time (see
 *   `oneAttemptPerUser`), so attempts sent in parallel cannot pass the lock together.
 */
import { hash, verify, type Algorithm } from "@node-rs/argon2";
import { Rounding, decimalToInteger, currencyDigits, hasUnpairedSurrogate, type Account } from "@bourse/core";
import { DuplicateError, type Session, type User } from "@bourse/store";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { createHmac, createSecretKey, randomBytes, randomUUID, type KeyObject } from "node:crypto";
import { sameSecret } from "./same-secret.ts";
import { ApiKeyService } from "./api-keys.ts";
import { BoundedMap } from "./bounded-map.ts";
import { publishRevocation, type RevocationReason } from "./bus.ts";
import { ApiError, errorText } from "./errors.ts";
import type { Platform } from "./platform.ts";

/** OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1. */
// 2 is Algorithm.Argon2id (a const enum, which isolated modules cannot read).
const ARGON2_OPTIONS = { algorithm: 2 as Algorithm.Argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;
const JWT_ALGORITHM = "HS256";
const JWT_ISSUER = "bourse";
const JWT_AUDIENCE = "bourse-client";

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 128;

/** Tokens whose verified claims are remembered at most (a few MB). */
const VERIFIED_TOKENS_REMEMBERED = 10_000;
/** Session rows remembered at most. */
const SESSIONS_REMEMBERED = 10_000;
/** How long a session may be kept alive by refreshes, from its sign-in: then the user signs in again. */
export const SESSION_MAX_LIFETIME_MS = 7 * 86_400_000;
/**
 * How long after a refresh token was replaced it is still taken, and replaced again: the answer that replaced it may
 * have been lost (a phone's network dropped mid-answer). Presented after that, it is a stolen token's use and ends the
 * session (OAuth 2.0 Security Best Current Practice, refresh token rotation; 30 s is Okta's default grace).
 */
export const REFRESH_TOKEN_REUSE_GRACE_MS = 30_000;
/**
 * A refresh token: `rt_`, its session's id, its generation (0 at sign-in, each refresh the next), and the HMAC-SHA256
 * of those and the session's nonce under the server's refresh key, in base64url (43 characters). Derived, not stored:
 * the store keeps the nonce and which generation is current, so every token the session ever issued is told apart from
 * a forged one, and an old one presented again ends the session however many refreshes came since (a row remembering
 * one replaced token let a thief who refreshed twice go unnoticed: the review of 7 December, ninth session).
 */
const REFRESH_TOKEN = /^rt_([0-9a-f-]{36})\.(0|[1-9][0-9]{0,8})\.([A-Za-z0-9_-]{43})$/;
/** How often expired and long-revoked session rows are deleted (`startSessionPurge`). */
export const SESSION_PURGE_INTERVAL_MS = 3_600_000;
/** Sign-in identifiers with no user behind them whose failures are remembered, at most. */
const UNKNOWN_IDENTIFIERS_REMEMBERED = 10_000;
/** Attempts for one user (or identifier) waiting behind the one under way, at most; more are refused as locked. */
const SIGN_IN_ATTEMPTS_WAITING = 16;

/** Failed sign-ins in a row for an identifier no user has, and the lock they led to (ms), as the store keeps a user's. */
interface UnknownIdentifierFailures {
  failures: number;
  lockedUntil: number | null;
}

/** How a request names a user: sign-in by email or account login, sign-up by email, password change by the user's id. */
type UserReference = { readonly email: string } | { readonly login: number } | { readonly userId: string };

/** The user a reference names, or null; and the account a sign-in by account login names. */
interface FoundUser {
  readonly user: User | null;
  readonly accountId: number | null;
}

interface VerifiedClaims {
  readonly subject: string;
  readonly sessionId: string;
  /** The token's `exp`, in ms. */
  readonly expiresAt: number;
}

/** Who a Client API request acts for. */
export interface Principal {
  readonly userId: string;
  readonly sessionId: string;
  readonly expiresAt: number;
  /** The session's account: the one it signed in to by login, else the user's first at sign-in; null: none yet. */
  readonly accountId: number | null;
}

/** A sign-in's or sign-up's choice: `keepSignedIn` asks for a refresh token (a phone's "keep me signed in"). */
export interface SessionRequest {
  readonly keepSignedIn?: boolean;
}

export interface IssuedSession {
  readonly token: string;
  readonly session: Session;
  readonly user: User;
  /** The session's new refresh token, shown this once (a sign-in, a refresh with the one before); else absent. */
  readonly refreshToken?: string;
}

export class AuthService {
  private dummyHash: Promise<string> | null = null;
  /** The signing key, imported once (jose would import a raw secret again on every sign and verify). */
  private readonly signingKey: KeyObject;
  /** The key refresh tokens are derived with: from the JWT secret, for this use alone. */
  private readonly refreshKey: Buffer;
  /** Token → its verified claims (see `verifiedClaims`). */
  private readonly verifiedTokens = new BoundedMap<string, VerifiedClaims>(VERIFIED_TOKENS_REMEMBERED);
  /** Session id → the session row (see `session`). */
  private readonly sessions = new BoundedMap<string, Session>(SESSIONS_REMEMBERED);
  /**
   * Counts the changes of session rows (revocations, refreshes): a row read before one finished is not remembered (it
   * may be stale). A refresh counted as none, so a read racing it cached the row as it was before, and the refreshed
   * token was refused at the old expiry (found by the review of 7 December, sixth session).
   */
  private revocations = 0;
  /** Identifiers no user has → their failures, so they lock like a user's (see `login`). */
  private readonly unknownIdentifiers = new BoundedMap<string, UnknownIdentifierFailures>(
    UNKNOWN_IDENTIFIERS_REMEMBERED,
  );
  /** Queue key → the attempt under way for it and how many wait behind it (see `oneAttemptPerUser`). */
  private readonly attemptQueues = new Map<string, { tail: Promise<unknown>; waiting: number }>();

  constructor(private readonly platform: Platform) {
    this.signingKey = createSecretKey(platform.config.jwtSecret);
    this.refreshKey = createHmac("sha256", platform.config.jwtSecret).update("bourse refresh tokens").digest();
  }

  /**
   * Deletes the session rows no token can use any more, now and every SESSION_PURGE_INTERVAL_MS until the platform
   * closes: each login adds a row, and nothing deleted them (251 logins, 251 rows, found by an audit). A row goes
   * once it expired, or was revoked, a whole session lifetime ago: every token of it has expired by then, so a
   * client still holding one is told TOKEN_EXPIRED as before, never something else. A session whose refresh token can
   * still renew it is kept (the store's rule).
   */
  startSessionPurge(): void {
    const purge = () =>
      this.purgeSessions().catch((error: unknown) =>
        this.platform.log.warn(`sessions: purge failed: ${errorText(error)}`),
      );
    void purge();
    const timer = setInterval(() => void purge(), SESSION_PURGE_INTERVAL_MS);
    timer.unref();
    this.platform.onClose(() => clearInterval(timer));
  }

  /** One purge (`startSessionPurge`); answers the rows deleted. */
  purgeSessions(): Promise<number> {
    return this.platform.store.purgeExpiredSessions(this.platform.clock.now() - this.config.sessionTtlSeconds * 1000);
  }

  private get config() {
    return this.platform.config;
  }

  /**
   * The hash of a new password (sign-up, a change, a user made by the back office). A lone UTF-16 surrogate is
   * refused: argon2 hashes UTF-8, which writes every one of them as U+FFFD, so "abcdefgh\ud800" and
   * "abcdefgh\udfff" were one password (found by the audit of bad input of 7 December, sixth session). Sign-in stays
   * lenient: it only compares.
   */
  async hashPassword(password: string): Promise<string> {
    if (hasUnpairedSurrogate(password))
      throw new ApiError(
        "INVALID_DATA",
        "The password holds a lone UTF-16 surrogate (half of a character), which cannot be written as UTF-8",
      );
    return hash(password, ARGON2_OPTIONS);
  }

  private async verifyPassword(passwordHash: string, password: string): Promise<boolean> {
    try {
      return await verify(passwordHash, password);
    } catch {
      return false;
    }
  }

  /** A real argon2id hash of a random secret: unknown users cost the same verify as known ones. */
  private equalWorkHash(): Promise<string> {
    this.dummyHash ??= this.hashPassword(randomUUID());
    return this.dummyHash;
  }

  /**
   * Creates the user, opens their demo account funded with the configured balance, and signs them in. The user is
   * saved before the account is opened (two stores): a sign-up whose account could not be opened (the engine was
   * unavailable, 503) left a user without an account whose every retry answered EMAIL_TAKEN. A retry with the same
   * password now finishes it; attempts for one email run one at a time, so two retries open one account.
   */
  signup(
    input: { email: string; password: string; name: string } & SessionRequest,
  ): Promise<IssuedSession & { account: Account }> {
    return this.oneAttemptPerUser({ email: input.email }, ({ user }) => this.attemptSignup(user, input));
  }

  private async attemptSignup(
    existing: User | null,
    input: { email: string; password: string; name: string } & SessionRequest,
  ): Promise<IssuedSession & { account: Account }> {
    const user = existing ? await this.unfinishedSignup(existing, input.password) : await this.createUser(input);
    const account = await this.openDemoAccount(user.id);
    const issued = await this.issueSession(user, account.id, input);
    return { ...issued, account };
  }

  /** The user of an earlier sign-up whose account was never opened, when the password is the same; else EMAIL_TAKEN. */
  private async unfinishedSignup(user: User, password: string): Promise<User> {
    if (this.platform.accountIdsOf(user.id).length > 0 || !(await this.verifyPassword(user.passwordHash, password)))
      throw new ApiError("EMAIL_TAKEN");
    // A sign-in by another door (found by the review of 7 December, seventh session).
    if (user.disabledAt !== null) throw new ApiError("USER_DISABLED");
    return user;
  }

  private async createUser(input: { email: string; password: string; name: string }): Promise<User> {
    return this.platform.store
      .createUser({
        id: randomUUID(),
        email: input.email,
        name: input.name,
        passwordHash: await this.hashPassword(input.password),
        createdAt: this.platform.clock.now(),
      })
      .catch((error: unknown) => {
        // Two sign-ups racing for one email: the store's unique index decides.
        if (error instanceof DuplicateError) throw new ApiError("EMAIL_TAKEN");
        throw error;
      });
  }

  /** Opens an account for the user with the demo balance deposited (one command, durable before this returns). */
  async openDemoAccount(
    userId: string,
    options: { currency?: string; leverage?: number; mode?: "HEDGING" | "NETTING" } = {},
  ): Promise<Account> {
    const currency = options.currency ?? this.config.demoCurrency;
    // The configured amount has at most the demo currency's decimals; another currency with fewer takes it rounded down.
    const amount = decimalToInteger(this.config.demoBalance, currencyDigits(currency), Rounding.DOWN);
    // One command: the account opens funded or not at all (two left an empty account when the second failed).
    const opened = await this.platform.execute({
      kind: "openAccount",
      userId,
      currency,
      leverage: options.leverage ?? this.config.demoLeverage,
      mode: options.mode ?? "HEDGING",
      ...(amount > 0 ? { deposit: { amount, comment: "Demo account funding" } } : {}),
    });
    return this.platform.engine.state.accounts.get(opened.accountId!)!;
  }

  /**
   * Signs in by email or by account login. Unknown user and wrong password are the same 401 after the
   * same argon2 work; a locked user gets LOGIN_LOCKED (429) with Retry-After, without a password check.
   */
  login(
    input: ({ email: string } | { login: number }) & { password: string } & SessionRequest,
  ): Promise<IssuedSession> {
    const reference = "email" in input ? { email: input.email } : { login: input.login };
    return this.oneAttemptPerUser(reference, (found, key) => this.attemptLogin(found, key, input.password, input));
  }

  /**
   * Runs `attempt` one at a time per user, whichever identifier names them: sign-ins by email or by any account
   * login, sign-ups and password changes of one user wait for each other. Otherwise parallel guesses each passed
   * the lock check before any failure was counted (one per identifier, 300 per identifier before that), and a
   * sign-in that read the old password hash opened its session after a password change had ended the others.
   * An identifier no user has is queued on its own. The attempt gets the user as read in its turn (the attempt
   * before may have changed the hash or the lock).
   */
  private async oneAttemptPerUser<T>(
    reference: UserReference,
    attempt: (found: FoundUser, key: string) => Promise<T>,
    byBackOffice = false,
  ): Promise<T> {
    const key = queueKey(reference, (await this.findUser(reference)).user);
    return this.oneAttemptAtATime(key, () => this.attemptInTurn(reference, key, attempt), byBackOffice);
  }

  private async attemptInTurn<T>(
    reference: UserReference,
    key: string,
    attempt: (found: FoundUser, key: string) => Promise<T>,
  ): Promise<T> {
    const found = await this.findUser(reference);
    const userKey = queueKey(reference, found.user);
    // A sign-up created the user while this attempt waited under the identifier: it queues for the user too,
    // holding the identifier (always taken before the user's queue, so no two attempts wait on each other).
    if (userKey !== key) return this.oneAttemptAtATime(userKey, () => this.attemptInTurn(reference, userKey, attempt));
    return attempt(found, key);
  }

  private async findUser(reference: UserReference): Promise<FoundUser> {
    const store = this.platform.store;
    if ("email" in reference) return { user: await store.findUserByEmail(reference.email), accountId: null };
    if ("userId" in reference) return { user: await store.findUserById(reference.userId), accountId: null };
    const account = this.platform.engine.state.accounts.get(reference.login);
    if (!account) return { user: null, accountId: null };
    return { user: await store.findUserById(account.userId), accountId: account.id };
  }

  /** A back-office change to a user, in turn with their sign-ins (`oneAttemptPerUser`), never refused for the queue. */
  private backOfficeTurn<T>(reference: { userId: string }, attempt: (found: FoundUser) => Promise<T>): Promise<T> {
    return this.oneAttemptPerUser(reference, attempt, true);
  }

  /**
   * `byBackOffice`: the back office's change (a reset, a disable, a sign-out everywhere) waits its turn past the bound
   * on waiting attempts, which anyone knowing the e-mail can fill with sign-ins (found by the review of 7 December,
   * seventh session: "signed out everywhere" answered 429).
   */
  private async oneAttemptAtATime<T>(key: string, attempt: () => Promise<T>, byBackOffice = false): Promise<T> {
    let queue = this.attemptQueues.get(key);
    if (!byBackOffice && queue && queue.waiting >= SIGN_IN_ATTEMPTS_WAITING)
      throw new ApiError("LOGIN_LOCKED", "Too many sign-in attempts at once", { "retry-after": "1" });
    if (!queue) this.attemptQueues.set(key, (queue = { tail: Promise.resolve(), waiting: 0 }));
    queue.waiting += 1;
    const result = queue.tail.then(attempt);
    queue.tail = result.catch(() => undefined);
    try {
      return await result;
    } finally {
      queue.waiting -= 1;
      if (queue.waiting === 0) this.attemptQueues.delete(key);
    }
  }

  private async attemptLogin(
    { user: found, accountId }: FoundUser,
    identifier: string,
    password: string,
    request: SessionRequest,
  ): Promise<IssuedSession> {
    const now = this.platform.clock.now();
    let user = found;
    if (!user) {
      // An identifier nobody has locks like a user's after the same failures, so the answers do not tell which
      // emails are registered (the store keeps a user's failures; these are remembered here).
      let failures = this.unknownIdentifiers.get(identifier) ?? { failures: 0, lockedUntil: null };
      throwIfLocked(failures.lockedUntil, now);
      // A lock that has run out starts a new count, as the store's does.
      if (failures.lockedUntil !== null) failures = { failures: 0, lockedUntil: null };
      await this.verifyPassword(await this.equalWorkHash(), password);
      // As the store counts a user's (recordFailedLogin): failures in a row, each one at the bound or past it locks.
      failures.failures += 1;
      if (failures.failures >= this.config.loginMaxFailures)
        failures.lockedUntil = now + this.config.loginLockSeconds * 1000;
      this.unknownIdentifiers.set(identifier, failures);
      throw new ApiError("INVALID_CREDENTIALS");
    }
    throwIfLocked(user.lockedUntil, now);
    if (!(await this.verifyPassword(user.passwordHash, password))) {
      await this.recordFailure(user.id, now);
      throw new ApiError("INVALID_CREDENTIALS");
    }
    // After the password: a guesser learns nothing of the user from it.
    if (user.disabledAt !== null) throw new ApiError("USER_DISABLED");
    if (user.failedLoginCount > 0 || user.lockedUntil !== null)
      user = await this.platform.store.recordSuccessfulLogin(user.id);
    return this.issueSession(user, accountId ?? this.platform.accountIdsOf(user.id)[0] ?? null, request);
  }

  /** A failed password check of a user: counted by the store, which locks at `loginMaxFailures` in a row. */
  private async recordFailure(userId: string, now: number): Promise<void> {
    await this.platform.store.recordFailedLogin(userId, {
      now,
      maxFailures: this.config.loginMaxFailures,
      lockMilliseconds: this.config.loginLockSeconds * 1000,
    });
  }

  /**
   * Opens a session. With `keepSignedIn` it gets refresh tokens for its 7 days (`refreshWithToken`); without, it ends
   * with its token unless refreshed while that works. Opt-in, as OAuth's offline access is: a session that refresh
   * tokens renew counts toward the user's bound for its 7 days, and a script signing in with a password every hour
   * would otherwise crowd out the user's phone (the review of 7 December, ninth session).
   */
  async issueSession(user: User, accountId: number | null, request: SessionRequest = {}): Promise<IssuedSession> {
    const now = this.platform.clock.now();
    const id = randomUUID();
    const nonce = request.keepSignedIn ? randomBytes(32).toString("hex") : null;
    const { session, revokedSessionIds } = await this.platform.store.createSession({
      id,
      userId: user.id,
      accountId,
      createdAt: now,
      // A whole second, as the token's `exp` says it (RFC 7519 NumericDate): the session announced the millisecond
      // and the token was refused up to 999 ms before it (found by the audit of time of 7 December).
      expiresAt: wholeSecond(now + this.config.sessionTtlSeconds * 1000),
      refresh: nonce === null ? null : { nonce, expiresAt: wholeSecond(now + SESSION_MAX_LIFETIME_MS) },
    });
    // At the user's session bound the store revoked the oldest session(s) to make room.
    this.revoked(revokedSessionIds, "sessionLimit");
    return {
      token: await this.signToken(user.id, session, now),
      session,
      user,
      ...(nonce === null ? {} : { refreshToken: this.refreshToken(id, 0, nonce) }),
    };
  }

  /** The refresh token of `sessionId` at `generation` (REFRESH_TOKEN). */
  private refreshToken(sessionId: string, generation: number, nonce: string): string {
    return `rt_${sessionId}.${generation}.${this.refreshTokenSecret(sessionId, generation, nonce)}`;
  }

  private refreshTokenSecret(sessionId: string, generation: number, nonce: string): string {
    return createHmac("sha256", this.refreshKey).update(`${sessionId}.${generation}.${nonce}`).digest("base64url");
  }

  /** The JWT of `session`, expiring with it. */
  private signToken(userId: string, session: Session, now: number): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: JWT_ALGORITHM, typ: "JWT" })
      .setSubject(userId)
      .setJti(session.id)
      .setIssuer(JWT_ISSUER)
      .setAudience(JWT_AUDIENCE)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(Math.floor(session.expiresAt / 1000))
      .sign(this.signingKey);
  }

  /**
   * A new token for the caller's session, whose expiry moves to a full lifetime from now (BOURSE_SESSION_TTL_SECONDS),
   * but never past SESSION_MAX_LIFETIME_MS from the sign-in: past that, sign in again. The session keeps its id, so
   * its revocation (logout, password change) still ends every token of it, and the streams it authorised go on (an
   * `authorize` with the new token moves their expiry). The old token works until its own expiry. Found by the audit
   * of a terminal's journey of 7 December (sixth session): a web terminal had to ask for the password every hour.
   */
  async refresh(principal: Principal): Promise<IssuedSession> {
    const now = this.platform.clock.now();
    const [user, current] = await Promise.all([
      this.platform.store.findUserById(principal.userId),
      this.session(principal.sessionId),
    ]);
    if (!user || !current) throw new ApiError("UNAUTHORIZED", "The token is not valid");
    // Not for a disabled user (a disable that failed halfway left the session: the review of 7 December, ninth session).
    if (user.disabledAt !== null) return this.disabledUsersSession(principal.sessionId);
    const wanted = Math.min(now + this.config.sessionTtlSeconds * 1000, current.createdAt + SESSION_MAX_LIFETIME_MS);
    const session = await this.platform.store.extendSession(user.id, principal.sessionId, wholeSecond(wanted), now);
    if (!session) throw new ApiError("SESSION_REVOKED");
    // A change like a revocation: the row is read afresh, and a read under way meanwhile is not remembered (two
    // refreshes at once included: the store keeps the later expiry).
    this.revocations += 1;
    this.sessions.delete(session.id);
    return { token: await this.signToken(user.id, session, now), session, user };
  }

  /**
   * A new token for the session of `refreshToken`, and the next refresh token: the way back for a client whose token
   * expired (a phone in the background past the token's hour), without the password. The session's expiry moves as
   * `refresh`'s does, never past 7 days from the sign-in. Each refresh token renews once: the one it replaced is taken
   * again only within REFRESH_TOKEN_REUSE_GRACE_MS (its answer may have been lost), and answered the same token as
   * then; any older one of the session presented ends it, since one of two holders of it is not its owner (OAuth 2.0
   * Security Best Current Practice, refresh token rotation). Found by the audit of a mobile app's reconnects of
   * 7 December (seventh session).
   */
  async refreshWithToken(refreshToken: string): Promise<IssuedSession> {
    const now = this.platform.clock.now();
    const presented = this.parseRefreshToken(refreshToken);
    // The store decides, under its lock, whether the token renews, and holds the expiry within the refresh tokens' end.
    const outcome = await this.platform.store.presentRefreshToken({
      ...presented,
      purpose: "refresh",
      now,
      expiresAt: wholeSecond(now + this.config.sessionTtlSeconds * 1000),
      reuseGraceMs: REFRESH_TOKEN_REUSE_GRACE_MS,
    });
    switch (outcome.kind) {
      case "unknown":
        throw refreshTokenNotValid();
      case "revoked":
      case "ended":
        throw new ApiError("SESSION_REVOKED");
      case "expired":
        throw new ApiError("SESSION_EXPIRED");
      case "reused":
        this.revoked([presented.sessionId], "refreshTokenReused");
        throw new ApiError("REFRESH_TOKEN_REUSED");
    }
    const { session, generation, nonce } = outcome;
    // A change like a revocation: the row is read afresh (see `refresh`).
    this.revocations += 1;
    this.sessions.delete(session.id);
    const user = await this.platform.store.findUserById(session.userId);
    if (!user) throw refreshTokenNotValid();
    if (user.disabledAt !== null) return this.disabledUsersSession(session.id);
    return {
      token: await this.signToken(user.id, session, now),
      session,
      user,
      refreshToken: this.refreshToken(session.id, generation, nonce),
    };
  }

  /** The principal of a token, or UNAUTHORIZED / TOKEN_EXPIRED / SESSION_REVOKED. */
  async authenticate(token: string): Promise<Principal> {
    const now = this.platform.clock.now();
    const claims = await this.verifiedClaims(token, now);
    if (claims.expiresAt <= now) throw new ApiError("TOKEN_EXPIRED");
    const { subject, sessionId } = claims;
    const session = await this.session(sessionId);
    if (!session || session.userId !== subject) throw new ApiError("UNAUTHORIZED", "The token is not valid");
    if (session.revokedAt !== null) throw new ApiError("SESSION_REVOKED");
    if (session.expiresAt <= now) throw new ApiError("TOKEN_EXPIRED");
    return {
      userId: session.userId,
      sessionId: session.id,
      // The token's own expiry when a refresh moved the session's later (the review of 7 December, sixth session: an
      // old token was said to last, and kept a stream open, as long as the refreshed one).
      expiresAt: Math.min(claims.expiresAt, session.expiresAt),
      accountId: session.accountId,
    };
  }

  /**
   * The claims of a correctly signed token. A token is verified once and its claims remembered (bounded,
   * keyed by the whole token string, so only the exact bytes that verified can hit): clients send the
   * same token with every request, and the signature check is the costliest step of authentication.
   * Expiry is checked by the caller on every use, and the session (revocation) too.
   */
  private async verifiedClaims(token: string, now: number): Promise<VerifiedClaims> {
    const remembered = this.verifiedTokens.get(token);
    if (remembered) return remembered;
    let claims: VerifiedClaims;
    try {
      const { payload } = await jwtVerify(token, this.signingKey, {
        algorithms: [JWT_ALGORITHM],
        issuer: JWT_ISSUER,
        audience: JWT_AUDIENCE,
        currentDate: new Date(now),
        requiredClaims: ["sub", "jti", "exp"],
      });
      claims = { subject: payload.sub!, sessionId: payload.jti!, expiresAt: payload.exp! * 1000 };
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new ApiError("TOKEN_EXPIRED");
      throw new ApiError("UNAUTHORIZED", "The token is not valid");
    }
    this.verifiedTokens.set(token, claims);
    return claims;
  }

  /**
   * The session row, remembered once read (bounded). Sessions change only through this service (logout,
   * password change, a sign-in past the session bound), which forgets what it changes, so a revocation
   * takes effect on the next request. Several server processes sharing one database (scale-out) must
   * broadcast revocations to each other: the `session.{id}` messages are that broadcast once the bus is
   * NATS (each process would forget the session on hearing it).
   */
  private async session(sessionId: string): Promise<Session | null> {
    const remembered = this.sessions.get(sessionId);
    if (remembered) return remembered;
    const revocations = this.revocations;
    const session = await this.platform.store.findSession(sessionId);
    // A revocation that finished while the row was read may have made it stale: use it once, do not keep it.
    if (session && revocations === this.revocations) this.sessions.set(sessionId, session);
    return session;
  }

  /**
   * After the store committed the revocation of these sessions: forgets them, then tells the streams
   * (the bus's `session.{id}`), which close or end what each authorised, at once.
   */
  private revoked(sessionIds: readonly string[], reason: RevocationReason): void {
    if (sessionIds.length === 0) return;
    this.revocations += 1;
    for (const id of sessionIds) this.sessions.delete(id);
    for (const id of sessionIds) publishRevocation(this.platform.bus, { kind: "session", id }, reason);
  }

  /**
   * Ends the session of `refreshToken` (a sign-out from a phone whose token expired: it need not renew the session to
   * end it), with any token the session issued; SESSION_REVOKED when it had ended.
   */
  async logoutWithToken(refreshToken: string): Promise<void> {
    const presented = this.parseRefreshToken(refreshToken);
    const now = this.platform.clock.now();
    const outcome = await this.platform.store.presentRefreshToken({
      ...presented,
      purpose: "end",
      now,
      expiresAt: now,
      reuseGraceMs: REFRESH_TOKEN_REUSE_GRACE_MS,
    });
    if (outcome.kind === "unknown") throw refreshTokenNotValid();
    if (outcome.kind !== "ended") throw new ApiError("SESSION_REVOKED");
    this.revoked([presented.sessionId], "logout");
  }

  /** The parts of a refresh token, with the check of its secret the store runs against the session's nonce. */
  private parseRefreshToken(refreshToken: string): {
    sessionId: string;
    generation: number;
    isGenuine: (nonce: string) => boolean;
  } {
    const parsed = REFRESH_TOKEN.exec(refreshToken);
    if (!parsed) throw refreshTokenNotValid();
    const sessionId = parsed[1]!;
    const generation = Number(parsed[2]);
    const secret = parsed[3]!;
    return {
      sessionId,
      generation,
      isGenuine: (nonce) => sameSecret(secret, this.refreshTokenSecret(sessionId, generation, nonce)),
    };
  }

  /** A session of a user the broker disabled, met on a refresh (a disable that failed halfway): ended now. */
  private async disabledUsersSession(sessionId: string): Promise<never> {
    const session = await this.platform.store.findSession(sessionId);
    if (session) await this.platform.store.revokeSession(session.userId, sessionId, this.platform.clock.now());
    this.revoked([sessionId], "userDisabled");
    throw new ApiError("USER_DISABLED");
  }

  async logout(principal: Principal): Promise<void> {
    await this.platform.store.revokeSession(principal.userId, principal.sessionId, this.platform.clock.now());
    this.revoked([principal.sessionId], "logout");
  }

  /**
   * Checks the current password, stores the new hash and ends every other session of the user. A wrong current
   * password counts as a failed sign-in and the lock applies, one attempt at a time: a stolen token must not
   * become a way to guess the password without the lockout.
   */
  /**
   * Changes the password and ends every other session of the user. The caller's session goes on with its token, and
   * its refresh tokens end: a thief's copy of them must not outlive the change (the review of 7 December, ninth
   * session). With `keepSignedIn` the caller moves to a new session instead, answered here as a sign-in is (the password
   * was just proven), and its old one ends with the others: a thief who had already renewed the session with a copied
   * refresh token holds a token of the old session, which then stops at once (found by the review of the first fix).
   */
  changePassword(
    principal: Principal,
    currentPassword: string,
    newPassword: string,
    request: SessionRequest = {},
  ): Promise<IssuedSession | null> {
    return this.oneAttemptPerUser({ userId: principal.userId }, ({ user }) =>
      this.attemptPasswordChange(user, principal, currentPassword, newPassword, request),
    );
  }

  private async attemptPasswordChange(
    user: User | null,
    principal: Principal,
    currentPassword: string,
    newPassword: string,
    request: SessionRequest,
  ): Promise<IssuedSession | null> {
    const now = this.platform.clock.now();
    if (!user) throw new ApiError("UNAUTHORIZED", "The token is not valid");
    throwIfLocked(user.lockedUntil, now);
    if (!(await this.verifyPassword(user.passwordHash, currentPassword))) {
      await this.recordFailure(user.id, now);
      throw new ApiError("WRONG_PASSWORD");
    }
    await this.setPassword(user, newPassword);
    if (request.keepSignedIn) {
      const issued = await this.issueSession(user, principal.accountId, { keepSignedIn: true });
      await this.endSessionsOf(user.id, "passwordChange", issued.session.id);
      return issued;
    }
    await this.endSessionsOf(user.id, "passwordChange", principal.sessionId);
    await this.platform.store.endRefreshTokens(user.id, principal.sessionId);
    // A change like a revocation: the row is read afresh (see `refresh`).
    this.revocations += 1;
    this.sessions.delete(principal.sessionId);
    return null;
  }

  /** Stores a new password's hash and lifts the user's sign-in lock, if one runs (a change, a reset). */
  private async setPassword(user: User, newPassword: string): Promise<void> {
    await this.platform.store.updatePasswordHash(user.id, await this.hashPassword(newPassword));
    if (user.failedLoginCount > 0 || user.lockedUntil !== null)
      await this.platform.store.recordSuccessfulLogin(user.id);
  }

  /**
   * The back office sets a user's password (a client who forgot theirs calls the broker's support: there is no
   * e-mail reset) and ends every session of the user, as a lost password may be a stolen one. The sign-in lock is
   * lifted with it. API keys stay: they are the user's own, revoked one by one.
   */
  resetPassword(userId: string, newPassword: string): Promise<{ sessionsEnded: number }> {
    return this.backOfficeTurn({ userId }, async ({ user }) => {
      if (!user) throw new ApiError("NOT_FOUND", "No such user");
      await this.setPassword(user, newPassword);
      return { sessionsEnded: await this.endSessionsOf(user.id, "passwordReset") };
    });
  }

  /**
   * Disables a user (compliance, fraud) or enables them again. Disabled, they cannot sign in (USER_DISABLED, told
   * only after the right password), every session of theirs ends and every API key is revoked, their streams closed
   * at once; their accounts, positions and working orders stay, and the server's stops and stop-outs go on. In turn
   * with their sign-ins, so none opens a session past it. Enabled again, they sign in and make new keys.
   */
  setDisabled(
    userId: string,
    disabled: boolean,
  ): Promise<{ user: User; sessionsEnded: number; apiKeysRevoked: number }> {
    return this.backOfficeTurn({ userId }, async ({ user: found }) => {
      if (!found) throw new ApiError("NOT_FOUND", "No such user");
      if (!disabled) {
        const user = await this.platform.store.setUserDisabled(found.id, null);
        return { user, sessionsEnded: 0, apiKeysRevoked: 0 };
      }
      const user =
        found.disabledAt === null
          ? await this.platform.store.setUserDisabled(found.id, this.platform.clock.now())
          : found;
      // Again when already disabled: a failure halfway through the first time left something to end.
      const sessionsEnded = await this.endSessionsOf(found.id, "userDisabled");
      const apiKeysRevoked = await ApiKeyService.for(this.platform).revokeAll(found.id, "userDisabled");
      return { user, sessionsEnded, apiKeysRevoked };
    });
  }

  /** Ends every session of a user (signed out everywhere: a lost phone); their streams close at once. */
  endSessions(userId: string): Promise<{ sessionsEnded: number }> {
    // In turn with the user's sign-ins, as a reset or a disable: a sign-in under way opened its session after the end
    // (found by the review of 7 December, seventh session).
    return this.backOfficeTurn({ userId }, async ({ user }) => {
      if (!user) throw new ApiError("NOT_FOUND", "No such user");
      return { sessionsEnded: await this.endSessionsOf(user.id, "sessionsEnded") };
    });
  }

  /**
   * Ends every session of the user but `exceptSessionId` (a password change keeps its own): the store revokes them, this
   * forgets them, and their streams close at once. Answers how many ended.
   */
  private async endSessionsOf(
    userId: string,
    reason: RevocationReason,
    exceptSessionId: string | null = null,
  ): Promise<number> {
    const revoked = await this.platform.store.revokeOtherSessions(userId, exceptSessionId, this.platform.clock.now());
    this.sessions.deleteWhere((session) => session.userId === userId && session.id !== exceptSessionId);
    this.revoked(revoked, reason);
    return revoked.length;
  }
}

/** Seed 000 sends `Authorization: <JWT>`; `Bearer <JWT>` is accepted too. Null when the header is absent. */
export function tokenFromAuthorization(header: string | undefined): string | null {
  if (header === undefined) return null;
  const trimmed = header.trim();
  if (trimmed === "") return null;
  const bearer = /^Bearer\s+(.+)$/i.exec(trimmed);
  return bearer ? bearer[1]!.trim() : trimmed;
}

/** The queue of a user's attempts (see `oneAttemptPerUser`), or of an identifier no user has. */
function queueKey(reference: UserReference, user: User | null): string {
  if (user) return `user:${user.id}`;
  if ("email" in reference) return `email:${reference.email.toLowerCase()}`;
  if ("login" in reference) return `login:${reference.login}`;
  return `user:${reference.userId}`;
}

function refreshTokenNotValid(): ApiError {
  return new ApiError("UNAUTHORIZED", "The refresh token is not valid");
}

/** `time` down to a whole second, as a token's `exp` says it (RFC 7519 NumericDate). */
function wholeSecond(time: number): number {
  return Math.floor(time / 1000) * 1000;
}

/** LOGIN_LOCKED (429) with Retry-After while a lock runs: a user's and an unknown identifier's alike. */
function throwIfLocked(lockedUntil: number | null, now: number): void {
  if (lockedUntil === null || lockedUntil <= now) return;
  const retryAfterSeconds = Math.ceil((lockedUntil - now) / 1000);
  throw new ApiError("LOGIN_LOCKED", undefined, { "retry-after": String(retryAfterSeconds) });
}
