/**
 * A test client on the real `ws` package that records every message it receives, decoded, and waits for the
 * ones a test expects. The native stream's client and the raw Pusher client decode their own frames.
 */
import { WebSocket } from "ws";

export class RecordingSocket<Message extends object> {
  /** Every message received, in order. */
  readonly messages: Message[] = [];
  /** Messages a `next` has returned: each is returned once. */
  private readonly taken = new WeakSet<Message>();
  /** Messages before this index are all taken (so a long-lived socket's search starts late). */
  private consumed = 0;
  private readonly waiters = new Set<() => void>();
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  protected constructor(
    readonly ws: WebSocket,
    decode: (text: string) => Message,
  ) {
    ws.on("message", (data) => {
      const text = data.toString();
      this.received(text);
      this.messages.push(decode(text));
      this.wake();
    });
    this.closed = new Promise((resolve) =>
      ws.on("close", (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.wake();
      }),
    );
    this.opened = new Promise((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    ws.on("error", () => undefined);
  }

  /** Each frame's text as it arrived, before decoding (a subclass may keep it). */
  protected received(_text: string): void {}

  /**
   * The first message not returned yet that `predicate` accepts, waiting for it; messages before it that do not
   * match stay available to later calls. Rejects after `timeoutMs`, or once the socket is closed without it.
   */
  next(predicate: (message: Message) => boolean = () => true, timeoutMs = 3000): Promise<Message> {
    return new Promise((resolve, reject) => {
      const look = (): boolean => {
        for (let index = this.consumed; index < this.messages.length; index += 1) {
          const message = this.messages[index]!;
          if (this.taken.has(message) || !predicate(message)) continue;
          this.taken.add(message);
          while (this.consumed < this.messages.length && this.taken.has(this.messages[this.consumed]!))
            this.consumed += 1;
          resolve(message);
          return true;
        }
        return false;
      };
      if (look()) return;
      const waiter = () => {
        if (look()) {
          clearTimeout(timer);
          this.waiters.delete(waiter);
        } else if (this.ws.readyState === WebSocket.CLOSED) {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          reject(new Error(`closed while waiting; got ${JSON.stringify(this.messages.slice(-5))}`));
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms; last messages: ${JSON.stringify(this.messages.slice(-5))}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
