/**
 * The JSON body parser of every face, in place of Fastify's: the same rules (a key `__proto__`, or `constructor`
 * holding `prototype`, is refused; a byte-order mark is skipped), with refusals that say what is wrong, and an empty
 * body read as no body.
 */
import type { FastifyRequest } from "fastify";
import { ApiError } from "./errors.ts";

/** Keys that could reach an object's prototype once a body is merged into an object (Fastify refuses them too). */
const POISONING_KEY_IN_TEXT = /__proto__|constructor|\\u/;

/**
 * Reads a body as JSON. An empty body (or only white space) is no body: the route's schema decides, so an optional
 * body sent as `Content-Type: application/json` with nothing (requests.Session or an HTTP wrapper with a default
 * content type) is the same as none. Fastify refused it before the route ran (found by the audit of the Automation
 * API: closing a position answered 400). Invalid JSON is refused with the parser's own account of where.
 */
export function parseJsonBody(
  _request: FastifyRequest,
  body: string | Buffer,
  done: (error: Error | null, value?: unknown) => void,
): void {
  let value: unknown;
  try {
    value = readJson(typeof body === "string" ? body : body.toString("utf8"));
  } catch (error) {
    done(error as Error, undefined);
    return;
  }
  done(null, value);
}

function readJson(body: string): unknown {
  let text = body;
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    // Fastify said only "Body is not valid JSON"; V8 says where (position, line and column).
    throw new ApiError("INVALID_DATA", `The body is not valid JSON: ${(error as Error).message}`);
  }
  if (POISONING_KEY_IN_TEXT.test(text)) refusePrototypeKeys(value);
  return value;
}

/** Walks the value (without recursion: a body may nest as deep as its size allows) for a key that names a prototype. */
function refusePrototypeKeys(value: unknown): void {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (next === null || typeof next !== "object") continue;
    if (Object.hasOwn(next, "__proto__"))
      throw new ApiError("INVALID_DATA", 'The body has a key "__proto__", which no request may use');
    const constructor = (next as Record<string, unknown>).constructor;
    if (Object.hasOwn(next, "constructor") && constructor !== null && typeof constructor === "object")
      if (Object.hasOwn(constructor, "prototype"))
        throw new ApiError("INVALID_DATA", 'The body has a key "constructor.prototype", which no request may use');
    for (const item of Array.isArray(next) ? next : Object.values(next)) pending.push(item);
  }
}
