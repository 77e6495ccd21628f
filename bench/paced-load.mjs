// Open-loop load at a steady rate for bench/http.ts, run as a child process like load-generator.mjs.
//
// Why not autocannon for this: its rate limit lets each connection send back to back until it has made
// its share of the second, then waits for the next second, so "2,000/s over 10 connections" is a burst at
// full speed for ~0.2 s each second; and its coordinated-omission correction takes ceil(1 / rate) as the
// expected interval in milliseconds (1 ms for any rate above 1/s). Here request i is due at start + i / rate;
// a ticker thread says when it is due and it is sent at once on one of `connections` keep-alive sockets (or
// waits for one), and its latency counts from when it was due: a late tick, a busy socket or a slow answer
// all count against the server, none is left out.
//
// Why raw sockets and not node:http: on a two-core machine the client shares the cores with the server, and
// node:http's client spent ~290 µs of CPU a request here (more than the server's empty route), which the
// server's latency then paid for. Like autocannon, this client writes each request's bytes built once
// before the run and reads only what it needs of an answer (status, Content-Length, the end of the body):
// about half the CPU a request.
//
// Reads {url, connections, duration (s), rate (requests/s), requests?: [{method, path, headers, body}]} as
// JSON from argv[2] (a file path); prints {requests: {average, total}, latency: {p50, p90, p99, max, average}
// (ms), sendLateness: {p50, p99, max} (ms: how late requests left this process), cpuSeconds (this process),
// non2xx, errors, timeouts} as JSON on stdout.
import { Buffer } from "node:buffer";
import net from "node:net";
import { readFileSync } from "node:fs";
import { URL } from "node:url";
import { sharedNow as now, startTicker } from "./ticker.mjs";

/** The end of an answer's head (RFC 9112 section 2.1). */
const HEAD_END = Buffer.from("\r\n\r\n");
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;
/** An answer's head larger than this is not one the bench's server sends: stop rather than buffer without end. */
const MAX_HEAD_BYTES = 64 * 1024;

const options = JSON.parse(readFileSync(process.argv[2], "utf8"));
const target = new URL(options.url);
const requests = (options.requests ?? [{ method: "GET", path: target.pathname + target.search, headers: {} }]).map(
  (request) => {
    const body = Buffer.from(request.body ?? "");
    let head = `${request.method} ${request.path} HTTP/1.1\r\nhost: ${target.host}\r\n`;
    for (const [name, value] of Object.entries(request.headers)) head += `${name}: ${value}\r\n`;
    if (request.method !== "GET" || body.length > 0) head += `content-length: ${body.length}\r\n`;
    return Buffer.concat([Buffer.from(`${head}\r\n`, "latin1"), body]);
  },
);
const intervalMs = 1000 / options.rate;
const total = Math.round(options.rate * options.duration);
const latencies = new Float64Array(total).fill(Number.NaN);
/** How late each request left this process after it was due: the client's own share of its latency. */
const lateness = new Float64Array(total);
/** The first request is due a little after the connections are open: time for the ticker thread to start. */
const START_DELAY_MS = 100;
let start = 0;
let sent = 0;
let answered = 0;
let non2xx = 0;
let errors = 0;
/** Connections with no request in flight. */
const idle = [];
/** Requests that are due while every connection has one in flight, oldest first. */
const backlog = [];
let backlogHead = 0;
let resolveFinished;
const finished = new Promise((resolve) => (resolveFinished = resolve));

const dueAt = (index) => start + index * intervalMs;

/** Counts an answer (or a failure) of the request in flight on `connection`; true when it was the last. */
function settle(connection) {
  answered += 1;
  connection.index = -1;
  if (answered < total) return false;
  resolveFinished();
  return true;
}

/** A connection with nothing in flight takes the oldest due request, or waits for the next one. */
function release(connection) {
  if (backlogHead < backlog.length) dispatch(connection, backlog[backlogHead++]);
  else idle.push(connection);
}

function dispatch(connection, index) {
  connection.index = index;
  lateness[index] = now() - dueAt(index);
  connection.socket.write(requests[index % requests.length]);
}

/** Reads the answers in `data` (one request in flight per connection); returns the bytes of an unfinished one. */
function readAnswers(connection, data) {
  for (;;) {
    const headEnd = data.indexOf(HEAD_END);
    if (headEnd < 0) {
      if (data.length > MAX_HEAD_BYTES) throw new Error(`an answer's head is over ${MAX_HEAD_BYTES} bytes`);
      return data;
    }
    const head = data.latin1Slice(0, headEnd);
    const length = CONTENT_LENGTH.exec(head);
    // The bench's server answers with a Content-Length (no chunked bodies); anything else would be misread.
    if (!length) throw new Error(`an answer without Content-Length: ${head.split("\r\n")[0]}`);
    const end = headEnd + HEAD_END.length + Number(length[1]);
    if (data.length < end) return data;
    const index = connection.index;
    if (index < 0) throw new Error(`an answer to no request: ${head.split("\r\n")[0]}`);
    latencies[index] = now() - dueAt(index);
    const status = Number(head.slice(9, 12));
    if (status < 200 || status > 299) non2xx += 1;
    data = data.subarray(end);
    if (!settle(connection)) release(connection);
  }
}

function connect() {
  return new Promise((resolve, reject) => {
    const connection = { socket: null, index: -1, unread: null };
    const socket = net.connect({ host: target.hostname, port: Number(target.port), noDelay: true }, () =>
      resolve(connection),
    );
    connection.socket = socket;
    socket.on("data", (chunk) => {
      const data = connection.unread ? Buffer.concat([connection.unread, chunk]) : chunk;
      const rest = readAnswers(connection, data);
      connection.unread = rest.length > 0 ? rest : null;
    });
    socket.on("error", (error) => {
      if (start === 0) reject(error);
    });
    socket.on("close", () => {
      // A connection lost mid-run: its request in flight failed; a new connection takes its place.
      if (start === 0 || answered === total) return;
      const position = idle.indexOf(connection);
      if (position >= 0) idle.splice(position, 1);
      if (connection.index >= 0) {
        errors += 1;
        if (settle(connection)) return;
      }
      connect().then(release, (error) => {
        process.stderr.write(`paced-load: cannot reconnect: ${error.message}\n`);
        process.exit(1);
      });
    });
  });
}

for (let opened = 0; opened < options.connections; opened += 1) idle.push(await connect());
const cpuStart = process.cpuUsage();
start = now() + START_DELAY_MS;
const ticker = startTicker({ start, intervalMs, total }, (due) => {
  while (sent <= due) {
    const connection = idle.pop();
    if (connection) dispatch(connection, sent);
    else backlog.push(sent);
    sent += 1;
  }
});

await finished;
const seconds = (now() - start) / 1000;
const cpu = process.cpuUsage(cpuStart);
const measured = Array.from(latencies)
  .filter((latency) => !Number.isNaN(latency))
  .sort((a, b) => a - b);
const at = (share, sorted = measured) =>
  sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))] ?? Number.NaN;
const late = Array.from(lateness).sort((a, b) => a - b);
await ticker.terminate();
process.stdout.write(
  JSON.stringify({
    requests: { average: total / seconds, total },
    latency: {
      p50: at(0.5),
      p90: at(0.9),
      p99: at(0.99),
      max: measured.at(-1) ?? Number.NaN,
      average: measured.reduce((sum, latency) => sum + latency, 0) / measured.length,
    },
    sendLateness: { p50: at(0.5, late), p99: at(0.99, late), max: late.at(-1) ?? Number.NaN },
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    non2xx,
    errors,
    timeouts: 0,
  }),
);
process.exit(0);
