// The WebSocket clients of bench/ws.ts, run as child processes (fork) so they never share the server's
// JavaScript thread. Each socket does the RFC 6455 handshake over a plain TCP socket and counts the text
// frames it receives by their headers, skipping payloads (a sampled one is decoded for its latency):
// much cheaper per message than a full client, so the server, not the clients, is what is measured.
//
// Commands over IPC:
//   {cmd: "connect", url, count, subscribe}  opens `count` sockets to `url`, sends `subscribe` (a JSON
//                                             text, or null) on each, and waits for every socket's first
//                                             text frame (its acknowledgement) → {ready: true}
//   {cmd: "reset", sampleEvery}              zeroes the counters; decodes one message in `sampleEvery` for
//                                             its latency (payload.sentAt: epoch ms, high resolution)
//   {cmd: "report"}                          → {messages, latencies}
//   {cmd: "close"}                           destroys every socket and exits
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { performance } from "node:perf_hooks";
import { URL } from "node:url";

const sockets = [];
let messages = 0;
let sampleEvery = 1;
let latencies = [];
const now = () => performance.timeOrigin + performance.now();

/** A masked client text frame. */
function clientFrame(text) {
  const payload = Buffer.from(text);
  const length = payload.length;
  const header = length < 126 ? 2 : 4;
  const frame = Buffer.alloc(header + 4 + length);
  frame[0] = 0x81;
  if (header === 2) frame[1] = 0x80 | length;
  else {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  }
  const mask = randomBytes(4);
  mask.copy(frame, header);
  for (let index = 0; index < length; index += 1) frame[header + 4 + index] = payload[index] ^ mask[index % 4];
  return frame;
}

function sample(parts) {
  const text = Buffer.concat(parts).toString();
  const at = text.indexOf('"sentAt":');
  if (at < 0) return;
  const sentAt = Number.parseFloat(text.slice(at + 9, at + 40));
  if (Number.isFinite(sentAt)) latencies.push(now() - sentAt);
}

function open(url, subscribe) {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(target.port), target.hostname);
    socket.setNoDelay(true);
    sockets.push(socket);
    let handshake = Buffer.alloc(0);
    let upgraded = false;
    let acknowledged = false;
    // Frame parser state: header bytes left over from the previous chunk, payload bytes to skip, capture.
    let leftover = null;
    let skip = 0;
    let capture = null;
    socket.once("error", reject);
    socket.on("connect", () => {
      socket.write(
        `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n` +
          "Sec-WebSocket-Version: 13\r\n\r\n",
      );
    });
    const frames = (chunk) => {
      if (leftover) {
        chunk = Buffer.concat([leftover, chunk]);
        leftover = null;
      }
      let offset = 0;
      while (offset < chunk.length) {
        if (skip > 0) {
          const take = Math.min(skip, chunk.length - offset);
          if (capture) capture.push(chunk.subarray(offset, offset + take));
          offset += take;
          skip -= take;
          if (skip === 0 && capture) {
            sample(capture);
            capture = null;
          }
          continue;
        }
        const available = chunk.length - offset;
        if (available < 2) {
          leftover = chunk.subarray(offset);
          return;
        }
        const opcode = chunk[offset] & 0x0f;
        let length = chunk[offset + 1] & 0x7f;
        let header = 2;
        if (length === 126) {
          if (available < 4) {
            leftover = chunk.subarray(offset);
            return;
          }
          length = chunk.readUInt16BE(offset + 2);
          header = 4;
        } else if (length === 127) {
          if (available < 10) {
            leftover = chunk.subarray(offset);
            return;
          }
          length = chunk.readUInt32BE(offset + 6);
          header = 10;
        }
        offset += header;
        skip = length;
        if (opcode === 1) {
          if (!acknowledged) {
            acknowledged = true;
            resolve();
          } else {
            messages += 1;
            if (messages % sampleEvery === 0) capture = [];
          }
        } else if (opcode === 9) {
          // A ping: answer with an empty pong (masked, as clients must).
          socket.write(Buffer.from([0x8a, 0x80, 0, 0, 0, 0]));
        }
        if (skip === 0 && capture) {
          sample(capture);
          capture = null;
        }
      }
    };
    socket.on("data", (chunk) => {
      if (upgraded) return frames(chunk);
      handshake = Buffer.concat([handshake, chunk]);
      const end = handshake.indexOf("\r\n\r\n");
      if (end < 0) return;
      if (!handshake.subarray(0, 12).toString().includes("101")) {
        reject(new Error(`handshake refused: ${handshake.subarray(0, end).toString()}`));
        return;
      }
      upgraded = true;
      if (subscribe) socket.write(clientFrame(subscribe));
      const rest = handshake.subarray(end + 4);
      handshake = null;
      if (rest.length > 0) frames(rest);
    });
  });
}

async function connect({ url, count, subscribe }) {
  const pending = [];
  for (let index = 0; index < count; index += 1) {
    pending.push(open(url, subscribe));
    // A few hundred handshakes in flight at most.
    if (pending.length % 200 === 0) await Promise.all(pending.slice(-200));
  }
  await Promise.all(pending);
}

process.on("message", async (command) => {
  try {
    if (command.cmd === "connect") {
      await connect(command);
      process.send({ ready: true });
    } else if (command.cmd === "reset") {
      messages = 0;
      latencies = [];
      sampleEvery = command.sampleEvery ?? 1;
      process.send({ reset: true });
    } else if (command.cmd === "report") {
      process.send({ messages, latencies });
    } else if (command.cmd === "close") {
      for (const socket of sockets) socket.destroy();
      process.exit(0);
    }
  } catch (error) {
    process.send({ error: String(error?.stack ?? error) });
  }
});
