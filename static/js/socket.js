// A WebSocket that comes back after a dropped connection: exponential back-off, and a
// fresh URL on every attempt (so the caller can add ?conversation=<id> to resume).

/** Close codes the server uses for "don't try again", with what to tell the person. */
export const FINAL_CLOSE_CODES = {
  4401: { code: "login_required", message: "Sign in to talk to this agent." },
  4404: { code: "unknown_agent", message: "This agent does not exist or is switched off." },
  4408: { code: "session_too_long", message: "The call reached its maximum length." },
  4429: { code: "too_many_sessions", message: "Too many calls are open from this address. End one and try again." },
};

/** ws:// or wss:// URL for a path on this site, with query parameters. */
export function socketUrl(path, params = {}) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  for (const [name, value] of Object.entries(params)) {
    if (value) url.searchParams.set(name, value);
  }
  return url.toString();
}

export class ReconnectingSocket {
  /**
   * @param {object} options
   * @param {() => string} options.url  the URL for the next attempt
   * @param {boolean} [options.binary]  binary frames (ArrayBuffer) instead of text
   * @param {(socket: WebSocket, reconnected: boolean) => void} [options.onOpen]
   * @param {(data: any) => void} options.onMessage
   * @param {(state: string, detail?: object) => void} [options.onState]
   *   "connecting", "open", "reconnecting" ({attempt, delayMs}), "closed" (we closed it),
   *   "failed" ({code, message}: the server refused us, or we gave up)
   * @param {number} [options.maxAttempts]
   */
  constructor({ url, binary = false, onOpen, onMessage, onState, maxAttempts = 6 }) {
    this.url = url;
    this.binary = binary;
    this.onOpen = onOpen ?? (() => {});
    this.onMessage = onMessage;
    this.onState = onState ?? (() => {});
    this.maxAttempts = maxAttempts;
    this.ws = null;
    this.attempt = 0;
    this.stopped = true;
    this.everOpened = false;
    this.retryTimer = null;
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    this.stopped = false;
    this.attempt = 0;
    this.everOpened = false;
    this.connect();
  }

  send(data) {
    if (!this.isOpen) return false;
    this.ws.send(data);
    return true;
  }

  /** Close for good (the person ended it): no reconnect. */
  stop(code = 1000) {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(code);
    this.onState("closed");
  }

  connect() {
    this.onState(this.everOpened ? "reconnecting" : "connecting", { attempt: this.attempt });
    const ws = new WebSocket(this.url());
    if (this.binary) ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.attempt = 0;
      this.onState("open", { reconnected });
      this.onOpen(ws, reconnected);
    });
    ws.addEventListener("message", (event) => {
      if (ws === this.ws) this.onMessage(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (ws !== this.ws || this.stopped) return;
      this.ws = null;
      const final = FINAL_CLOSE_CODES[event.code];
      if (final) {
        this.stopped = true;
        this.onState("failed", { ...final, closeCode: event.code });
        return;
      }
      this.attempt += 1;
      if (this.attempt > this.maxAttempts) {
        this.stopped = true;
        this.onState("failed", {
          code: "connection_lost",
          message: "The connection to the server was lost. Check your network and try again.",
          closeCode: event.code,
        });
        return;
      }
      const delayMs = Math.min(250 * 2 ** (this.attempt - 1), 8000);
      this.onState("reconnecting", { attempt: this.attempt, delayMs, closeCode: event.code });
      this.retryTimer = setTimeout(() => {
        if (!this.stopped) this.connect();
      }, delayMs);
    });
  }
}
