// A voice call over the Echo-protocol audio socket (binary msgpack frames both ways).
//
// Microphone: getUserMedia with echo cancellation, noise suppression and auto gain, into
// an AudioContext at 16 kHz, through the `mic-capture` AudioWorklet, which posts 100 ms
// Float32 chunks; each goes out as {type: "audio", audio: <bin>}.
// Speaker: `audio` frames go to the token-keyed Player (playback.js). The page reports
// `played` (cumulative ms per token) every 250 ms while audio plays, and `state:
// waiting` once per agent turn, only when the turn is over on the server (its `metrics`
// frame came) and the last scheduled buffer has finished.
// A dropped socket reconnects by itself and resumes the same conversation. The
// conversation is the page's (conversation.js): a call after typing continues it.
// While live, the call is in one phase at a time, from the socket's events: listening
// (the person's turn), thinking (their words are in; no reply yet), speaking (the
// agent's reply is playing).

import { decode, Encoder } from "@msgpack/msgpack";

import { Player } from "./playback.js";
import { ReconnectingSocket, socketUrl } from "./socket.js";

const OUTPUT_FORMAT = "pcm_44100";
const OUTPUT_RATE = 44_100;
const CAPTURE_RATE = 16_000;
const CHUNK_SAMPLES = 1600; // 100 ms at 16 kHz
const REPORT_EVERY_MS = 250;

const encoder = new Encoder({ ignoreUndefined: true });

/** What to tell the person when getUserMedia fails, by the DOMException's name. */
function microphoneError(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return {
        code: "microphone_denied",
        message:
          "Microphone access was denied. Allow the microphone for this site in your browser's settings, then start the call again.",
      };
    case "NotFoundError":
    case "OverconstrainedError":
      return { code: "microphone_missing", message: "No microphone was found. Connect one and try again." };
    case "NotReadableError":
    case "AbortError":
      return {
        code: "microphone_busy",
        message: "The microphone could not be opened; another application may be using it.",
      };
    default:
      return { code: "microphone_failed", message: `The microphone could not be started (${error?.name ?? error}).` };
  }
}

export class VoiceCall {
  /**
   * @param {object} options
   * @param {string} options.path  the socket's path, /agents/<slug>/conversation
   * @param {string} options.sig  a signed link's token, or ""
   * @param {string} options.workletUrl
   * @param {import("./conversation.js").PageConversation} options.conversation
   * @param {import("./transcript.js").Transcript} options.transcript
   * @param {object} options.events  onState(state, message), onPhase(phase),
   *   onError({code, message}), onMetrics(frame), onPlayed(totalMs), onLevel(rms)
   */
  constructor({ path, sig, workletUrl, conversation, transcript, events }) {
    this.path = path;
    this.sig = sig;
    this.workletUrl = workletUrl;
    this.conversation = conversation;
    this.transcript = transcript;
    this.events = events;
    this.state = "idle";
    this.attempt = 0; // which start() is current: an older one still awaiting gives up
    this.reset();
  }

  reset() {
    this.player = null;
    this.capture = null;
    this.stream = null;
    this.micNode = null;
    this.socket = null;
    this.reportTimer = null;
    this.joined = false; // a `session` came on this call (a reconnect then resumes)
    this.phase = null;
    this.token = null;
    this.openSent = false;
    this.currentTurn = null; // the agent turn the server is producing now
    this.voicedTurns = new Set(); // agent turns with audio not yet fully played
    this.turnAudio = new Map(); // agent turn -> {token, endMs}
    this.turnOpen = false; // the server is working on a turn (no `metrics` yet)
    this.needWaiting = false; // the server thinks we are playing: owe it `state: waiting`
    this.reported = new Map(); // token -> ms last sent in `played`
  }

  get busy() {
    return !["idle", "error"].includes(this.state);
  }

  setState(state, message) {
    this.state = state;
    this.events.onState(state, message);
    if (state !== "live") this.setPhase(null);
  }

  /** listening | thinking | speaking while live; null otherwise. */
  setPhase(phase) {
    if (phase === this.phase) return;
    this.phase = phase;
    this.events.onPhase?.(phase);
  }

  /** Start a call. Call from the click handler: the audio contexts need the gesture. */
  async start() {
    if (this.busy) return;
    this.reset();
    const attempt = ++this.attempt;
    const current = () => attempt === this.attempt && this.state === "starting";
    this.setState("starting", "Asking for the microphone…");
    this.player = new Player({
      sampleRate: OUTPUT_RATE,
      onIdle: () => {
        this.maybeSendWaiting();
        this.settlePhase();
      },
    });
    this.player.resume();
    this.capture = new AudioContext({ sampleRate: CAPTURE_RATE });
    if (!navigator.mediaDevices?.getUserMedia) {
      await this.fail({
        code: "microphone_unavailable",
        message: "This browser offers no microphone here (the page needs https or localhost).",
      });
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: 1,
          echoCancellation: true,
          noiseSuppression: true,
          autoGainControl: true,
        },
        video: false,
      });
    } catch (error) {
      if (current()) await this.fail(microphoneError(error));
      return;
    }
    if (!current()) {
      // Ended while the permission prompt was up.
      stream.getTracks().forEach((track) => track.stop());
      return;
    }
    this.stream = stream;
    try {
      await this.capture.audioWorklet.addModule(this.workletUrl);
    } catch (error) {
      if (current()) await this.fail({ code: "audio_failed", message: `Audio processing could not start: ${error.message}` });
      return;
    }
    if (!current()) return;
    const source = this.capture.createMediaStreamSource(stream);
    this.micNode = new AudioWorkletNode(this.capture, "mic-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      channelCount: 1,
      channelCountMode: "explicit",
      channelInterpretation: "speakers",
      processorOptions: { chunkSamples: CHUNK_SAMPLES },
    });
    this.micNode.port.onmessage = (event) => this.onMicChunk(event.data);
    // The node writes nothing to its output; connecting it keeps the graph pulling it.
    source.connect(this.micNode).connect(this.capture.destination);
    stream.getAudioTracks()[0]?.addEventListener("ended", () => {
      this.fail({ code: "microphone_lost", message: "The microphone was disconnected." });
    });

    this.transcript.addNote("Call started");
    this.socket = new ReconnectingSocket({
      url: () => socketUrl(this.path, { sig: this.sig }),
      binary: true,
      onOpen: () => this.sendOpen(),
      onMessage: (data) => this.onFrame(data),
      onState: (state, detail) => this.onSocketState(state, detail),
    });
    this.socket.start();
    this.reportTimer = setInterval(() => this.report(), REPORT_EVERY_MS);
  }

  /** End the call (the person pressed the button). */
  async stop() {
    if (!this.busy) return;
    this.attempt += 1;
    const wasLive = this.socket !== null;
    this.send({ type: "close" });
    this.setState("idle", "Call ended.");
    await this.teardown("call ended");
    if (wasLive) this.transcript.addNote("Call ended");
  }

  async fail({ code, message }) {
    if (this.state === "error") return;
    // The status line says what happened to the call; the alert says why.
    this.setState("error", this.joined ? "The call ended." : "The call did not start.");
    this.events.onError({ code, message });
    const started = this.socket !== null;
    await this.teardown("connection lost");
    if (started) this.transcript.addNote("Call failed", "note failed");
  }

  async teardown(reason) {
    clearInterval(this.reportTimer);
    this.reportTimer = null;
    if (this.player) this.cutPlaying(reason);
    this.socket?.stop();
    this.socket = null;
    if (this.micNode) {
      this.micNode.port.postMessage("stop");
      this.micNode.port.onmessage = null;
      this.micNode.disconnect();
    }
    this.stream?.getTracks().forEach((track) => track.stop());
    const closing = [];
    if (this.capture && this.capture.state !== "closed") closing.push(this.capture.close());
    if (this.player) {
      this.report();
      closing.push(this.player.close());
    }
    this.micNode = null;
    this.stream = null;
    this.capture = null;
    this.player = null;
    this.events.onLevel(0);
    await Promise.allSettled(closing);
  }

  send(message) {
    return this.socket?.send(encoder.encode(message)) ?? false;
  }

  sendOpen() {
    // reports_played: this page reports playback, so the server never guesses it from
    // elapsed time (it would credit words before any were played).
    const open = { type: "open", format: OUTPUT_FORMAT, reports_played: true };
    if (this.conversation.id) open.conversation = this.conversation.id;
    this.openSent = this.send(open);
  }

  onSocketState(state, detail) {
    if (state === "connecting") this.setState("connecting", "Connecting…");
    else if (state === "reconnecting") {
      this.openSent = false;
      // What was playing is gone with the socket; the server keeps the conversation.
      this.cutPlaying("connection lost");
      this.player?.setToken(null);
      this.turnOpen = false;
      this.needWaiting = false;
      this.setState("reconnecting", "Connection lost. Reconnecting…");
    } else if (state === "failed") this.fail(detail);
  }

  onMicChunk({ samples, level }) {
    this.events.onLevel(level);
    if (!this.openSent) return;
    // Float32Array in the platform's byte order: little-endian on every browser platform.
    this.send({ type: "audio", audio: new Uint8Array(samples.buffer) });
  }

  onFrame(data) {
    let frame;
    try {
      frame = decode(new Uint8Array(data));
    } catch (error) {
      this.events.onError({ code: "bad_frame", message: `Unreadable frame from the server: ${error.message}` });
      return;
    }
    switch (frame.type) {
      case "token":
        this.token = frame.token;
        this.player.setToken(frame.token);
        break;
      case "session": {
        const again = this.joined;
        this.joined = true;
        // The call's turns go on screen under whatever the page already shows of it.
        this.conversation.set(frame.conversation);
        this.conversation.shown = frame.conversation;
        this.setState(
          "live",
          again ? "Reconnected: the conversation goes on." : "In a call. Speak when you're ready.",
        );
        this.setPhase(this.turnOpen ? "speaking" : "listening");
        break;
      }
      case "audio":
        this.onAudio(frame.audio);
        break;
      case "interrupt":
        this.onInterrupt(frame.token);
        break;
      case "transcript":
        this.currentTurn = null;
        this.turnOpen = true;
        this.transcript.addTurn(frame.role === "user" ? "user" : "agent", "voice", frame.text);
        if (frame.role === "user") this.setPhase("thinking");
        break;
      case "reply":
        this.onReply(frame);
        break;
      case "metrics":
        if (this.currentTurn) this.currentTurn.dataset.complete = "true";
        this.currentTurn = null;
        this.turnOpen = false;
        this.events.onMetrics(frame);
        this.maybeSendWaiting();
        this.settlePhase();
        break;
      case "error":
        // Before `session` the call could not start (the server says why); once live,
        // the server carries on after an error frame, and so does the call.
        if (this.state === "live") this.events.onError({ code: frame.code, message: frame.message });
        else this.fail({ code: frame.code, message: `The call could not start: ${frame.message}` });
        break;
      default:
        break; // newer servers may send more; nothing to do with it here
    }
  }

  agentTurn() {
    if (!this.currentTurn) {
      this.currentTurn = this.transcript.addTurn("agent", "voice");
      this.currentTurn.dataset.token = this.token;
      this.currentTurn.dataset.playedMs = "0";
    }
    return this.currentTurn;
  }

  onReply({ text, token }) {
    if (token !== this.token) return; // a clause of an interrupted reply, still in flight
    const turn = this.agentTurn();
    this.transcript.addClause(turn, text, this.player.receivedMs.get(token) ?? 0);
    this.turnOpen = true;
    this.needWaiting = true;
    this.setPhase("speaking");
  }

  onAudio(payload) {
    if (!(payload instanceof Uint8Array) || payload.byteLength < 8) return;
    const token = this.token;
    // Audio always follows its clause's `reply`; a turn is made here only if one was lost.
    const turn = this.currentTurn ?? this.agentTurn();
    const startMs = this.player.enqueue(payload, turn);
    if (startMs === null) return; // stale token: dropped
    this.turnOpen = true;
    this.needWaiting = true;
    this.voicedTurns.add(turn);
    const audio = this.turnAudio.get(turn) ?? { token, startMs };
    audio.endMs = this.player.receivedMs.get(token);
    this.turnAudio.set(turn, audio);
    turn.dataset.audioMs = String(Math.round(audio.endMs - audio.startMs));
  }

  onInterrupt(newToken) {
    const old = this.token;
    if (old && this.player) {
      // Tell the server exactly how much was heard before the queue is dropped.
      const heard = this.player.playedMs(old);
      this.send({ type: "played", token: old, ms: Math.round(heard) });
      this.reported.set(old, heard);
      this.cutPlaying("interrupted");
    }
    // The person is talking: a new turn is on its way, and the server has stopped
    // counting on our playback, so no `state: waiting` is owed. Settled before the
    // player drops its queue, because dropping it fires onIdle at once.
    this.turnOpen = true;
    this.needWaiting = false;
    this.token = newToken;
    this.player?.setToken(newToken);
    this.setPhase("listening");
  }

  /** Once the reply has finished on the server and played here, it is the person's turn. */
  settlePhase() {
    if (this.state === "live" && !this.turnOpen && (this.player?.idle ?? true)) {
      this.setPhase("listening");
    }
  }

  /** Mark every agent turn whose audio has not finished playing as cut short. */
  cutPlaying(reason) {
    for (const turn of this.voicedTurns) {
      const audio = this.turnAudio.get(turn);
      if (this.player.playedMs(audio.token) < audio.endMs - 1) this.markCut(turn, reason);
    }
    // A turn whose text came but none of its audio yet.
    if (this.currentTurn && !this.turnAudio.has(this.currentTurn)) {
      this.markCut(this.currentTurn, reason);
    }
    this.currentTurn = null;
  }

  markCut(turn, reason) {
    const audio = this.turnAudio.get(turn);
    const heard = audio && this.player ? this.player.playedMs(audio.token) : 0;
    this.transcript.markInterrupted(turn, heard, audio?.endMs ?? 0, reason);
    turn.dataset.playing = "false"; // it is not speaking any more: no ring
    turn.dataset.playedMs = String(Math.round(this.player?.turnPlayedMs(turn) ?? 0));
    this.voicedTurns.delete(turn);
  }

  maybeSendWaiting() {
    if (!this.player || !this.player.idle || this.turnOpen || !this.needWaiting) return;
    this.report();
    if (this.send({ type: "state", state: "waiting" })) this.needWaiting = false;
  }

  /** Periodic: played reports to the server, played figures on the page. */
  report() {
    const player = this.player;
    if (!player) return;
    player.tick();
    if (this.token) {
      const ms = player.playedMs(this.token);
      if (ms - (this.reported.get(this.token) ?? 0) >= 1) {
        if (this.send({ type: "played", token: this.token, ms: Math.round(ms) })) {
          this.reported.set(this.token, ms);
        }
      }
    }
    const playing = player.playingTurn();
    for (const turn of this.voicedTurns) {
      turn.dataset.playedMs = String(Math.round(player.turnPlayedMs(turn)));
      turn.dataset.playing = String(turn === playing);
      if (turn.dataset.complete === "true" && !player.isScheduled(turn)) {
        turn.dataset.playing = "false";
        turn.dataset.audio = "played";
        this.voicedTurns.delete(turn);
      }
    }
    this.events.onPlayed(player.totalPlayedMs());
  }
}
