/**
 * The building blocks a stream adapter needs between the bus and its sockets, protocol-neutral: the
 * native stream (ws-stream.ts) and the Pusher endpoint (pusher-stream.ts) both use them, so both adapters
 * behave the same (one bus, two adapters):
 *
 * - `TopicFanout`: one bus subscription per topic for all the adapter's sockets; a bus message is handed
 *   once to the adapter's dispatch with every subscriber, so a frame is serialised once for all of them.
 * - `Outbound`: one socket's sending side. A queue (replies, account events: never dropped) and a
 *   conflation map (quotes, depth, metrics: the latest frame per key replaces the one not sent yet).
 *   Sockets with something to send are flushed once per event-loop turn (`FlushScheduler`), every frame of
 *   a flush copied into one buffer (one write). When the socket's send buffer passes `highWaterBytes`, conflated
 *   data waits for it to drain (a slow reader gets the latest quote, not a backlog); when the buffer plus
 *   the queue passes `maxBufferedBytes`, or it stays stalled `slowConsumerMs`, `onSlowConsumer` is called
 *   (the adapter closes the socket with its protocol's code).
 * - `MessageRate`: a token bucket for the messages a client sends.
 * - `textFrame`: a ready WebSocket text frame, built once for every subscriber.
 */
import type { Socket } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import type { Bus, BusMessage } from "./bus.ts";

export interface OutboundLimits {
  /** Above this many bytes waiting in the send buffer, conflated data waits. */
  readonly highWaterBytes: number;
  /** Send buffer plus queue above this: a slow consumer. */
  readonly maxBufferedBytes: number;
  /** Stalled above the high-water mark this long: a slow consumer. */
  readonly slowConsumerMs: number;
}

export interface Flushable {
  flush(): void;
}

/** Flushes every socket marked dirty once, on the next turn of the event loop. */
export class FlushScheduler {
  private readonly dirty = new Set<Flushable>();
  private scheduled = false;

  mark(target: Flushable): void {
    this.dirty.add(target);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const dirty = [...this.dirty];
      this.dirty.clear();
      for (const each of dirty) each.flush();
    });
  }

  forget(target: Flushable): void {
    this.dirty.delete(target);
  }
}

/** A complete unmasked text frame (server → client) holding `text`: built once, written to every subscriber. */
export function textFrame(text: string): Buffer {
  const length = Buffer.byteLength(text);
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = 0x81;
  if (header === 2) frame[1] = length;
  else if (header === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  frame.write(text, header);
  return frame;
}

/**
 * The conflation key of one bar of a candle topic: the latest update of each bar is kept, so a closed bar's final
 * values are never replaced by the next bar's. `time`: the bar's open time as the candleEvent writes it.
 */
export function barKey(topic: string, time: unknown): string {
  return `${barKeyPrefix(topic)}${String(time)}`;
}

/** What every bar key of `topic` starts with (to drop them all; the `@` keeps M1's from taking M15's). */
export function barKeyPrefix(topic: string): string {
  return `${topic}@`;
}

/** One socket's sending side: a queue, a conflation map, flushes once per turn, slow-consumer detection. */
export class Outbound implements Flushable {
  private queue: Buffer[] = [];
  queuedBytes = 0;
  private readonly conflated = new Map<string, Buffer>();
  private waitingDrain = false;
  private stallTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly raw: Socket;

  constructor(
    private readonly ws: WebSocket,
    private readonly limits: OutboundLimits,
    private readonly scheduler: FlushScheduler,
    private readonly onSlowConsumer: () => void,
  ) {
    this.raw = (ws as unknown as { _socket: Socket })._socket;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Never dropped: queued until the next flush; a queue over the budget calls onSlowConsumer. */
  enqueue(frame: Buffer): void {
    if (this.stopped) return;
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    if (this.withinBudget()) this.scheduler.mark(this);
  }

  /** The latest frame of `key` replaces the one not sent yet. */
  conflate(key: string, frame: Buffer): void {
    if (this.stopped) return;
    this.conflated.set(key, frame);
    if (!this.waitingDrain) this.scheduler.mark(this);
  }

  /** Forgets the conflated frame of `key` (an unsubscribed topic). */
  drop(key: string): void {
    this.conflated.delete(key);
  }

  /** Forgets the conflated frames whose key starts with `prefix` (an unsubscribed candle topic's bars). */
  dropPrefix(prefix: string): void {
    for (const key of [...this.conflated.keys()]) if (key.startsWith(prefix)) this.conflated.delete(key);
  }

  /** Writes `frame` now, ahead of anything queued (an error before a close). */
  writeNow(frame: Buffer): void {
    if (this.ws.readyState === this.ws.OPEN) this.raw.write(frame);
  }

  flush(): void {
    if (this.stopped || this.ws.readyState !== this.ws.OPEN) return;
    const sendConflated = this.conflated.size > 0 && this.ws.bufferedAmount <= this.limits.highWaterBytes;
    if (this.queue.length === 0 && !sendConflated) {
      if (this.conflated.size > 0) this.awaitDrain();
      return;
    }
    // One write per flush: small frames copied into one buffer cost less than one stream write each.
    const frames = this.queue;
    let bytes = this.queuedBytes;
    this.queue = [];
    this.queuedBytes = 0;
    if (sendConflated) {
      for (const frame of this.conflated.values()) {
        frames.push(frame);
        bytes += frame.length;
      }
      this.conflated.clear();
    }
    this.raw.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames, bytes));
    if (!this.withinBudget()) return;
    if (this.conflated.size > 0) this.awaitDrain();
  }

  /** Drops everything not sent and stops (closing). */
  stop(): void {
    this.stopped = true;
    this.queue = [];
    this.queuedBytes = 0;
    this.conflated.clear();
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    this.scheduler.forget(this);
  }

  /** False (and onSlowConsumer called) when the send buffer, the queue and `extra` bytes held elsewhere pass the budget. */
  withinBudget(extra = 0): boolean {
    if (this.ws.bufferedAmount + this.queuedBytes + extra <= this.limits.maxBufferedBytes) return true;
    this.onSlowConsumer();
    return false;
  }

  /** Conflated data waits for the send buffer to drain; stalled too long is a slow consumer. */
  private awaitDrain(): void {
    if (this.waitingDrain) return;
    this.waitingDrain = true;
    this.raw.once("drain", () => {
      this.waitingDrain = false;
      if (this.stallTimer) clearTimeout(this.stallTimer);
      this.stallTimer = null;
      if (!this.stopped) this.scheduler.mark(this);
    });
    if (!this.stallTimer) {
      this.stallTimer = setTimeout(() => this.onSlowConsumer(), this.limits.slowConsumerMs);
      this.stallTimer.unref();
    }
  }
}

/** One bus subscription per topic for all subscribers; `dispatch` gets each message once with all of them. */
export class TopicFanout<Subscriber> {
  private readonly topics = new Map<string, { subscribers: Set<Subscriber>; unsubscribe: () => void }>();

  constructor(
    private readonly bus: Bus,
    private readonly dispatch: (topic: string, message: BusMessage, subscribers: ReadonlySet<Subscriber>) => void,
  ) {}

  join(subscriber: Subscriber, topic: string): void {
    let entry = this.topics.get(topic);
    if (!entry) {
      const subscribers = new Set<Subscriber>();
      entry = {
        subscribers,
        unsubscribe: this.bus.subscribe(topic, (name, message) => this.dispatch(name, message, subscribers)),
      };
      this.topics.set(topic, entry);
    }
    entry.subscribers.add(subscriber);
  }

  leave(subscriber: Subscriber, topic: string): void {
    const entry = this.topics.get(topic);
    if (!entry || !entry.subscribers.delete(subscriber)) return;
    if (entry.subscribers.size === 0) {
      entry.unsubscribe();
      this.topics.delete(topic);
    }
  }

  /** Topics with at least one subscriber. */
  get size(): number {
    return this.topics.size;
  }
}

/** A token bucket: `perSecond` messages a second, in bursts of the same size. */
/**
 * The WebSocket server of a stream: upgrades are handed to it by the server's upgrade router (no server of its
 * own), no compression (every frame is prepared once for all its subscribers), the stream tracks its own
 * connections, and a client frame is at most `maxPayloadBytes`.
 */
export function streamSocketServer(maxPayloadBytes: number): WebSocketServer {
  return new WebSocketServer({
    noServer: true,
    maxPayload: maxPayloadBytes,
    perMessageDeflate: false,
    clientTracking: false,
  });
}

/**
 * The setTimeout delay that fires at `target` on the platform clock (`now`): never negative, and at most
 * setTimeout's longest delay (2^31 − 1 ms; a longer one would fire at once). Both streams end what a
 * session authorised when it expires.
 */
export function delayUntil(target: number, now: number): number {
  return Math.min(Math.max(0, target - now), 2 ** 31 - 1);
}

export class MessageRate {
  private tokens: number;
  private refilledAt = performance.now();
  /** Refusals in a row, less one per accepted message (persistent abuse closes the socket). */
  violations = 0;

  constructor(private readonly perSecond: number) {
    this.tokens = perSecond;
  }

  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.refilledAt) / 1000) * this.perSecond);
    this.refilledAt = now;
    if (this.tokens < 1) {
      this.violations += 1;
      return false;
    }
    this.tokens -= 1;
    this.violations = Math.max(0, this.violations - 1);
    return true;
  }

  /** Counts a refusal for another reason than the rate (e.g. too many messages pending); false. */
  refuse(): false {
    this.violations += 1;
    return false;
  }
}
