/**
 * The client's address, one rule for every face (BOURSE_TRUST_PROXY): the per-address limits (the Client API's
 * rate limit before sign-in, the refused API keys) count this address, on HTTP and on the WebSocket upgrades alike.
 *
 * With no trusted proxy it is the socket's peer and `X-Forwarded-For` is ignored (anyone can send it). With a list,
 * `X-Forwarded-For` is read from the right while each hop is a trusted proxy: the peer, then the entry that proxy
 * appended, and so on; the first untrusted hop is the client. A client that reaches the server directly, or puts a
 * made-up entry in front of what the proxy appends, gets no say. This is @fastify/proxy-addr, the code Fastify's
 * `trustProxy` runs for `request.ip`, given the same compiled trust function (`proxyTrust`), so both agree.
 */
import proxyAddr from "@fastify/proxy-addr";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";

/** Whether the hop at `address` (`hop` 0: the socket's peer) is a trusted proxy whose `X-Forwarded-For` is believed. */
export type ProxyTrust = (address: string, hop: number) => boolean;

/** proxy-addr's named ranges: 127.0.0.0/8 and ::1; 169.254.0.0/16 and fe80::/10; 10/8, 172.16/12, 192.168/16, fc00::/7. */
const NAMED_RANGES: ReadonlySet<string> = new Set(["loopback", "linklocal", "uniquelocal"]);
/** A list past this is a mistake (each request checks its hops against every entry). */
export const MAX_TRUSTED_PROXY_ENTRIES = 100;

/**
 * The entries of a trusted-proxy setting, checked: each an IPv4 or IPv6 address, optionally with a prefix length
 * (`10.0.0.0/8`), or a named range. Empty text is the empty list (trust no proxy). Throws an Error naming the entry;
 * the caller adds the setting's name.
 */
export function parseTrustedProxies(text: string): string[] {
  if (text.trim() === "") return [];
  const entries = text.split(",").map((entry) => entry.trim());
  if (entries.length > MAX_TRUSTED_PROXY_ENTRIES)
    throw new Error(`at most ${MAX_TRUSTED_PROXY_ENTRIES} entries, got ${entries.length}`);
  for (const entry of entries) {
    const problem = entryProblem(entry);
    if (problem !== null) throw new Error(problem);
  }
  try {
    // proxy-addr's own check, so what passed here is what Fastify accepts.
    proxyAddr.compile(entries);
  } catch (error) {
    throw new Error((error as Error).message);
  }
  return entries;
}

function entryProblem(entry: string): string | null {
  if (entry === "") return "an entry is empty (two commas in a row, or one at an end)";
  if (NAMED_RANGES.has(entry)) return null;
  if (/^(true|yes|on|\*|all)$/i.test(entry))
    return `${JSON.stringify(entry)} would trust every client's X-Forwarded-For, so any client could choose its own address; name the proxy's addresses instead`;
  // A bare integer is a hop count elsewhere (Express); proxy-addr would read "2" as the address 0.0.0.2.
  if (/^\d+$/.test(entry))
    return `a hop count (${entry}) cannot tell the proxy from a client that connects directly; name the proxy's addresses instead`;
  const slash = entry.indexOf("/");
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return `${JSON.stringify(entry)} is not an IP address, a CIDR range or a named range`;
  if (slash === -1) return null;
  const prefixText = entry.slice(slash + 1);
  const maximumPrefix = version === 4 ? 32 : 128;
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  // /0 would trust every address, which is `true` again.
  if (!(prefix >= 1 && prefix <= maximumPrefix))
    return `${JSON.stringify(entry)} needs a prefix length from 1 to ${maximumPrefix}`;
  return null;
}

/** The trust function for checked entries (`parseTrustedProxies`); null when there are none: no proxy is trusted. */
export function proxyTrust(trustedProxies: readonly string[]): ProxyTrust | null {
  return trustedProxies.length === 0 ? null : proxyAddr.compile([...trustedProxies]);
}

/**
 * The client's address for a raw request (the WebSocket upgrades; Fastify's `request.ip` is the same given `trust`).
 * "unknown" when the socket is already gone.
 */
export function clientAddress(request: IncomingMessage, trust: ProxyTrust | null): string {
  const peer = request.socket.remoteAddress;
  if (peer === undefined) return "unknown";
  return trust === null ? peer : proxyAddr(request, trust);
}

/**
 * The block a client address stands for when counting what one subscriber may do: an IPv4 address itself (an IPv6
 * form of one, `::ffff:a.b.c.d`, as IPv4), an IPv6 address's /64. A subscriber's line gets a whole /64 and picks
 * any address in it, so counting single IPv6 addresses bounds nothing. Text that is no address is its own block.
 */
export function subscriberBlock(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (isIP(address) !== 6) return address;
  const [head = "", tail = ""] = address.toLowerCase().split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === "" ? [] : tail.split(":");
  const groups = address.includes("::")
    ? [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups]
    : headGroups;
  return `${groups
    .slice(0, 4)
    .map((group) => String(Number.parseInt(group, 16).toString(16)))
    .join(":")}::/64`;
}
