// The conversation on screen: one <li class="turn user|agent"> per turn, in order, for
// typed and spoken turns alike (data-channel tells which). Tests and assistive
// technology read the same markup: the list is an ARIA log.

export class Transcript {
  /**
   * @param {HTMLOListElement} list
   * @param {{agentName: string}} options
   */
  constructor(list, { agentName }) {
    this.list = list;
    this.agentName = agentName;
  }

  /**
   * A new turn; returns its element. `channel` is "text" or "voice". `before`: put it
   * ahead of that element instead of at the end.
   */
  addTurn(role, channel, text = "", before = null) {
    this.list.querySelector(".transcript-empty")?.remove();
    const turn = document.createElement("li");
    turn.className = `turn ${role}`;
    turn.dataset.channel = channel;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You" : this.agentName;
    const body = document.createElement("p");
    body.className = "text";
    turn.append(who, body);
    if (channel === "voice") {
      const tag = document.createElement("span");
      tag.className = "channel-tag";
      tag.textContent = "voice";
      who.append(" ", tag);
    }
    if (text) body.textContent = text;
    if (before) this.list.insertBefore(turn, before);
    else this.list.append(turn);
    this.scroll();
    return turn;
  }

  /** Append one clause of an agent's reply; `startMs` is where its audio begins. */
  addClause(turn, text, startMs = null) {
    const body = turn.querySelector(".text");
    if (body.childNodes.length) body.append(" ");
    const clause = document.createElement("span");
    clause.className = "clause";
    clause.textContent = text;
    if (startMs !== null) clause.dataset.startMs = String(startMs);
    body.append(clause);
    this.scroll();
    return clause;
  }

  /** A line between parts of the conversation ("Call started"). */
  addNote(text, kind = "note") {
    this.list.querySelector(".transcript-empty")?.remove();
    const note = document.createElement("li");
    note.className = `transcript-note ${kind}`;
    note.textContent = text;
    this.list.append(note);
    this.scroll();
    return note;
  }

  /**
   * Mark an agent turn as cut short. `heardUntilMs` is how much of its audio (on the
   * token's clock that clauses' data-start-ms use) was played; `endMs` is where the
   * audio received for it ends. Words past that point are struck through, counted the
   * way the server counts what the listener heard: whole clauses, then the played
   * share of the clause that was cut.
   */
  markInterrupted(turn, heardUntilMs, endMs, reason = "interrupted") {
    if (turn.classList.contains("interrupted")) return;
    turn.classList.add("interrupted");
    turn.dataset.interrupted = reason;
    const clauses = [...turn.querySelectorAll(".clause")];
    clauses.forEach((clause, i) => {
      // Typed replies have no audio: everything that arrived was shown, so was "heard".
      if (clause.dataset.startMs === undefined) return;
      const start = Number(clause.dataset.startMs);
      const next = clauses[i + 1]?.dataset.startMs;
      const end = next !== undefined ? Number(next) : Math.max(endMs, start);
      const words = clause.textContent.split(/\s+/).filter(Boolean);
      let heardWords = words.length;
      if (heardUntilMs <= start) heardWords = 0;
      else if (heardUntilMs < end) {
        heardWords = Math.floor((words.length * (heardUntilMs - start)) / (end - start));
      }
      if (heardWords >= words.length) return;
      clause.textContent = words.slice(0, heardWords).join(" ");
      const unheard = document.createElement("s");
      unheard.className = "unheard";
      unheard.textContent = words.slice(heardWords).join(" ");
      const hint = document.createElement("span");
      hint.className = "visually-hidden";
      hint.textContent = " (not heard)";
      if (heardWords) clause.append(" ");
      clause.append(unheard, hint);
    });
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = reason === "interrupted" ? "interrupted" : reason;
    turn.querySelector(".who").append(" ", badge);
  }

  /** Empty the list (a new conversation), back to its first hint. */
  clear() {
    const hint = document.createElement("li");
    hint.className = "transcript-empty";
    hint.textContent = "Say hello: type a message below, or start a call.";
    this.list.replaceChildren(hint);
  }

  scroll() {
    this.list.scrollTop = this.list.scrollHeight;
  }
}
