// The agent editor: show only the settings the chosen language model reads, say what the
// model ignores, point each speech box at its provider's suggestions, and play voice
// samples. Everything works without this script; it only hides and suggests.
"use strict";

(() => {
  const NOTES = {
    eliza:
      "ELIZA answers from its script: the model settings are hidden, and the system prompt and knowledge documents are not used.",
    openai: "OpenAI's Responses API: the key is read from the variable named below.",
    openai_compatible: "Any server with OpenAI's chat completions API (Ollama, vLLM, llama.cpp…).",
  };

  function rowOf(element) {
    return element.closest(".form-row") ?? element.closest("div.fieldBox") ?? element.parentElement;
  }

  function applyModel(select) {
    const provider = select.value;
    for (const field of document.querySelectorAll("[data-applies-to]")) {
      const applies = field.dataset.appliesTo.split(" ").includes(provider);
      const row = rowOf(field);
      if (field.dataset.keepShown === "true") {
        // Kept and versioned whatever the model: shown, with a word when it is not read.
        let note = row.querySelector(".unused-note");
        if (!note) {
          note = document.createElement("p");
          note.className = "unused-note";
          note.textContent = "Not used by ELIZA: it answers from its script.";
          field.after(note);
        }
        note.hidden = applies;
        row.dataset.unused = String(!applies);
      } else {
        row.hidden = !applies;
      }
    }
    let note = select.parentElement.querySelector(".model-note");
    if (!note) {
      note = document.createElement("p");
      note.className = "model-note";
      select.after(note);
    }
    note.textContent = NOTES[provider] ?? "";
  }

  function applySpeech(box) {
    const provider = document.getElementById(`id_${box.dataset.providerField}`)?.value ?? "";
    const list = `${box.dataset.listPrefix}${provider}`;
    if (document.getElementById(list)) box.setAttribute("list", list);
    else box.removeAttribute("list");
    const row = rowOf(box);
    for (const hint of row.querySelectorAll(".speech-default")) {
      hint.hidden = hint.dataset.provider !== provider;
    }
    const hear = row.querySelector(".hear-voice");
    if (hear) hear.hidden = provider !== "piper";
  }

  function hear(button) {
    const box = rowOf(button).querySelector("input[data-provider-field]");
    const audio = rowOf(button).querySelector(".voice-sample");
    const url = new URL(button.dataset.url, location.href);
    url.searchParams.set("voice", box.value.trim());
    button.disabled = true;
    button.dataset.state = "loading";
    audio.src = url.href;
    audio
      .play()
      .then(() => {
        button.dataset.state = "playing";
      })
      .catch(() => {
        button.dataset.state = "failed";
      })
      .finally(() => {
        button.disabled = false;
      });
    audio.onended = () => {
      button.dataset.state = "played";
    };
  }

  document.addEventListener("DOMContentLoaded", () => {
    const model = document.getElementById("id_llm_provider");
    if (model) {
      applyModel(model);
      model.addEventListener("change", () => applyModel(model));
    }
    for (const box of document.querySelectorAll("input[data-provider-field]")) {
      applySpeech(box);
      document
        .getElementById(`id_${box.dataset.providerField}`)
        ?.addEventListener("change", () => applySpeech(box));
    }
    for (const button of document.querySelectorAll(".hear-voice")) {
      button.addEventListener("click", () => hear(button));
    }
    document.body.dataset.agentFormReady = "true";
  });
})();
