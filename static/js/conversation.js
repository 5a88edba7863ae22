// This tab's conversation with the agent. The text chat and the voice call share it: a
// call started after typing continues the same conversation (the server resumes it by
// id on either socket), and a reload shows both kinds of turn. Kept in sessionStorage,
// so it lasts as long as the tab.

export class PageConversation {
  /** @param {string} storageKey */
  constructor(storageKey) {
    this.storageKey = storageKey;
    this.id = sessionStorage.getItem(storageKey);
    this.shown = null; // the conversation whose turns are on screen
  }

  /** The server named the conversation (a `session` frame on either socket). */
  set(id) {
    this.id = id;
    sessionStorage.setItem(this.storageKey, id);
  }

  /** Start afresh: the next message or call opens a new conversation. */
  forget() {
    this.id = null;
    this.shown = null;
    sessionStorage.removeItem(this.storageKey);
  }
}
