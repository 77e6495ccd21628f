/**
 * The HTTP application, built by a factory (`buildApp`) and listened on elsewhere (server.ts), so tests
 * drive it with `inject`. Fastify with TypeBox: one schema per route validates the request and becomes
 * the OpenAPI 3.1 document at `/docs`.
 *
 * Every route declares how it is authorised in its config (`auth`): `public`, `user` (a Client API
 * JWT, the default, so a route that forgets is closed), `admin` (the back office token) or `apiKey`
 * (an Automation API key, `Authorization: Bearer tk_live_...`, whose scope must reach the route's
 * `apiKeyScope`: `full` when the route says nothing). Its `face` picks the error envelope: the Client
 * API's `{error, message}` or the Automation API's `{success: false, error, code}`.
 * Every route is recorded in `app.routeRegistry`, which the authorization matrix test walks.
 */
import AjvCompiler from "@fastify/ajv-compiler";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { Static } from "@sinclair/typebox";
import {
  DuplicateError,
  NotFoundError,
  StorageUnavailableError,
  LimitReachedError,
  ValidationError,
  type ApiKeyScope,
} from "@bourse/store";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyContextConfig,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  type FastifySchema,
} from "fastify";
import { sameSecret } from "./same-secret.ts";
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { ApiKeyService, apiKeyRefusal, isApiKeyFormat, type ApiKeyPrincipal } from "./api-keys.ts";
import { AUTOMATION_STATUSES, AutomationErrorSchema } from "./automation-views.ts";
import { tokenFromAuthorization, type AuthService, type Principal } from "./auth.ts";
import { proxyTrust } from "./client-address.ts";
import { ApiError, ApiErrorCodes, HttpStatus, storageApiError, type ApiErrorCode } from "./errors.ts";
import type { Metrics } from "./metrics.ts";
import { parseJsonBody } from "./json-body.ts";
import {
  literalUnionsAsEnums,
  optionalRequestBodies,
  sharedResponseHeaders,
  sharedSchemas,
} from "./openapi-document.ts";
import { ajvErrorsMessage, type AjvError, type RequestPart } from "./validation-messages.ts";
import type { Platform } from "./platform.ts";
import { compileResponseSerializer } from "./response-serializer.ts";
import { clientRateLimiterOf, clientRequestKey, sendRateLimitHeaders } from "./rate-window.ts";
import { scopeRefusalSpendingBudget } from "./routes/automation.ts";
import { ErrorCode, ErrorResponse, SNAPSHOT_SEQ_DESCRIPTION, emptyBodyIsObject } from "./schemas.ts";

/**
 * `userOrApiKey`: a Client API JWT or an API key (any scope) in `Authorization` (the Pusher endpoint's
 * REST routes): `request.principal` or `request.apiKey` is set; a bad token or key is 401.
 * `userOrRefreshToken`: a JWT in `Authorization`, or none and a refresh token in the body (the session refresh): a
 * JWT refused is not answered before the body is read (`request.credentialRefusal`), since the body's refresh token is
 * the way back from an expired one; the route answers it when the body has none.
 */
export type AuthMode = "public" | "user" | "admin" | "apiKey" | "userOrApiKey" | "userOrRefreshToken";

/** The API a route belongs to: decides the error envelope (seed 001 vs seed 003). */
export type Face = "client" | "automation" | "admin" | "system";

declare module "fastify" {
  interface FastifyContextConfig {
    auth?: AuthMode;
    face?: Face;
    /** `apiKey` routes: the least scope a key needs (default `full`). */
    apiKeyScope?: ApiKeyScope;
    /** false: outside the Client API's budget (the admin API, system routes, the Automation API's own limit). */
    rateLimit?: false;
    /**
     * true: the route checks the credential again itself, and acts on a refusal (the Pusher channel authorisation ends
     * the channels the credential authorised on the socket), so the check after the body is not made for it.
     */
    checksCredentialAgain?: true;
    /** true: the route's 200 carries `Bourse-Seq` (markSnapshotSequence), which the document then names. */
    snapshotSequence?: true;
  }
  interface FastifyRequest {
    principal: Principal | null;
    /** `apiKey` routes: the key the request was authorised with (its user, account and scope). */
    apiKey: ApiKeyPrincipal | null;
    /** `platform.bus.revocations` when the credential was checked; -1 for a request that presented none. */
    authorisedAtRevocation: number;
    /** `userOrRefreshToken` routes: why the JWT in `Authorization` was refused, for the route to answer (else null). */
    credentialRefusal: ApiError | null;
  }
  interface FastifyInstance {
    routeRegistry: RegisteredRoute[];
  }
}

export interface RegisteredRoute {
  readonly method: string;
  readonly url: string;
  readonly auth: AuthMode;
  readonly face: Face;
  /** The route's response schemas by status, as written (what the serializer and the OpenAPI document start from). */
  readonly responses: Readonly<Record<string, unknown>>;
  /** The route has a body schema and takes no body at all as `{}` (its preValidation is emptyBodyIsObject). */
  readonly optionalBody: boolean;
}

export type App = FastifyInstance<Server, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

/** What route modules get: the platform and its services. */
export interface ServerContext {
  readonly platform: Platform;
  readonly auth: AuthService;
  readonly metrics: Metrics;
}

export type RouteModule = (app: App, context: ServerContext) => void | Promise<void>;

/** On every answer (OWASP REST Security Cheat Sheet, "Security headers"). */
const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
} as const;

/**
 * The headers of the answers beyond the body's, as the OpenAPI document names them (documentResponseHeaders); answers
 * send them in lower case. Values are whole numbers.
 */
const RESPONSE_HEADERS = {
  "RateLimit-Limit": {
    type: "integer",
    description:
      "Requests a second of the budget this request spent: the Client API's, per user (per client address before " +
      "sign-in), or the Automation API's, per API key",
  },
  "RateLimit-Remaining": { type: "integer", description: "Requests left in the budget's current one-second window" },
  "RateLimit-Reset": { type: "integer", description: "Seconds until the budget's window starts again" },
  "Retry-After": { type: "integer", description: "Seconds to wait before sending the request again" },
  "Bourse-Seq": { type: "integer", description: SNAPSHOT_SEQ_DESCRIPTION },
} as const;

/**
 * CORS (the Fetch standard): a page of an origin in BOURSE_CORS_ORIGINS may call the API from a browser. Requests carry
 * their token in a header, never a cookie, so no credentials mode is needed, and `*` is safe to offer. The answers say
 * which origin may read them, and let it read every header the document names.
 */
const CORS_EXPOSED_HEADERS = Object.keys(RESPONSE_HEADERS).join(", ");
const CORS_ALLOWED_METHODS = "GET, POST, PUT, DELETE";
const CORS_ALLOWED_HEADERS = "Authorization, Content-Type";
/** How long a browser may keep a preflight's answer. */
const CORS_PREFLIGHT_MAX_AGE_SECONDS = 600;

/** A CORS preflight: OPTIONS naming the method the page means to send (no route has OPTIONS). */
function isPreflight(request: FastifyRequest): boolean {
  return request.method === "OPTIONS" && request.headers["access-control-request-method"] !== undefined;
}

/** The CORS headers of an answer to `request`, none when its origin is not allowed (or it sends none). */
function corsHeaders(request: FastifyRequest, allowed: readonly string[]): Record<string, string> | null {
  const origin = request.headers.origin;
  if (origin === undefined || allowed.length === 0) return null;
  const any = allowed[0] === "*";
  if (!any && !allowed.includes(origin)) return null;
  return {
    "access-control-allow-origin": any ? "*" : origin,
    "access-control-expose-headers": CORS_EXPOSED_HEADERS,
    ...(any ? {} : { vary: "Origin" }),
  };
}

/** The longest a client may take to send one request, headers and body (Node's `server.requestTimeout`). */
export const REQUEST_TIMEOUT_MS = 30_000;
/** How often Node looks for requests past that time (`connectionsCheckingInterval`; its default is 30 s). */
const CONNECTIONS_CHECKING_INTERVAL_MS = 1_000;

export interface BuildAppOptions {
  /** Fastify's request log (pino): false, or its options (server-log.ts `requests`). */
  readonly logger?: FastifyServerOptions["logger"];
  /** Route modules to register (server.ts passes the full set). */
  readonly routes: readonly RouteModule[];
  readonly context: ServerContext;
  /** Serve `/docs` (default true; the dedicated Automation API listener serves nothing but its API). */
  readonly docs?: boolean;
  /** The envelope of unknown routes outside `/v1/api` (default `client`; the dedicated listener: `automation`). */
  readonly notFoundFace?: Face;
}

const SCOPE_RANK: Readonly<Record<ApiKeyScope, number>> = { read: 0, trade: 1, full: 2 };

/** `read` < `trade` < `full`: a key may call the routes that need its scope or less. */
export function scopeAllows(scope: ApiKeyScope, needed: ApiKeyScope): boolean {
  return SCOPE_RANK[scope] >= SCOPE_RANK[needed];
}

/**
 * The Automation API's status for a refusal: seed 003's statuses and 429; any other is 400. Its 403 means the key
 * (seed 003: "Invalid API key"; a scope too small), so a bot may drop a key on it: any other 403 of the registry
 * (a disabled account) is 400 here, with its code.
 */
function automationStatus(apiError: ApiError): number {
  if (apiError.statusCode === HttpStatus.FORBIDDEN)
    return apiError.code === "INVALID_API_KEY" || apiError.code === "INSUFFICIENT_SCOPE"
      ? HttpStatus.FORBIDDEN
      : HttpStatus.BAD_REQUEST;
  return AUTOMATION_STATUSES.has(apiError.statusCode) ? apiError.statusCode : HttpStatus.BAD_REQUEST;
}

function isAutomationPath(url: string): boolean {
  return url === "/v1/api" || url.startsWith("/v1/api/") || url.startsWith("/v1/api?");
}

function errorBody(code: ApiErrorCode, message: string): Static<typeof ErrorResponse> {
  return { error: code, message };
}

/** Maps anything thrown by a handler or hook to the registry's code and status. Never a 500 for bad input. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  const fastifyError = error as FastifyError & { validationContext?: RequestPart };
  if (fastifyError?.validation)
    return new ApiError(
      "INVALID_DATA",
      ajvErrorsMessage(fastifyError.validationContext ?? "body", fastifyError.validation as readonly AjvError[]),
    );
  if (error instanceof ValidationError) return new ApiError("INVALID_DATA", error.message);
  if (error instanceof NotFoundError) return new ApiError("NOT_FOUND", error.message);
  if (error instanceof DuplicateError) return new ApiError("CONFLICT", error.message);
  // Two requests raced past the route's own count (PostgreSQL): the store's bound answers as the route does (the
  // audit of 7 December found 400 INVALID_DATA).
  if (error instanceof LimitReachedError) return new ApiError("LIMIT_REACHED", error.message);
  // The journal's reads (histories, replays) on a stalled or unreachable PostgreSQL; the platform store's are
  // turned into ApiErrors where they are called (Platform.store).
  if (error instanceof StorageUnavailableError) return storageApiError(error);
  switch (fastifyError?.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new ApiError("PAYLOAD_TOO_LARGE");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new ApiError("UNSUPPORTED_MEDIA_TYPE");
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
    case "FST_ERR_VALIDATION":
      return new ApiError("INVALID_DATA", fastifyError.message);
  }
  if (fastifyError?.statusCode === 429) return new ApiError("RATE_LIMITED", fastifyError.message);
  if (typeof fastifyError?.statusCode === "number" && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500)
    return new ApiError("INVALID_DATA", fastifyError.message);
  return new ApiError("INTERNAL_ERROR");
}

/**
 * Answers what Node's HTTP parser refuses before any route (a malformed request line or header, headers past 16 KiB,
 * a request not all sent within 30 s, TLS spoken to the plain port) in the error shape of the faces, with the
 * security headers, then closes the connection. Fastify's own answer was `{"error":"Bad Request","message":"Client
 * Error","statusCode":400}`, with no code of the registry (found by the audit of bad input of 7 December, sixth
 * session). The face is the listener's (a dedicated Automation port), else that of the path the request line names.
 */
function answerClientError(
  error: Error & { code?: string; rawPacket?: unknown },
  socket: Duplex,
  listenerFace: Face | undefined,
): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const apiError = new ApiError(
    error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? "REQUEST_TIMEOUT"
      : error.code === "HPE_HEADER_OVERFLOW"
        ? "HEADERS_TOO_LARGE"
        : "MALFORMED_REQUEST",
  );
  const packet = Buffer.isBuffer(error.rawPacket) ? error.rawPacket : Buffer.alloc(0);
  const requestLine = packet.subarray(0, 2048).toString("latin1").split("\r\n", 1)[0] ?? "";
  const target = requestLine.split(" ")[1] ?? "";
  const automation = listenerFace === "automation" || isAutomationPath(target);
  const status = automation ? automationStatus(apiError) : apiError.statusCode;
  const body = JSON.stringify(
    automation
      ? { success: false, error: apiError.message, code: apiError.code }
      : errorBody(apiError.code, apiError.message),
  );
  const headers = {
    ...SECURITY_HEADERS,
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
    connection: "close",
  };
  if (socket.writable)
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n` +
        Object.entries(headers)
          .map(([name, value]) => `${name}: ${value}\r\n`)
          .join("") +
        `\r\n${body}`,
    );
  socket.destroy();
}

/**
 * Answers `apiError` in the shape of the request's face: the Automation API's `{success, error, code}`, else
 * `{error, message}`. A request no route took has the face of its path, or `unroutedFace` (a dedicated port's).
 */
function sendApiError(
  request: FastifyRequest,
  reply: FastifyReply,
  apiError: ApiError,
  unroutedFace?: Face,
  corsOrigins: readonly string[] = [],
): FastifyReply {
  // Also here: a URL the router cannot read is answered without the onRequest hook that sets them.
  void reply.headers(SECURITY_HEADERS);
  const cors = corsHeaders(request, corsOrigins);
  if (cors) void reply.headers(cors);
  for (const [name, value] of Object.entries(apiError.headers)) void reply.header(name, value);
  if (
    request.routeOptions?.config?.face === "automation" ||
    isAutomationPath(request.url) ||
    unroutedFace === "automation"
  )
    return reply
      .status(automationStatus(apiError))
      .send({ success: false, error: apiError.message, code: apiError.code });
  return reply.status(apiError.statusCode).send(errorBody(apiError.code, apiError.message));
}

/**
 * A request with a body (any method but GET and HEAD, whether the route reads one or not) can be answered 413
 * PAYLOAD_TOO_LARGE or 415 UNSUPPORTED_MEDIA_TYPE by Fastify's body parsing, before the handler: both are added to
 * the route's documented responses, so /docs lists every status it answers. The Automation API answers them 400
 * (seed 003's statuses), which its routes document.
 */
function documentBodyRefusals(route: {
  method: string | string[];
  schema?: { response?: unknown };
  config?: unknown;
}): void {
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  const schema = route.schema;
  if (!schema || methods.every((method) => method === "GET" || method === "HEAD")) return;
  if ((route.config as { face?: Face } | undefined)?.face === "automation") return;
  const responses = { ...(schema.response as Record<string, unknown> | undefined) };
  for (const status of [ApiErrorCodes.PAYLOAD_TOO_LARGE.status, ApiErrorCodes.UNSUPPORTED_MEDIA_TYPE.status])
    responses[String(status)] ??= ErrorResponse;
  schema.response = responses;
}

/** The document's sections (each route's `tags`), in the order /docs lists them, with what each holds. */
const DOCUMENT_TAGS = [
  { name: "Auth", description: "Sign up, sign in (a JWT), the session, the password and signing out" },
  {
    name: "Account",
    description: "The user's trading accounts: list, open, one account's profile and balance, its balance ledger",
  },
  { name: "Trade", description: "Orders, positions and their histories on one of the user's accounts" },
  { name: "Market", description: "Instruments, quotes, candles and depth, and the user's market watch" },
  { name: "Scripts", description: "The user's private scripts" },
  { name: "Settings", description: "The user's terminal preferences" },
  { name: "Alerts", description: "Price alerts and the log of their triggers" },
  { name: "Notifications", description: "Platform notifications: fills, SL/TP, margin calls, stop-outs, alerts" },
  { name: "API keys", description: "Keys for the Automation API and the streams; a key is shown once" },
  { name: "Stream", description: "The native WebSocket stream at `/api/v1/ws`" },
  { name: "Pusher", description: "The Pusher-compatible streams: session, stream catalog, channel authorisation" },
  { name: "Automation API", description: "Seed 003's REST API for bots and scripts, with an API key (`/v1/api`)" },
  { name: "Admin", description: "The broker's back office and feed bridge (`/admin/v1`, BOURSE_ADMIN_TOKEN)" },
  { name: "System", description: "Liveness, readiness and metrics" },
];

/** The schemas the document defines once and refers to (by their titles): the error bodies and their code. */
const SHARED_SCHEMAS = [ErrorCode, ErrorResponse, AutomationErrorSchema].map((schema) => schema.title!);

/** The OpenAPI security requirement of each auth mode (the schemes of the document's `components.securitySchemes`). */
const SECURITY_OF_AUTH: Readonly<Record<AuthMode, readonly Record<string, string[]>[]>> = {
  public: [],
  user: [{ jwt: [] }],
  userOrApiKey: [{ jwt: [] }, { apiKey: [] }],
  // The empty requirement: no credential at all (a refresh token in the body instead).
  userOrRefreshToken: [{ jwt: [] }, {}],
  admin: [{ admin: [] }],
  apiKey: [{ apiKey: [] }],
};

/**
 * What the OpenAPI document says of how to call a route, from the route itself: the credential its auth mode takes
 * (the /docs page's "Authorize" and generated clients send it), and an id from its method and path
 * (`POST /api/v1/accounts/:accountId/orders` is `postApiV1AccountsByAccountIdOrders`), unique as the route is.
 */
function documentOperation(
  route: {
    method: string | string[];
    url: string;
    schema?: FastifySchema & { security?: unknown; description?: string };
    config?: FastifyContextConfig;
  },
  auth: AuthMode,
): void {
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  const [method] = methods;
  // Fastify's HEAD twin of a GET route shares its schema: the GET names it.
  if (methods.length !== 1 || method === undefined || method === "HEAD") return;
  const words = route.url
    .split("/")
    .filter((segment) => segment !== "")
    .map((segment) => (segment.startsWith(":") ? `By${camelWords(segment.slice(1))}` : camelWords(segment)));
  const description = route.schema?.description;
  route.schema = {
    ...route.schema,
    security: route.schema?.security ?? SECURITY_OF_AUTH[auth],
    operationId: `${method.toLowerCase()}${words.join("")}`,
    ...(route.config?.snapshotSequence
      ? { description: description ? `${description} ${SNAPSHOT_SEQ_DESCRIPTION}` : SNAPSHOT_SEQ_DESCRIPTION }
      : {}),
  };
}

/**
 * The headers of a route's answers, in the document only (the swagger `transform`: the route's own schemas, which
 * serialize its answers, are left as they are). Every answer that spends a budget says where the caller stands
 * (RateLimit-*): the Client API's routes, and the Automation API's once the key is known (its refusals of the key
 * itself, 401 and 403 INVALID_API_KEY, and its 503 before the engine is ready spend none). Every 429 says when to
 * try again (Retry-After): a budget spent, a key's or an address's refused keys, sign-ups, LOGIN_LOCKED. A snapshot
 * route's 200 names the seq it reflects (Bourse-Seq).
 */
function documentResponseHeaders(schema: FastifySchema, config: FastifyContextConfig | undefined): FastifySchema {
  const responses = schema?.response as Record<string, object> | undefined;
  if (responses === undefined) return schema;
  const spendsBudget = config?.rateLimit !== false || config?.face === "automation";
  const { "Retry-After": retryAfter, "Bourse-Seq": sequence, ...rateLimit } = RESPONSE_HEADERS;
  // The Automation API's 401 (no key) and 503 (the engine not ready) come before any budget is spent; its 403 may
  // (INSUFFICIENT_SCOPE spends the key's) or may not (INVALID_API_KEY): the headers are documented as optional.
  const beforeBudget = config?.face === "automation" ? ["401", "503"] : [];
  const documented = Object.entries(responses).map(([status, response]) => {
    const headers = {
      ...(spendsBudget && !beforeBudget.includes(status) ? rateLimit : {}),
      ...(status === "429" ? { "Retry-After": retryAfter } : {}),
      ...(status === "200" && config?.snapshotSequence ? { "Bourse-Seq": sequence } : {}),
    };
    return [status, Object.keys(headers).length === 0 ? response : { ...response, headers }];
  });
  return { ...schema, response: Object.fromEntries(documented) };
}

/** `close-all` → `CloseAll`, `accountId` → `AccountId`. */
function camelWords(text: string): string {
  return text
    .split(/[^A-Za-z0-9]+/)
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join("");
}

function errorCodesDescription(): string {
  const lines = Object.entries(ApiErrorCodes).map(
    ([code, definition]) => `| \`${code}\` | ${definition.status} | ${definition.message} |`,
  );
  return [
    'Errors answer `{"error": CODE, "message": text}` (Client API, seed 001). Codes are stable:',
    "",
    "| code | status | meaning |",
    "| --- | --- | --- |",
    ...lines,
  ].join("\n");
}

const VALIDATION_OPTIONS = {
  // Unknown fields are refused, never silently dropped: no client can slip in a balance.
  removeAdditional: false,
  useDefaults: true,
  allErrors: false,
  allowUnionTypes: true,
  // Errors carry the schema that failed, which validation-messages.ts puts into words (the values a field takes).
  verbose: true,
} as const;
const validatorsFromPool = AjvCompiler();
/**
 * JSON bodies are validated as sent: a `true`, an array or a number where the schema wants another type is refused.
 * Coercion turned `"volume": true` into 1 lot and `"sl": false` into no stop loss. The path and the query string are
 * text, so their schemas coerce ("5" to 5, one value to a list); nullable inputs there are type lists
 * (["number", "null"]) so coercion never turns null into 0.
 */
const bodyValidators = validatorsFromPool({}, { customOptions: { ...VALIDATION_OPTIONS, coerceTypes: false } });
const textValidators = validatorsFromPool({}, { customOptions: { ...VALIDATION_OPTIONS, coerceTypes: "array" } });

/**
 * Who a `user` or `userOrApiKey` request acts for: its JWT's session (401 unless live) or, where API keys are
 * taken, its API key (401 unless active). onRequest sets it on the request; POST /api/v2/ws/auth asks again once it
 * listens to the credential's revocation, so a revocation between the two is seen one way or the other.
 */
export async function authenticateUserOrApiKey(
  context: ServerContext,
  request: FastifyRequest,
  takesApiKeys = true,
): Promise<Pick<FastifyRequest, "principal" | "apiKey">> {
  const token = tokenFromAuthorization(request.headers.authorization);
  if (token === null) throw new ApiError("UNAUTHORIZED", "Missing Authorization header");
  if (!takesApiKeys || !isApiKeyFormat(token))
    return { principal: await context.auth.authenticate(token), apiKey: null };
  const result = await ApiKeyService.for(context.platform).authenticate(token, request.ip);
  if (!result.ok)
    throw apiKeyRefusal(result, new ApiError("UNAUTHORIZED", "The API key is not valid (unknown, revoked or rotated)"));
  return {
    principal: null,
    apiKey: { key: result.key, userId: result.userId, accountId: result.accountId, scope: result.scope },
  };
}

export async function buildApp(options: BuildAppOptions): Promise<App> {
  const { platform } = options.context;
  const config = platform.config;
  const app = Fastify({
    logger: options.logger ?? false,
    // A URL the router cannot read (a malformed percent-encoding, a path parameter past maxParamLength) is answered
    // in the face's own error shape, as every other refusal, not in Fastify's.
    clientErrorHandler: (error, socket) => answerClientError(error, socket, options.notFoundFace),
    frameworkErrors: (error, request, reply) =>
      sendApiError(
        request,
        reply,
        new ApiError(
          "INVALID_DATA",
          error.code === "FST_ERR_MAX_PARAM_LENGTH"
            ? "A path parameter is longer than any this server has"
            : error.code === "FST_ERR_BAD_URL"
              ? "The URL is not valid: it has a malformed percent-encoding"
              : "The URL is not valid",
        ),
        options.notFoundFace,
        config.corsOrigins,
      ),
    bodyLimit: config.bodyLimitBytes,
    // Receiving a request (headers and body) may take this long; then Node answers 408 and closes the connection.
    // Unbounded (Fastify's default), a client sending a body byte by byte, or not at all, held its connection (and a
    // close of the server) for as long as it liked.
    requestTimeout: REQUEST_TIMEOUT_MS,
    // The headers within the same time (Node's default is 60 s), and both looked at every second: Node checks them
    // every 30 s by default, so a request half sent was answered 408 after 60 to 90 s (found by the audit of the
    // README of 7 December).
    http: { headersTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS },
    // While the server stops, the onRequest hook below refuses new requests in the face's envelope (Fastify's own
    // refusal answered in its shape: `{"error":"Service Unavailable","statusCode":503}`).
    return503OnClosing: false,
    // `request.ip`, which every per-address limit counts, by the rule of client-address.ts (false: the peer).
    trustProxy: proxyTrust(config.trustedProxies) ?? false,
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;
  // Every body is JSON (the Pusher channel auth adds its form encoding itself): Fastify's own text/plain parser read
  // any text as a string, which a body-less route took and a body schema refused as 400 instead of 415.
  app.removeContentTypeParser("text/plain");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, parseJsonBody);

  app.setValidatorCompiler((route) => (route.httpPart === "body" ? bodyValidators : textValidators)(route));
  app.setSerializerCompiler(compileResponseSerializer);
  app.decorate("routeRegistry", [] as RegisteredRoute[]);
  app.decorateRequest("principal", null);
  app.decorateRequest("apiKey", null);
  app.decorateRequest("authorisedAtRevocation", -1);
  app.decorateRequest("credentialRefusal", null);
  app.addHook("onRoute", (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (route.url.startsWith("/docs")) {
      // The documentation is public: a developer reads it before they have an account.
      route.config = { ...route.config, auth: "public", face: "system" };
      return;
    }
    // A route that names no auth mode takes a JWT, so a route that forgets is closed.
    const auth = route.config?.auth ?? "user";
    documentBodyRefusals(route);
    documentOperation(route, auth);
    for (const method of methods) {
      if (method === "HEAD") continue;
      app.routeRegistry.push({
        method,
        url: route.url,
        auth,
        face: route.config?.face ?? "client",
        responses: (route.schema?.response as Record<string, unknown> | undefined) ?? {},
        optionalBody: route.schema?.body !== undefined && [route.preValidation].flat().includes(emptyBodyIsObject),
      });
    }
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Bourse API",
        version: "1.0.0",
        description: [
          "The Client API (seeds 000, 001, 002), the Automation API (seed 003, `/v1/api`) and the broker's admin API.",
          "",
          "Decimals (prices, lots, money) travel as JSON numbers with the instrument's or currency's digits;",
          "more decimals than that are refused, never rounded. Times are ISO 8601 UTC strings (inputs also",
          "take epoch milliseconds). Tables answer `{structure, rows}`, objects `{data}`, acknowledgements",
          '`{"data":"OK"}`.',
          "",
          errorCodesDescription(),
        ].join("\n"),
      },
      // Relative: the origin the document was read from (behind a proxy, a listener's own address is not the client's).
      servers: [{ url: "/", description: "This server: the origin this document was read from" }],
      tags: DOCUMENT_TAGS,
      components: {
        securitySchemes: {
          jwt: {
            type: "apiKey",
            in: "header",
            name: "Authorization",
            description: "The token from signup or login, as `<JWT>` (seed 000) or `Bearer <JWT>`",
          },
          admin: { type: "http", scheme: "bearer", description: "BOURSE_ADMIN_TOKEN" },
          apiKey: {
            type: "http",
            scheme: "bearer",
            description: "Automation API: an API key from `PUT /api/v1/api-keys`, `Bearer tk_live_...`",
          },
        },
      },
    },
    transform: ({ schema, url, route }) => ({ schema: documentResponseHeaders(schema, route.config), url }),
    transformObject: (document) =>
      sharedSchemas(
        sharedResponseHeaders(
          optionalRequestBodies(
            literalUnionsAsEnums("openapiObject" in document ? document.openapiObject : document.swaggerObject),
            app.routeRegistry.filter((route) => route.optionalBody),
          ),
        ),
        SHARED_SCHEMAS,
      ),
  });
  if (options.docs !== false) await app.register(swaggerUi, { routePrefix: "/docs" });

  // The Client API's budget (rate-window.ts), spent once the caller is known (its user, else its address) and before
  // the body is parsed, so a flood of malformed requests counts too; a request whose credential is refused, and one
  // for no route, spend their address's: a flood of bad tokens is limited like any other. Routes with
  // `rateLimit: false` spend nothing. Every answer that spends says where the caller stands (RateLimit-* headers, as
  // the Automation API sends them); past the budget the answer is 429 with Retry-After.
  const clientRequests = clientRateLimiterOf(platform);
  const spendClientBudget = (request: FastifyRequest, reply: FastifyReply): void => {
    const state = clientRequests.hit(
      clientRequestKey(request.principal ? { userId: request.principal.userId } : { address: request.ip }),
    );
    sendRateLimitHeaders(reply, state);
    if (state.exceeded) throw new ApiError("RATE_LIMITED", `Rate limit of ${state.limit} requests per second exceeded`);
  };
  app.addHook("onRequest", async (request: FastifyRequest, reply: FastifyReply) => {
    // OWASP's REST headers: no sniffing a JSON answer into another type, no framing, no caching of account data.
    void reply.headers(SECURITY_HEADERS);
    const cors = corsHeaders(request, config.corsOrigins);
    if (cors) {
      void reply.headers(cors);
      // A preflight is the browser's, before the request it asks for: it spends no budget (a 429 to one is a CORS
      // failure the page cannot read; found by the review of 7 December). The not-found handler answers it.
      if (isPreflight(request)) return;
    }
    // The system routes answer on: `/readyz` says `stopping` to the load balancer polling it through the close's grace
    // period (refused here it was a 500, its 503 schema unable to carry the faces' error: the audit of an integrator's
    // journey of 7 December, seventh session), `/healthz`, `/metrics` and `/docs` as ever.
    if (platform.stopping && request.routeOptions.config?.face !== "system") {
      void reply.header("connection", "close");
      throw new ApiError("ENGINE_UNAVAILABLE", "The server is stopping: try again shortly");
    }
    const budgeted = request.routeOptions.config?.rateLimit !== false;
    // Before the check: a revocation that commits while the check waits on the store is one the check may have missed.
    const revocationsBefore = platform.bus.revocations;
    try {
      await authenticateRequest(request);
    } catch (error) {
      if (budgeted) spendClientBudget(request, reply);
      throw error;
    }
    if (budgeted) spendClientBudget(request, reply);
    if (request.principal !== null || request.apiKey !== null) request.authorisedAtRevocation = revocationsBefore;
  });
  // The credential was checked before the body came; a body that comes after a logout, a password change or a key's
  // revocation was acknowledged must find it revoked (the audit of races of 7 December placed an order so). Asked again
  // only when some credential was revoked meanwhile.
  // Not async: a promise on every request's path for a check that is almost never needed.
  app.addHook("preHandler", (request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void) => {
    if (
      request.authorisedAtRevocation < 0 ||
      request.authorisedAtRevocation === platform.bus.revocations ||
      request.routeOptions.config.checksCredentialAgain
    )
      return done();
    authenticateRequest(request).then(() => done(), done);
  });

  /** Sets `request.principal` or `request.apiKey` as the route's auth mode asks; throws the refusal. */
  async function authenticateRequest(request: FastifyRequest): Promise<void> {
    if (request.is404) return;
    const mode = request.routeOptions.config.auth ?? "user";
    if (mode === "public") return;
    if (mode === "apiKey") {
      // Seed 003: 401 without the header, 403 for a key that is not one (malformed, unknown, revoked,
      // rotated away) or whose scope is too small, 503 while the engine is not ready.
      const token = tokenFromAuthorization(request.headers.authorization);
      if (token === null) throw new ApiError("UNAUTHORIZED", "Missing authorization header");
      if (!isApiKeyFormat(token)) throw new ApiError("INVALID_API_KEY");
      if (!platform.ready)
        throw new ApiError("ENGINE_UNAVAILABLE", "Not connected to the trading server: try again shortly");
      const result = await ApiKeyService.for(platform).authenticate(token, request.ip);
      if (!result.ok) throw apiKeyRefusal(result, new ApiError("INVALID_API_KEY"));
      const needed = request.routeOptions.config.apiKeyScope ?? "full";
      if (!scopeAllows(result.scope, needed))
        throw scopeRefusalSpendingBudget(
          platform,
          result.key.id,
          new ApiError(
            "INSUFFICIENT_SCOPE",
            `This request needs an API key with scope ${needed} (this key: ${result.scope})`,
          ),
        );
      request.apiKey = { key: result.key, userId: result.userId, accountId: result.accountId, scope: result.scope };
      return;
    }
    if (mode === "userOrRefreshToken") {
      const token = tokenFromAuthorization(request.headers.authorization);
      if (token === null) return;
      try {
        request.principal = await options.context.auth.authenticate(token);
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        request.principal = null;
        request.credentialRefusal = error;
      }
      return;
    }
    if (mode === "admin") {
      const token = tokenFromAuthorization(request.headers.authorization);
      if (token === null || !sameSecret(token, config.adminToken))
        throw new ApiError("UNAUTHORIZED", "The admin API needs Authorization: Bearer <BOURSE_ADMIN_TOKEN>");
      return;
    }
    ({ principal: request.principal, apiKey: request.apiKey } = await authenticateUserOrApiKey(
      options.context,
      request,
      mode === "userOrApiKey",
    ));
  }

  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const apiError = toApiError(error);
    if (apiError.code === "INTERNAL_ERROR") {
      request.log.error({ err: error }, "unexpected error");
      // The server's own log as well: `bourse start` runs without Fastify's request log, and a server answering 500
      // printed nothing. The route's pattern, not the URL (whose query may hold a token); never the headers.
      const route = request.routeOptions?.url ?? "(no route)";
      options.context.platform.log.error(
        `${request.method} ${route}: unexpected error answered 500: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
    }
    return sendApiError(request, reply, apiError, undefined, config.corsOrigins);
  });
  app.setNotFoundHandler((request, reply) => {
    // A CORS preflight (no route has OPTIONS): allowed origins are told what they may send; others get the 404.
    const cors = corsHeaders(request, config.corsOrigins);
    if (cors && isPreflight(request))
      return reply
        .status(204)
        .headers({
          ...cors,
          "access-control-allow-methods": CORS_ALLOWED_METHODS,
          "access-control-allow-headers": CORS_ALLOWED_HEADERS,
          "access-control-max-age": String(CORS_PREFLIGHT_MAX_AGE_SECONDS),
        })
        .send();
    return sendApiError(
      request,
      reply,
      new ApiError("ROUTE_NOT_FOUND", `No route ${request.method} ${request.url.split("?")[0]}`),
      options.notFoundFace,
      config.corsOrigins,
    );
  });

  for (const register of options.routes) await register(app, options.context);
  return app;
}
