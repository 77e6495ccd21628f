/**
 * API keys for the Automation API and the streams (DESIGN.md section 5): created, listed, rotated and
 * revoked through the Client API, presented as `Authorization: Bearer tk_live_...`.
 *
 * A key reads `tk_live_<prefix>_<secret>`: the prefix is 16 hex characters (64 random bits), public,
 * and the store's lookup; the secret is 256 random bits (crypto.randomBytes) in base64url. The whole key
 * is shown once, when created or rotated; the store keeps only its SHA-256 (a fast hash is right for a
 * high-entropy secret: nothing to brute-force) beside the prefix. `authenticate` looks the prefix up,
 * compares hashes in constant time, and records the last use at most once a minute per key.
 *
 * Refused keys are counted per client address: past `apiKeyRefusalsPerSecond` (BOURSE_API_KEY_REFUSALS_PER_SECOND,
 * 20) in a second, the address gets 429 for the rest of it without a lookup (a flood of made-up keys cost a store
 * query each, unlimited). The address is the client's by BOURSE_TRUST_PROXY (client-address.ts). A key this server
 * has accepted before is still looked up: behind a proxy not named there (or one NAT) many clients share an address,
 * and one client's flood must not lock the others' working keys out.
 *
 * Revoking or rotating a key is published on the bus (`apiKey.{keyId}`, after the store committed it), so
 * the streams close the native sockets the key authorised and end the Pusher channels it authorised at once.
 */
import type { ApiKey, ApiKeyScope } from "@bourse/store";
import { DuplicateError } from "@bourse/store";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { sameSecret } from "./same-secret.ts";
import { publishRevocation, type RevocationReason } from "./bus.ts";
import { BoundedMap } from "./bounded-map.ts";
import { ApiError, errorText } from "./errors.ts";
import type { Platform } from "./platform.ts";
import { FixedWindowLimiter } from "./rate-window.ts";

export const API_KEY_PREFIX = "tk_live_";
const KEY_PATTERN = /^tk_live_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const HASH_PREFIX = "sha256:";
/** Active (unrevoked) keys one user may hold: the store's bound. */
export const ACTIVE_API_KEYS_PER_USER = 50;
/** `lastUsedAt` is written at most this often per key. */
export const TOUCH_INTERVAL_MS = 60_000;
/** Keys whose last touch is remembered (the oldest are forgotten first: at worst one extra write). */
const TOUCH_MEMORY = 10_000;

export interface IssuedApiKey {
  readonly key: ApiKey;
  /** The whole key, `tk_live_...`: shown once, never stored. */
  readonly secret: string;
}

export interface ApiKeyPrincipal {
  readonly key: ApiKey;
  readonly userId: string;
  readonly accountId: number;
  readonly scope: ApiKeyScope;
}

export type ApiKeyAuthentication =
  | ({ readonly ok: true } & ApiKeyPrincipal)
  /** MALFORMED: not shaped like a key at all; INVALID: unknown, revoked, rotated away or wrong secret. */
  | { readonly ok: false; readonly reason: "MALFORMED" | "INVALID" }
  /** The address presented too many refused keys this second: not looked at. */
  | { readonly ok: false; readonly reason: "TOO_MANY_REFUSED"; readonly retryAfterSeconds: number };

/** The error for a refused key: `refused` for a bad one, 429 RATE_LIMITED with Retry-After for a blocked address. */
export function apiKeyRefusal(result: ApiKeyAuthentication & { ok: false }, refused: ApiError): ApiError {
  if (result.reason !== "TOO_MANY_REFUSED") return refused;
  return new ApiError(
    "RATE_LIMITED",
    `Too many invalid API keys a second from this address: try again in ${result.retryAfterSeconds} s`,
    { "retry-after": String(result.retryAfterSeconds) },
  );
}

/** True when `value` looks like one of our keys (the streams tell API keys from JWTs with it). */
export function isApiKeyFormat(value: string): boolean {
  return KEY_PATTERN.test(value);
}

export function hashApiKey(presented: string): string {
  return HASH_PREFIX + createHash("sha256").update(presented, "utf8").digest("hex");
}

function newSecret(): { prefix: string; secret: string; hash: string } {
  const prefix = randomBytes(8).toString("hex");
  const secret = `${API_KEY_PREFIX}${prefix}_${randomBytes(32).toString("base64url")}`;
  return { prefix, secret, hash: hashApiKey(secret) };
}

const services = new WeakMap<Platform, ApiKeyService>();

export class ApiKeyService {
  private readonly lastTouch = new BoundedMap<string, number>(TOUCH_MEMORY);
  private readonly refusedByAddress: FixedWindowLimiter;
  /** Prefixes of keys accepted since start (the latest 10,000): looked up even from a blocked address. */
  private readonly acceptedPrefixes = new BoundedMap<string, true>(TOUCH_MEMORY);

  /** The one service of a platform (the Client API's routes and the Automation API share it). */
  static for(platform: Platform): ApiKeyService {
    let service = services.get(platform);
    if (!service) services.set(platform, (service = new ApiKeyService(platform)));
    return service;
  }

  private constructor(private readonly platform: Platform) {
    this.refusedByAddress = new FixedWindowLimiter(platform.config.apiKeyRefusalsPerSecond, 1000, () =>
      platform.clock.now(),
    );
  }

  /** The user's keys, newest first, revoked ones included (at most 200). */
  list(userId: string): Promise<ApiKey[]> {
    return this.platform.store.listApiKeys(userId);
  }

  /** A new key bound to one of the user's accounts (403 for any other account). */
  async create(
    userId: string,
    input: { readonly name: string; readonly accountId: number; readonly scope: ApiKeyScope },
  ): Promise<IssuedApiKey> {
    this.platform.ownedAccount(userId, input.accountId);
    const active = (await this.list(userId)).filter((key) => key.revokedAt === null).length;
    if (active >= ACTIVE_API_KEYS_PER_USER)
      throw new ApiError("LIMIT_REACHED", `At most ${ACTIVE_API_KEYS_PER_USER} active API keys per user`);
    const issued = await this.withFreshPrefix(async ({ prefix, secret, hash }) => {
      const key = await this.platform.store.createApiKey({
        id: randomUUID(),
        userId,
        accountId: input.accountId,
        name: input.name,
        scope: input.scope,
        prefix,
        secretHash: hash,
        createdAt: this.platform.clock.now(),
      });
      return { key, secret };
    });
    await this.refuseIfDisabled(userId, issued.key.id);
    return issued;
  }

  /**
   * Revokes a key just made and refuses when its user was disabled meanwhile: a request that passed its session's
   * check before the disable ended it made its key after the disable had revoked the user's keys (found by the review
   * of 7 December, seventh session). Checked after the insert, so one of the two always sees the other.
   */
  private async refuseIfDisabled(userId: string, keyId: string): Promise<void> {
    const user = await this.platform.store.findUserById(userId);
    if (user?.disabledAt === null) return;
    await this.revokeKey(userId, keyId, "userDisabled");
    throw new ApiError("USER_DISABLED");
  }

  /**
   * Replaces the key with a new one of the same account, name and scope, atomically: the old key stops
   * working at once. NOT_FOUND for a key of another user, a revoked one, or none.
   */
  async rotate(userId: string, keyId: string): Promise<IssuedApiKey> {
    const issued = await this.withFreshPrefix(async ({ prefix, secret, hash }) => {
      const key = await this.platform.store.rotateApiKey(userId, keyId, {
        id: randomUUID(),
        prefix,
        secretHash: hash,
        createdAt: this.platform.clock.now(),
      });
      return { key, secret };
    });
    this.lastTouch.delete(keyId);
    publishRevocation(this.platform.bus, { kind: "apiKey", id: keyId }, "apiKeyRotated");
    await this.refuseIfDisabled(userId, issued.key.id);
    return issued;
  }

  /** Revokes the key at once; NOT_FOUND for a key of another user, a revoked one, or none. */
  async revoke(userId: string, keyId: string): Promise<void> {
    if (!(await this.revokeKey(userId, keyId, "apiKeyRevoked")))
      throw new ApiError("NOT_FOUND", "No active API key with this id");
  }

  /** Revokes every active key of the user (the back office disabled them); answers how many. */
  async revokeAll(userId: string, reason: RevocationReason): Promise<number> {
    let revoked = 0;
    for (const key of await this.list(userId))
      if (key.revokedAt === null && (await this.revokeKey(userId, key.id, reason))) revoked += 1;
    return revoked;
  }

  /**
   * Revokes one key of the user and tells its sockets (the bus's `apiKey.{id}`, with `reason`); false when it was not
   * the user's active key.
   */
  private async revokeKey(userId: string, keyId: string, reason: RevocationReason): Promise<boolean> {
    if (!(await this.platform.store.revokeApiKey(userId, keyId, this.platform.clock.now()))) return false;
    this.lastTouch.delete(keyId);
    publishRevocation(this.platform.bus, { kind: "apiKey", id: keyId }, reason);
    return true;
  }

  /**
   * Who a presented key acts for, or why it is refused. Never throws for a bad key. `address`, the client's,
   * counts the refusals toward its limit.
   */
  async authenticate(presented: string, address: string): Promise<ApiKeyAuthentication> {
    const match = typeof presented === "string" ? KEY_PATTERN.exec(presented) : null;
    if (!match) {
      this.refusedByAddress.hit(address);
      return { ok: false, reason: "MALFORMED" };
    }
    const prefix = match[1]!;
    const blockedSeconds = this.refusedByAddress.blocked(address);
    if (blockedSeconds !== null && this.acceptedPrefixes.get(prefix) === undefined)
      return { ok: false, reason: "TOO_MANY_REFUSED", retryAfterSeconds: blockedSeconds };
    const key = await this.platform.store.findActiveApiKeyByPrefix(prefix);
    // Hash even when the prefix is unknown, so both refusals cost the same.
    const presentedHash = hashApiKey(presented);
    if (!key || !sameSecret(presentedHash, key.secretHash) || key.revokedAt !== null) {
      this.refusedByAddress.hit(address);
      return { ok: false, reason: "INVALID" };
    }
    this.acceptedPrefixes.set(prefix, true);
    this.touch(key.id);
    return { ok: true, key, userId: key.userId, accountId: key.accountId, scope: key.scope };
  }

  private touch(keyId: string): void {
    const now = this.platform.clock.now();
    const last = this.lastTouch.get(keyId);
    if (last !== undefined && now - last < TOUCH_INTERVAL_MS && now >= last) return;
    this.lastTouch.delete(keyId);
    this.lastTouch.set(keyId, now);
    this.platform.store
      .touchApiKey(keyId, now)
      .catch((error: unknown) =>
        this.platform.log.warn(`api keys: recording the last use failed: ${errorText(error)}`),
      );
  }

  /** Runs `insert` with a new secret; a prefix already taken (2^-64 odds) is retried with another. */
  private async withFreshPrefix<T>(insert: (secret: ReturnType<typeof newSecret>) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await insert(newSecret());
      } catch (error) {
        if (!(error instanceof DuplicateError) || attempt >= 2) throw error;
      }
    }
  }
}
