/**
 * BOURSE_TRUST_PROXY: behind a reverse proxy every client had the proxy's address, so one client's flood spent every
 * client's per-address limits (the refused API keys, the rate limit before sign-in). With the proxy named, the client
 * is the address the proxy put in X-Forwarded-For, on HTTP (both listeners) and on the native stream alike; without
 * it, or from a peer that is not the proxy, the header changes nothing. `inject`'s `remoteAddress` plays the peer.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode, main } from "../src/cli.ts";
import { ConfigError, loadServerConfig, unknownSettings } from "../src/config.ts";
import { signUp, startTestServer, type TestServer } from "./helpers.ts";
import { listenStream, StreamClient } from "./ws-helpers.ts";

const PROXY = "10.0.0.7";
const ELSEWHERE = "192.0.2.50";
/** Well-formed, so each is looked up and refused (403), counting toward the address's limit of 3 a second. */
const MADE_UP_KEY = `tk_live_0123456789abcdef_${"A".repeat(43)}`;
const REFUSALS_PER_SECOND = "3";

/** One refused-key attempt on the Automation API from `peer`, with `forwardedFor` as X-Forwarded-For when given. */
async function presentMadeUpKey(server: TestServer, peer: string, forwardedFor?: string) {
  const response = await server.app.inject({
    method: "GET",
    url: "/v1/api/account",
    remoteAddress: peer,
    headers: {
      authorization: `Bearer ${MADE_UP_KEY}`,
      ...(forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor }),
    },
  });
  return { status: response.statusCode, body: response.json() as { code: string } };
}

/** The statuses of `attempts` attempts made one after another (`index`: 0, 1, ...). */
async function statuses(attempts: number, attempt: (index: number) => Promise<{ status: number }>): Promise<number[]> {
  const answered: number[] = [];
  for (let index = 0; index < attempts; index++) answered.push((await attempt(index)).status);
  return answered;
}

/**
 * Runs `test` within one window of the limit before sign-in (per second, on the wall clock), failing loudly when the
 * machine is too slow. The refused keys are counted on the platform's clock, which the test servers' ManualClock
 * holds still: those tests need no such guard.
 */
async function withinOneSecond(test: () => Promise<void>): Promise<void> {
  const started = performance.now();
  await test();
  expect(
    performance.now() - started,
    "the attempts must fit in one second for this test to mean anything",
  ).toBeLessThan(1000);
}

describe("the setting", () => {
  const dataDirectory = mkdtempSync(path.join(tmpdir(), "bourse-trust-proxy-"));
  const load = (settings: Record<string, string>) =>
    loadServerConfig({ BOURSE_DATA_DIR: dataDirectory, BOURSE_CONFIG: "", ...settings });

  it("trusts no proxy when unset or empty, and takes addresses, CIDR ranges and named ranges", () => {
    expect(load({}).trustedProxies).toEqual([]);
    expect(load({ BOURSE_TRUST_PROXY: "" }).trustedProxies).toEqual([]);
    expect(load({ BOURSE_TRUST_PROXY: " 127.0.0.1, 10.0.0.0/8,::1 ,fd00::/8,loopback" }).trustedProxies).toEqual([
      "127.0.0.1",
      "10.0.0.0/8",
      "::1",
      "fd00::/8",
      "loopback",
    ]);
  });

  it.each([
    ["true", /would trust every client's X-Forwarded-For/],
    ["*", /would trust every client's X-Forwarded-For/],
    ["1", /a hop count \(1\) cannot tell the proxy from a client/],
    ["127.0.0.1,2", /a hop count \(2\)/],
    ["127.1", /"127.1" is not an IP address/],
    ["proxy.internal", /"proxy.internal" is not an IP address/],
    ["10.0.0.0/33", /"10.0.0.0\/33" needs a prefix length from 1 to 32/],
    ["10.0.0.0/0", /needs a prefix length from 1 to 32/],
    ["::/0", /needs a prefix length from 1 to 128/],
    ["10.0.0.0/255.0.0.0", /needs a prefix length/],
    ["127.0.0.1,,10.0.0.1", /an entry is empty/],
    ["127.0.0.1,", /an entry is empty/],
  ])("refuses BOURSE_TRUST_PROXY=%j at start, naming the setting and the entry", (value, reason) => {
    expect(() => load({ BOURSE_TRUST_PROXY: value })).toThrow(ConfigError);
    expect(() => load({ BOURSE_TRUST_PROXY: value })).toThrow(
      /^BOURSE_TRUST_PROXY must be a comma-separated list of proxy addresses or CIDR ranges/,
    );
    expect(() => load({ BOURSE_TRUST_PROXY: value })).toThrow(reason);
  });

  it("refuses more than 100 entries", () => {
    const entries = Array.from({ length: 101 }, (_, index) => `10.0.${index}.1`);
    expect(load({ BOURSE_TRUST_PROXY: entries.slice(0, 100).join(",") }).trustedProxies).toHaveLength(100);
    expect(() => load({ BOURSE_TRUST_PROXY: entries.join(",") })).toThrow(
      /^BOURSE_TRUST_PROXY must be .*: at most 100 entries, got 101$/,
    );
  });

  it("reads trustProxy from the configuration file, as text or a list; the environment wins", () => {
    const file = path.join(dataDirectory, "bourse.config.json");
    const fromFile = (content: unknown, environment: Record<string, string> = {}) => {
      writeFileSync(file, JSON.stringify({ dataDir: dataDirectory, ...(content as object) }));
      return loadServerConfig({ BOURSE_CONFIG: file, ...environment });
    };
    expect(fromFile({ trustProxy: ["127.0.0.1", "10.0.0.0/8"] }).trustedProxies).toEqual(["127.0.0.1", "10.0.0.0/8"]);
    expect(fromFile({ trustProxy: "::1" }).trustedProxies).toEqual(["::1"]);
    expect(fromFile({ trustProxy: "::1" }, { BOURSE_TRUST_PROXY: "10.1.2.3" }).trustedProxies).toEqual(["10.1.2.3"]);
    expect(() => fromFile({ trustProxy: true })).toThrow(/BOURSE_TRUST_PROXY must be .*would trust every client/);
    expect(() => fromFile({ trustProxy: [1] })).toThrow(
      /setting for BOURSE_TRUST_PROXY must be a string or a list of strings/,
    );
  });

  it("stops `bourse start` with a configuration error naming the variable", async () => {
    const lines: string[] = [];
    const code = await main(
      ["start"],
      { info: (line) => lines.push(line), error: (line) => lines.push(line) },
      { BOURSE_DATA_DIR: dataDirectory, BOURSE_CONFIG: "", BOURSE_TRUST_PROXY: "true" },
    );
    expect(code).toBe(ExitCode.USAGE);
    expect(lines.join("\n")).toMatch(/^bourse start: configuration error: BOURSE_TRUST_PROXY must be /);
    expect(unknownSettings({ BOURSE_TRUST_PROXY: "127.0.0.1" })).toEqual([]);
  });
});

describe("without the setting", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      environment: { BOURSE_API_KEY_REFUSALS_PER_SECOND: REFUSALS_PER_SECOND, BOURSE_RATE_LIMIT_PER_SECOND: "3" },
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("ignores X-Forwarded-For: a flood of made-up keys under a new forged address each time hits the peer's limit", async () => {
    {
      const flood = await statuses(4, (index) => presentMadeUpKey(server, PROXY, `203.0.113.${index + 1}`));
      expect(flood).toEqual([403, 403, 403, 429]);
      const again = await presentMadeUpKey(server, PROXY, "198.51.100.1");
      expect(again.status).toBe(429);
      expect(again.body.code).toBe("RATE_LIMITED");
      // The limit is the peer's own: another peer is not blocked.
      expect((await presentMadeUpKey(server, ELSEWHERE)).status).toBe(403);
    }
  });

  it("counts requests before sign-in per peer, whatever X-Forwarded-For says", async () => {
    await withinOneSecond(async () => {
      // A public route answered at once (400: it is the stream's upgrade path), counted by the per-address limit.
      const forged = await statuses(4, async (index) => {
        const response = await server.app.inject({
          method: "GET",
          url: "/api/v1/ws",
          remoteAddress: "198.51.100.9",
          headers: { "x-forwarded-for": `203.0.113.${index + 1}` },
        });
        return { status: response.statusCode };
      });
      expect(forged).toEqual([400, 400, 400, 429]);
    });
  });
});

describe("with the proxy trusted", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      environment: {
        BOURSE_API_KEY_REFUSALS_PER_SECOND: REFUSALS_PER_SECOND,
        BOURSE_RATE_LIMIT_PER_SECOND: "3",
        BOURSE_TRUST_PROXY: `${PROXY},10.9.0.0/16`,
      },
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("gives two clients behind the proxy separate refused-key limits", async () => {
    {
      const first = await statuses(4, () => presentMadeUpKey(server, PROXY, "203.0.113.1"));
      const second = await statuses(3, () => presentMadeUpKey(server, PROXY, "203.0.113.2"));
      expect(first).toEqual([403, 403, 403, 429]);
      expect(second).toEqual([403, 403, 403]);
      // The proxy's own requests (no header) are a third client.
      expect((await presentMadeUpKey(server, PROXY)).status).toBe(403);
    }
  });

  it("gives two clients behind the proxy separate limits before sign-in", async () => {
    await withinOneSecond(async () => {
      const from = (client: string) => async () => {
        const response = await server.app.inject({
          method: "GET",
          url: "/api/v1/ws",
          remoteAddress: PROXY,
          headers: { "x-forwarded-for": client },
        });
        return { status: response.statusCode };
      };
      expect(await statuses(4, from("203.0.113.11"))).toEqual([400, 400, 400, 429]);
      expect(await statuses(3, from("203.0.113.12"))).toEqual([400, 400, 400]);
    });
  });

  it("takes no address from a peer that is not the proxy, nor an entry a client put before the proxy's", async () => {
    {
      // A client reaching the server directly claims to be 203.0.113.21: it is counted as itself.
      expect((await presentMadeUpKey(server, PROXY, "203.0.113.21")).status).toBe(403);
      const spoofed = await statuses(4, () => presentMadeUpKey(server, ELSEWHERE, "203.0.113.21"));
      expect(spoofed).toEqual([403, 403, 403, 429]);
      // The real 203.0.113.21, behind the proxy, spent one of its three.
      expect(await statuses(2, () => presentMadeUpKey(server, PROXY, "203.0.113.21"))).toEqual([403, 403]);
      // Through the proxy, which appends the peer it saw: the client's own entry on the left is not believed.
      const forgedChain = await statuses(4, () => presentMadeUpKey(server, PROXY, "203.0.113.31, 203.0.113.32"));
      expect(forgedChain).toEqual([403, 403, 403, 429]);
      expect((await presentMadeUpKey(server, PROXY, "203.0.113.31")).status).toBe(403);
    }
  });

  it("gives the dedicated Automation API listener the same rule", async () => {
    const both = await startTestServer({
      environment: {
        BOURSE_PORT: "0",
        BOURSE_AUTOMATION_PORT: "0",
        BOURSE_API_KEY_REFUSALS_PER_SECOND: REFUSALS_PER_SECOND,
        // The test's sockets come from 127.0.0.1: it plays the proxy.
        BOURSE_TRUST_PROXY: "127.0.0.1",
      },
    });
    try {
      await both.listen();
      const dedicated = `http://127.0.0.1:${(both.automationApp!.server.address() as { port: number }).port}`;
      const present = (client: string) => async () => {
        const response = await fetch(`${dedicated}/v1/api/account`, {
          headers: { authorization: `Bearer ${MADE_UP_KEY}`, "x-forwarded-for": client },
        });
        return { status: response.status };
      };
      {
        expect(await statuses(4, present("203.0.113.41"))).toEqual([403, 403, 403, 429]);
        expect(await statuses(3, present("203.0.113.42"))).toEqual([403, 403, 403]);
      }
    } finally {
      await both.close();
    }
  });
});

describe("the scheme and the host the client used", () => {
  /** The Pusher session's connection, as `peer` asks for it with `headers`. */
  async function pusherConnection(server: TestServer, token: string, peer: string, headers: Record<string, string>) {
    const response = await server.app.inject({
      method: "POST",
      url: "/api/v2/ws/session",
      remoteAddress: peer,
      headers: { authorization: token, ...headers },
      payload: { streams: [] },
    });
    expect(response.statusCode).toBe(200);
    return (response.json() as { connection: { wsHost: string; wsPort: number; forceTls: boolean } }).connection;
  }

  it("are the trusted proxy's X-Forwarded-Proto and X-Forwarded-Host in the Pusher session, and nobody else's", async () => {
    const server = await startTestServer({ environment: { BOURSE_TRUST_PROXY: PROXY } });
    try {
      const user = await signUp(server);
      const scheme = { "x-forwarded-proto": "https", host: "bourse.example" };
      expect(await pusherConnection(server, user.token, PROXY, scheme)).toMatchObject({ forceTls: true, wsPort: 443 });
      expect(await pusherConnection(server, user.token, ELSEWHERE, scheme)).toMatchObject({
        forceTls: false,
        wsPort: 80,
      });
      // Found by the audit of the README of 7 December: the session named the Host the proxy sent upstream (nginx's
      // default is the upstream's own), which no client can reach; a trusted proxy's X-Forwarded-Host is the client's.
      const host = { host: "127.0.0.1:8080", "x-forwarded-host": "trade.example.com", "x-forwarded-proto": "https" };
      expect(await pusherConnection(server, user.token, PROXY, host)).toMatchObject({
        wsHost: "trade.example.com",
        wsPort: 443,
        forceTls: true,
      });
      expect(await pusherConnection(server, user.token, ELSEWHERE, host)).toMatchObject({
        wsHost: "127.0.0.1",
        wsPort: 8080,
        forceTls: false,
      });
    } finally {
      await server.close();
    }
  });
});

describe("the native stream", () => {
  /** Connects with a made-up API key as `?token=` and X-Forwarded-For `forwardedFor`; answers the error's code. */
  async function refusedCode(url: string, forwardedFor: string): Promise<string> {
    const client = await StreamClient.connect(url, MADE_UP_KEY, { headers: { "x-forwarded-for": forwardedFor } });
    const error = await client.nextOf("error");
    expect((await client.closed).code).toBe(4001);
    return error.payload.code as string;
  }

  async function streamServer(trustProxy: string | null) {
    const server = await startTestServer({
      environment: {
        BOURSE_API_KEY_REFUSALS_PER_SECOND: REFUSALS_PER_SECOND,
        ...(trustProxy === null ? {} : { BOURSE_TRUST_PROXY: trustProxy }),
      },
    });
    return { server, url: await listenStream(server) };
  }

  it("with the proxy trusted, counts refused keys per forwarded address, together with HTTP's", async () => {
    // The test's sockets come from 127.0.0.1: it plays the proxy.
    const { server, url } = await streamServer("127.0.0.1");
    try {
      {
        const first = [];
        for (let attempt = 0; attempt < 4; attempt++) first.push(await refusedCode(url, "203.0.113.51"));
        expect(first).toEqual(["UNAUTHORIZED", "UNAUTHORIZED", "UNAUTHORIZED", "RATE_LIMITED"]);
        expect(await refusedCode(url, "203.0.113.52")).toBe("UNAUTHORIZED");
        // One rule on both faces: HTTP sees the same client blocked, and the other one not.
        expect((await presentMadeUpKey(server, "127.0.0.1", "203.0.113.51")).status).toBe(429);
        expect((await presentMadeUpKey(server, "127.0.0.1", "203.0.113.52")).status).toBe(403);
      }
    } finally {
      await server.close();
    }
  });

  it.each([
    ["without the setting", null],
    ["from a peer that is not the trusted proxy", PROXY],
  ])("%s, ignores X-Forwarded-For: every forged address counts as the peer", async (_name, trustProxy) => {
    const { server, url } = await streamServer(trustProxy);
    try {
      {
        const codes = [];
        for (let attempt = 0; attempt < 4; attempt++) codes.push(await refusedCode(url, `203.0.113.${60 + attempt}`));
        expect(codes).toEqual(["UNAUTHORIZED", "UNAUTHORIZED", "UNAUTHORIZED", "RATE_LIMITED"]);
      }
    } finally {
      await server.close();
    }
  });
});
