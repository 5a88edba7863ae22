// Playback of the agent's voice: PCM s16le chunks, each prefixed with the 8-letter
// sequencing token, scheduled back to back on one AudioContext with exact start times.
//
// Only chunks stamped with the current token are played; the rest (audio of a reply
// that was interrupted, still in flight) are dropped. How much has been played is read
// from the playback clock, per token (for the server's `played` reports) and per turn
// (for the page). `onIdle` fires when the last scheduled buffer has finished and
// nothing else is scheduled: a gap between chunks does not count, because a chunk is
// only taken off the schedule once the clock has passed its end.

const START_LEAD_S = 0.06; // head room when playback (re)starts, against jitter
const TOKEN_BYTES = 8;
const ascii = new TextDecoder("ascii");

export class Player {
  /**
   * @param {object} options
   * @param {number} options.sampleRate  the rate of the PCM the server sends
   * @param {() => void} options.onIdle  playback has truly drained
   * @param {() => void} [options.onTick]  played figures have moved
   */
  constructor({ sampleRate, onIdle, onTick }) {
    this.sampleRate = sampleRate;
    this.onIdle = onIdle;
    this.onTick = onTick ?? (() => {});
    // Created inside the click that starts the call, so autoplay rules let it run.
    this.ctx = new AudioContext({ sampleRate, latencyHint: "interactive" });
    this.token = null;
    this.nextTime = 0;
    this.scheduled = []; // {source, when, end, ms, token, turn}, in start order
    this.receivedMs = new Map(); // token -> ms of audio accepted
    this.doneMs = new Map(); // token -> ms of audio whose playback has finished
    this.turnDoneMs = new Map(); // turn element -> ms finished
    this.dropped = 0;
    this.idle = true;
  }

  resume() {
    return this.ctx.resume();
  }

  /** The moment on the context's clock that is reaching the speakers now. */
  heardTime() {
    return Math.max(0, this.ctx.currentTime - (this.ctx.outputLatency || 0));
  }

  /** Adopt a new token (`token` frame, `interrupt`): stop and forget what is scheduled. */
  setToken(token) {
    this.tick();
    for (const chunk of this.scheduled) {
      chunk.source.onended = null;
      try {
        chunk.source.stop();
      } catch {
        // not started yet in some engines: nothing to stop
      }
      chunk.source.disconnect();
    }
    this.scheduled = [];
    this.nextTime = 0;
    this.token = token;
    this.becameIdle();
  }

  /**
   * Schedule one `audio` frame's payload; returns the token's audio clock (ms) where
   * this chunk starts, or null when the chunk was dropped as stale.
   */
  enqueue(payload, turn) {
    const token = ascii.decode(payload.subarray(0, TOKEN_BYTES));
    if (token !== this.token) {
      this.dropped += 1;
      return null;
    }
    const samples = Math.floor((payload.byteLength - TOKEN_BYTES) / 2);
    const startMs = this.receivedMs.get(token) ?? 0;
    if (samples === 0) return startMs;
    const buffer = this.ctx.createBuffer(1, samples, this.sampleRate);
    const out = buffer.getChannelData(0);
    const pcm = new DataView(payload.buffer, payload.byteOffset + TOKEN_BYTES, samples * 2);
    for (let i = 0; i < samples; i += 1) out[i] = pcm.getInt16(i * 2, true) / 32768;
    const source = this.ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(this.ctx.destination);
    const when = Math.max(this.nextTime, this.ctx.currentTime + START_LEAD_S);
    source.start(when);
    this.nextTime = when + buffer.duration;
    const ms = buffer.duration * 1000;
    this.scheduled.push({ source, when, end: this.nextTime, ms, token, turn });
    this.receivedMs.set(token, startMs + ms);
    source.onended = () => this.tick();
    this.idle = false;
    return startMs;
  }

  /** Move finished chunks off the schedule; report; fire onIdle once drained. */
  tick() {
    const now = this.heardTime();
    while (this.scheduled.length && this.scheduled[0].end <= now) {
      const chunk = this.scheduled.shift();
      this.doneMs.set(chunk.token, (this.doneMs.get(chunk.token) ?? 0) + chunk.ms);
      if (chunk.turn) {
        this.turnDoneMs.set(chunk.turn, (this.turnDoneMs.get(chunk.turn) ?? 0) + chunk.ms);
      }
    }
    this.onTick();
    if (!this.scheduled.length) this.becameIdle();
  }

  becameIdle() {
    if (this.idle) return;
    this.idle = true;
    this.onIdle();
  }

  /** The part of the chunk playing now that has been heard, in ms, and its chunk. */
  partial() {
    const chunk = this.scheduled[0];
    if (!chunk) return { chunk: null, ms: 0 };
    const ms = Math.min(Math.max(0, (this.heardTime() - chunk.when) * 1000), chunk.ms);
    return { chunk, ms };
  }

  /** Cumulative ms of `token`'s audio played so far. */
  playedMs(token) {
    const { chunk, ms } = this.partial();
    return (this.doneMs.get(token) ?? 0) + (chunk && chunk.token === token ? ms : 0);
  }

  /** Ms of one turn's audio played so far. */
  turnPlayedMs(turn) {
    const { chunk, ms } = this.partial();
    return (this.turnDoneMs.get(turn) ?? 0) + (chunk && chunk.turn === turn ? ms : 0);
  }

  /** Whether any of `turn`'s audio is still scheduled (playing or to come). */
  isScheduled(turn) {
    return this.scheduled.some((chunk) => chunk.turn === turn);
  }

  /** The turn whose audio is reaching the speakers now, if any. */
  playingTurn() {
    const { chunk, ms } = this.partial();
    return chunk && ms > 0 ? chunk.turn : null;
  }

  totalPlayedMs() {
    let total = 0;
    for (const ms of this.doneMs.values()) total += ms;
    return total + this.partial().ms;
  }

  async close() {
    this.onIdle = () => {};
    this.onTick = () => {};
    this.setToken(null);
    await this.ctx.close();
  }
}
