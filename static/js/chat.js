// Text chat over the agent's JSON chat socket.
//
// Client: {type: "message", text}. Server: `session` {conversation, resumed, history},
// `delta` {text} per clause, `done` {text, error}, `error` {code, message}.
// The socket opens on the first message (or at once, to show the history, when this tab
// already has a conversation with the agent); a dropped socket reconnects with
// ?conversation=<id>, which resumes the same conversation on the server. The conversation
// is the page's (see conversation.js): a call on this page continues it, and the
// history shows its spoken turns too.

import { ReconnectingSocket, socketUrl } from "./socket.js";

export class TextChat {
  /**
   * @param {object} options
   * @param {string} options.path  /agents/<slug>/chat
   * @param {string} options.sig  a signed link's token, or ""
   * @param {import("./conversation.js").PageConversation} options.conversation
   * @param {import("./transcript.js").Transcript} options.transcript
   * @param {object} options.events  onState(state, message), onError({code, message}),
   *   onBusy(busy)
   */
  constructor({ path, sig, conversation, transcript, events }) {
    this.path = path;
    this.sig = sig;
    this.conversation = conversation;
    this.transcript = transcript;
    this.events = events;
    this.ready = false; // `session` received on the current socket
    this.outbox = []; // messages typed while not connected
    this.pendingTurn = null; // the agent turn streaming in
    this.waiting = false; // a message is out and its reply has not finished
    this.socket = new ReconnectingSocket({
      url: () => socketUrl(this.path, { sig: this.sig, conversation: this.conversation.id }),
      onMessage: (data) => this.onFrame(data),
      onState: (state, detail) => this.onSocketState(state, detail),
    });
  }

  /** Reconnect to this tab's conversation, if it has one, to show its history. */
  resumeIfAny() {
    if (this.conversation.id) this.socket.start();
  }

  /** Close the socket (a new conversation is starting); the next message reopens it. */
  stop() {
    if (this.pendingTurn || this.waiting) this.cut("interrupted");
    this.outbox = [];
    this.ready = false;
    this.socket.stop();
    this.events.onState("idle", "");
  }

  send(text) {
    const turn = this.transcript.addTurn("user", "text", text);
    // A new message supersedes a reply still streaming (the server cancels it).
    if (this.pendingTurn) this.cut("interrupted");
    this.outbox.push({ text, turn });
    if (this.socket.stopped) this.socket.start();
    else this.flush();
  }

  flush() {
    if (!this.ready) return;
    while (this.outbox.length) {
      const { text } = this.outbox[0];
      if (!this.socket.send(JSON.stringify({ type: "message", text }))) return;
      this.outbox.shift();
      this.waiting = true;
      this.events.onBusy(true);
    }
  }

  onSocketState(state, detail) {
    if (state === "open") return; // ready once `session` arrives
    this.ready = false;
    if (state === "connecting") this.events.onState("connecting", "Connecting…");
    else if (state === "reconnecting") {
      if (this.pendingTurn || this.waiting) this.cut("connection lost");
      this.events.onState("reconnecting", "Connection lost. Reconnecting…");
    } else if (state === "failed") {
      if (this.pendingTurn || this.waiting) this.cut("connection lost");
      this.outbox = [];
      this.events.onState("failed", detail.message);
      this.events.onError(detail);
    }
  }

  onFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    switch (frame.type) {
      case "session":
        this.onSession(frame);
        break;
      case "delta":
        this.pendingTurn ??= this.newAgentTurn();
        this.transcript.addClause(this.pendingTurn, frame.text);
        break;
      case "done":
        this.onDone(frame);
        break;
      case "error":
        // The socket stays open; a refused message gets no `done`.
        this.waiting = false;
        this.events.onBusy(false);
        this.events.onError({ code: frame.code, message: frame.message });
        break;
      default:
        break;
    }
  }

  onSession({ conversation, resumed, history }) {
    const again = resumed && conversation === this.conversation.shown;
    this.conversation.set(conversation);
    if (!again) {
      // A new conversation, or this tab's earlier one after a reload: show its history
      // (typed and spoken turns), ahead of messages typed while the socket was opening.
      const before = this.outbox[0]?.turn ?? null;
      for (const { role, text, channel } of history) {
        const how = channel === "web_voice" ? "voice" : "text";
        this.transcript.addTurn(role === "user" ? "user" : "agent", how, text, before);
      }
      this.conversation.shown = conversation;
    }
    this.ready = true;
    this.events.onState("ready", again ? "Reconnected." : "");
    this.flush();
  }

  newAgentTurn() {
    const turn = this.transcript.addTurn("agent", "text");
    turn.dataset.streaming = "true";
    return turn;
  }

  onDone({ text, error }) {
    const turn = this.pendingTurn ?? (text ? this.newAgentTurn() : null);
    if (turn) {
      turn.dataset.streaming = "false";
      turn.dataset.complete = "true";
      if (!turn.querySelector(".clause") && text) this.transcript.addClause(turn, text);
    }
    this.pendingTurn = null;
    this.waiting = false;
    this.events.onBusy(false);
    if (error) this.events.onError({ code: "reply_failed", message: `The agent could not answer: ${error}` });
  }

  /** The reply in progress will not finish: mark what came of it. */
  cut(reason) {
    if (this.pendingTurn) {
      this.pendingTurn.dataset.streaming = "false";
      this.transcript.markInterrupted(this.pendingTurn, Infinity, 0, reason);
    }
    this.pendingTurn = null;
    this.waiting = false;
    this.events.onBusy(false);
  }
}
