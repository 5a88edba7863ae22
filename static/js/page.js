// The agent page: wires the transcript, the text chat and the voice call to the DOM.
// Everything a person sees is also in data attributes (data-state, data-played-ms,
// data-ms, data-error-code), which the browser tests read.

import { TextChat } from "./chat.js";
import { PageConversation } from "./conversation.js";
import { Transcript } from "./transcript.js";
import { VoiceCall } from "./voice.js";

const root = document.querySelector(".chat");
const $ = (selector) => root.querySelector(selector);

const transcript = new Transcript($("#transcript"), { agentName: root.dataset.agentName });
const conversation = new PageConversation(`voiceapp:conversation:${root.dataset.agent}`);

// --- messages for the person ----------------------------------------------------------

const alertBox = $("#alert");
function showError({ code, message }) {
  alertBox.dataset.errorCode = code ?? "error";
  const text = alertBox.querySelector(".alert-text");
  text.textContent = message;
  if (code === "login_required") {
    const link = document.createElement("a");
    link.href = root.dataset.loginUrl;
    link.textContent = "Sign in";
    text.append(" ", link);
  }
  alertBox.hidden = false;
}
function clearError() {
  alertBox.hidden = true;
  delete alertBox.dataset.errorCode;
}
alertBox.querySelector(".alert-close").addEventListener("click", clearError);

// --- voice ------------------------------------------------------------------------------

const callButton = $("#call-button");
const callStatus = $("#call-status");
const latency = $("#latency");
const played = $("#played");
const level = $("#mic-level-bar");

const PHASES = {
  listening: "Listening…",
  thinking: "Thinking…",
  speaking: "Speaking…",
};
const phase = $("#call-phase");

const call = new VoiceCall({
  path: root.dataset.voicePath,
  sig: root.dataset.sig,
  workletUrl: root.dataset.workletUrl,
  conversation,
  transcript,
  events: {
    onState(state, message) {
      callButton.dataset.state = state;
      callStatus.dataset.state = state;
      const inCall = !["idle", "error"].includes(state);
      callButton.querySelector(".label").textContent = inCall ? "End call" : "Start call";
      if (message !== undefined) callStatus.textContent = message;
      setTyping(!inCall);
    },
    onPhase(name) {
      // Who has the floor, from the socket's events; the status line keeps the call's state.
      root.dataset.phase = name ?? "";
      phase.dataset.phase = name ?? "";
      phase.textContent = name ? PHASES[name] : "";
    },
    onError: showError,
    onMetrics(frame) {
      if (frame.voice_to_voice_ms === null || frame.voice_to_voice_ms === undefined) return;
      latency.dataset.ms = String(frame.voice_to_voice_ms);
      latency.textContent = `${frame.voice_to_voice_ms} ms`;
      const parts = [
        ["speech to text", frame.stt_ms],
        ["first word from the model", frame.llm_first_token_ms],
        ["first audio", frame.tts_first_audio_ms],
      ].filter(([, ms]) => ms !== null && ms !== undefined);
      latency.title = parts.map(([name, ms]) => `${name}: ${ms} ms`).join(" · ");
    },
    onPlayed(totalMs) {
      played.dataset.playedMs = String(Math.round(totalMs));
      played.textContent = `${(totalMs / 1000).toFixed(1)} s`;
    },
    onLevel(rms) {
      // Speech sits around 0.05-0.3 RMS; a square root spreads the quiet end out.
      level.style.width = `${Math.min(100, Math.round(Math.sqrt(rms) * 180))}%`;
    },
  },
});

callButton.addEventListener("click", () => {
  if (call.busy) call.stop();
  else {
    clearError();
    call.start();
  }
});

// --- text -----------------------------------------------------------------------------

const composer = $("#composer");
const input = $("#message");
const chatStatus = $("#chat-status");

const chat = new TextChat({
  path: root.dataset.chatPath,
  sig: root.dataset.sig,
  conversation,
  transcript,
  events: {
    onState(state, message) {
      chatStatus.dataset.state = state;
      chatStatus.textContent = message;
    },
    onError: showError,
    onBusy(busy) {
      composer.dataset.busy = String(busy);
    },
  },
});

// In a call the person speaks; typing comes back when the call ends (both go to the
// same conversation, one at a time, so each sees what the other said).
const sendButton = composer.querySelector("button[type=submit]");
const typingHint = input.placeholder;
function setTyping(allowed) {
  input.disabled = !allowed;
  sendButton.disabled = !allowed;
  input.placeholder = allowed ? typingHint : "In a call: speak, or end the call to type.";
}

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  clearError();
  chat.send(text);
  input.value = "";
  input.style.height = "";
});

input.addEventListener("keydown", (event) => {
  // Enter sends; Shift+Enter starts a new line.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    composer.requestSubmit();
  }
});
input.addEventListener("input", () => {
  input.style.height = "";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
});

// --- a new conversation ----------------------------------------------------------------

$("#new-conversation").addEventListener("click", async () => {
  clearError();
  await call.stop();
  chat.stop();
  conversation.forget();
  transcript.clear();
  callStatus.textContent = "Not in a call.";
  input.focus();
});

chat.resumeIfAny();
callButton.disabled = false;
sendButton.disabled = false;
$("#new-conversation").disabled = false;
root.dataset.ready = "true";
