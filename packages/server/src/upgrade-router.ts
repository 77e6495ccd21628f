/**
 * WebSocket upgrades by path: every stream adapter (the native stream at `/api/v1/ws`, the Pusher
 * endpoint at `/app/{appKey}`) registers the paths it serves; the router listens once to the HTTP
 * server's `upgrade` event and hands each WebSocket upgrade to the adapter of its path. Any other request that offers
 * an upgrade is answered by the HTTP app as if it offered none (a server may ignore an offer, RFC 9110 section 7.8).
 * Adapters close their sockets on `close`.
 */
import { ServerResponse, type IncomingMessage, type Server } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Platform } from "./platform.ts";

export interface UpgradeAdapter {
  /** Takes the upgrade (it now owns `socket`). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, url: URL): void;
  /** Closes every socket of the adapter (server shutdown). */
  close(): Promise<void>;
}

type PathMatch = string | RegExp | ((pathname: string) => boolean);

function matches(match: PathMatch, pathname: string): boolean {
  if (typeof match === "string") return match === pathname;
  if (match instanceof RegExp) return match.test(pathname);
  return match(pathname);
}

export class UpgradeRouter {
  private readonly routes: { match: PathMatch; adapter: UpgradeAdapter }[] = [];
  private attached: Server | null = null;

  /**
   * `unavailable`: whether the server takes no new stream now (it is stopping, found by the review of 7 December; or
   * not ready yet, found by the audit of a mobile client's journey of 7 December, seventh session); a new upgrade is
   * then answered 503, and a client reconnects after a backoff.
   */
  constructor(private readonly unavailable: () => boolean = () => false) {}

  /** Registers `adapter` for the paths `match` accepts (exact string, pattern or predicate); first match wins. */
  register(match: PathMatch, adapter: UpgradeAdapter): void {
    this.routes.push({ match, adapter });
  }

  /** Listens to the server's upgrades (once). */
  attach(server: Server): void {
    if (this.attached === server) return;
    this.attached = server;
    server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      // Node took its own error listener off the socket for the upgrade: a client's reset before an adapter, the HTTP
      // app or a refusal answers was an uncaught exception, which ended the process (found by the review of 7 December,
      // sixth session). The adapters (ws) add their own once they take it.
      socket.on("error", () => socket.destroy());
      let url: URL;
      try {
        url = new URL(request.url ?? "/", "http://localhost");
      } catch {
        return reject(socket, 400, "Bad Request");
      }
      if (this.unavailable()) return reject(socket, 503, "Service Unavailable");
      const route = isWebSocketUpgrade(request)
        ? this.routes.find((each) => matches(each.match, url.pathname))
        : undefined;
      // Node hands every request that offers an upgrade here once anything listens: `curl --http2 http://…` offers
      // h2c on each. They were answered a bare 404 (found by the audit of bad input of 7 December, sixth session).
      if (!route) return answerAsHttp(server, request, socket);
      try {
        route.adapter.handleUpgrade(request, socket, head, url);
      } catch {
        reject(socket, 500, "Internal Server Error");
      }
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.routes.map((route) => route.adapter.close()));
  }
}

/** How long a request that offered an upgrade other than to WebSocket may take to be answered (as any request). */
const UPGRADE_OFFER_TIMEOUT_MS = 30_000;

/** Whether the request asks for a WebSocket (`Upgrade: websocket`, any case, among other protocols offered). */
function isWebSocketUpgrade(request: IncomingMessage): boolean {
  const upgrade = request.headers.upgrade;
  return upgrade !== undefined && upgrade.split(",").some((protocol) => protocol.trim().toLowerCase() === "websocket");
}

/**
 * Hands a request Node took for an upgrade to the HTTP app, on its socket, to be answered as any request and the
 * connection closed. Node's parser has left the socket: a request with a body (whose bytes would now come unparsed) is
 * refused 400 instead, with what to do.
 */
function answerAsHttp(server: Server, request: IncomingMessage, socket: Duplex): void {
  const length = request.headers["content-length"];
  if (request.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0"))
    return reject(socket, 400, "Bad Request", "A request with a body cannot offer an upgrade other than to WebSocket");
  const response = new ServerResponse(request);
  response.shouldKeepAlive = false;
  // Node's request and keep-alive timers no longer watch this socket: an answer not written by then ends it.
  (socket as Socket).setTimeout(UPGRADE_OFFER_TIMEOUT_MS, () => socket.destroy());
  response.assignSocket(socket as Socket);
  response.on("finish", () => {
    response.detachSocket(socket as Socket);
    socket.end();
  });
  server.emit("request", request, response);
}

function reject(socket: Duplex, status: number, text: string, body = ""): void {
  if (socket.writable)
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  socket.destroy();
}

/**
 * Open sockets per key (a client address, a user, an API key), each key held to a limit its caller gives. A socket
 * takes its slot when it comes to count (after the handshake, at authorization, with its first account channel) and
 * gives it back when it stops counting or closes. Keys are dropped at zero, so the map
 * holds at most one entry per open socket.
 */
export class OpenSocketCounts {
  private readonly counts = new Map<string, number>();

  /** Counts one more socket for `key` unless it holds `limit` already; answers its release (idempotent), or null. */
  take(key: string, limit: number): (() => void) | null {
    const count = this.counts.get(key) ?? 0;
    if (count >= limit) return null;
    this.counts.set(key, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.counts.get(key) ?? 1) - 1;
      if (left <= 0) this.counts.delete(key);
      else this.counts.set(key, left);
    };
  }

  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }
}

/** The open sockets the platform counts for each kind of key, every stream adapter together. */
interface PlatformSocketCounts {
  readonly byAddress: OpenSocketCounts;
  readonly byUser: OpenSocketCounts;
  readonly byApiKey: OpenSocketCounts;
}

const platformSocketCounts = new WeakMap<Platform, PlatformSocketCounts>();

function socketCountsOf(platform: Platform): PlatformSocketCounts {
  let counts = platformSocketCounts.get(platform);
  if (!counts)
    platformSocketCounts.set(
      platform,
      (counts = {
        byAddress: new OpenSocketCounts(),
        byUser: new OpenSocketCounts(),
        byApiKey: new OpenSocketCounts(),
      }),
    );
  return counts;
}

/**
 * The platform's open sockets per client address, every stream adapter together (the native stream and the Pusher
 * endpoint): one address's budget is shared by both faces, as its requests are by the per-address rate limit.
 */
export function openSocketsByAddressOf(platform: Platform): OpenSocketCounts {
  return socketCountsOf(platform).byAddress;
}

/**
 * The platform's sockets per user, both faces together: a native socket authorised for the user, a Pusher socket
 * holding a private or presence channel of one of the user's accounts. Spreading over faces or addresses buys no more.
 */
export function openSocketsByUserOf(platform: Platform): OpenSocketCounts {
  return socketCountsOf(platform).byUser;
}

/** The platform's sockets per API key, both faces together: authorised by the key, or holding a channel it granted. */
export function openSocketsByApiKeyOf(platform: Platform): OpenSocketCounts {
  return socketCountsOf(platform).byApiKey;
}

/** The slots `takeUserAndApiKeySlots` took (null where nothing was asked), or which bound was full. */
export type UserAndApiKeySlots =
  { readonly user: (() => void) | null; readonly apiKey: (() => void) | null } | { readonly full: "user" | "apiKey" };

/**
 * Takes a socket's slot of a user and of an API key (null: none to take), both or neither, in one turn (no await, so
 * concurrent sockets cannot pass a bound together): a key refused gives the user's slot back. Both faces' sockets.
 */
export function takeUserAndApiKeySlots(
  platform: Platform,
  userId: string | null,
  apiKeyId: string | null,
  limits: { readonly maxSocketsPerUser: number; readonly maxSocketsPerApiKey: number },
): UserAndApiKeySlots {
  const counts = socketCountsOf(platform);
  const user = userId === null ? null : counts.byUser.take(userId, limits.maxSocketsPerUser);
  if (userId !== null && !user) return { full: "user" };
  const apiKey = apiKeyId === null ? null : counts.byApiKey.take(apiKeyId, limits.maxSocketsPerApiKey);
  if (apiKeyId !== null && !apiKey) {
    user?.();
    return { full: "apiKey" };
  }
  return { user, apiKey };
}
