// The room in the middle: its header, notices (welcome, rules to
// acknowledge, a gap), the timeline (messages with author, role, newcomer
// mark, time, edits, tombstones, reactions and reply counts), who is
// typing, and the composer. Updates are batched into one frame, and only
// the messages that changed are drawn again, so a burst stays smooth.

import { el, fill, clock } from "./dom.js";
import { render, visible } from "./text.js";
import { atLeast, FORMER_MEMBER } from "./store.js";

/** Whom imported messages of authors no member was mapped to are from. */
const IMPORTER = "discord-import";

export const EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "🙏", "👀", "📷"];

/** One message's element; `actions` are the app's handlers. */
export function messageNode(room, item, app, { inThread = false } = {}) {
  if (item.kind === "event") return el("div", { class: "event", "data-seq": item.seq }, `${clock(item.ts)} · `, visible(item.text));
  const me = app.me;
  if (app.blocked.has(item.from) && !item.unfolded) {
    // Folded, not hidden: the conversation around it still makes sense.
    return el("article", { class: "msg folded", "data-seq": item.seq, tabindex: "-1", "aria-label": `A message from ${item.from}, whom you blocked` },
      el("span", { class: "meta" }, `${clock(item.ts)} · A message from someone you blocked. `),
      el("button", { type: "button", class: "link", onclick: () => { item.unfolded = true; app.timeline.changed({ seq: item.seq }); } }, "Show"));
  }
  const member = room.members.get(item.from);
  const role = room.roleOf(item.from);
  const mine = item.from === me;
  const canModerate = atLeast(room.role, "moderator");
  const reactions = [...item.reactions.entries()].map(([emoji, r]) => {
    const who = [...r.users].join(", ") + (r.count > r.users.size ? ` and ${r.count - r.users.size} more` : "");
    const pressed = r.users.has(me);
    return el("button", {
      type: "button", "aria-pressed": String(pressed), title: who, "aria-label": `${emoji} ${r.count}: ${who}`,
      onclick: () => app.react(room, item, emoji, !pressed),
    }, `${emoji} ${r.count}`);
  });
  const actions = item.deleted ? [] : [
    el("button", { type: "button", "aria-label": "React", title: "React", onclick: (e) => togglePicker(e, room, item, app) }, "☺"),
    inThread ? null : el("button", { type: "button", "aria-label": `Reply in thread (${item.replies || 0} replies)`, title: "Reply in thread", onclick: () => app.openThread(room, item.seq) }, "↩"),
    mine ? el("button", { type: "button", "aria-label": "Edit", title: "Edit", onclick: () => app.startEdit(room, item) }, "✎") : null,
    mine || canModerate ? el("button", { type: "button", class: "danger", "aria-label": "Delete", title: "Delete", onclick: () => app.deleteMessage(room, item) }, "🗑") : null,
    canModerate ? el("button", { type: "button", "aria-label": "Pin", title: "Pin", onclick: () => app.pinMessage(room, item) }, "📌") : null,
    // A direct conversation has no keepers to report to (block instead),
    // and the owner's messages are above every report.
    mine || room.info?.direct?.length || item.from === room.info?.owner ? null : el("button", { type: "button", "aria-label": "Report to the moderators", title: "Report to the moderators", onclick: () => app.reportMessage(room, item) }, "⚑"),
  ];
  // Brought from Discord: its author and time there. An author no member
  // was mapped to is shown by their old name, never as the importer.
  const imported = item.imported;
  const author = item.from === FORMER_MEMBER ? "A former member" : imported && item.from === IMPORTER ? imported.author : item.from;
  const when = imported ? imported.at : item.ts;
  return el("article", {
    class: `msg${item.mentionsMe ? " mentioned" : ""}${room.found === item.seq ? " found" : ""}`, "data-seq": item.seq, tabindex: "-1",
    "aria-label": `${author} at ${clock(when)}`,
  },
    el("div", {},
      el("span", { class: "who" }, visible(author)),
      imported ? el("span", { class: "role", title: `On Discord: ${imported.author}, ${new Date(imported.at).toLocaleString()}` }, "from Discord") : null,
      role !== "member" ? el("span", { class: "role" }, role) : null,
      member?.title ? el("span", { class: "role" }, visible(member.title)) : null,
      member?.newcomer ? el("span", { class: "newcomer", title: "In their first week here" }, "🌱 new") : null,
      " ",
      el("time", { class: "meta", datetime: new Date(when).toISOString() }, imported ? new Date(when).toLocaleString() : clock(when)),
      item.edited && !item.deleted ? el("span", { class: "meta" }, " · edited") : null,
      item.prompt ? el("span", { class: "meta" }, " · prompt") : null),
    el("div", { class: "actions" }, actions),
    el("div", { class: `body${item.deleted ? " deleted" : ""}` }, item.erased && item.deleted ? "Gone: its author erased their account." : item.deleted ? "This message was deleted." : render(item.text, me)),
    reactions.length || imported?.reactions?.length ? el("div", { class: "reactions" }, reactions,
      (imported?.reactions || []).map((r) => el("span", { class: "chip", title: "Reactions on Discord" }, visible(r.emoji), ` ${r.count}`))) : null,
    !inThread && item.replies ? el("div", { class: "replies" },
      el("button", { type: "button", class: "link", onclick: () => app.openThread(room, item.seq) }, `${item.replies} ${item.replies === 1 ? "reply" : "replies"}`)) : null);
}

function togglePicker(event, room, item, app) {
  const node = event.target.closest(".msg");
  const open = node.querySelector(".picker");
  if (open) { open.remove(); return; }
  const picker = el("div", { class: "picker", role: "group", "aria-label": "Pick a reaction" },
    EMOJI.map((emoji) => el("button", { type: "button", "aria-label": `React ${emoji}`, onclick: () => { picker.remove(); app.react(room, item, emoji, true); } }, emoji)));
  node.append(picker);
  picker.querySelector("button").focus();
}

/** The timeline of the room on screen. */
export class TimelineView {
  constructor(app) {
    this.app = app;
    this.room = null;
    this.list = el("div", { class: "timeline", role: "log", "aria-live": "polite", "aria-label": "Messages", tabindex: "0" });
    this.dirty = new Set();
    this.nodes = new Map(); // seq -> its element in the list
    this.lastSeq = 0;
    this.full = false;
    this.frame = 0;
    this.list.addEventListener("scroll", () => {
      if (this.list.scrollTop < 80 && this.room?.moreOlder && !this.loading) this.loadOlder();
    });
  }

  show(room) {
    this.room = room;
    this.lastSeq = 0;
    this.full = true;
    this.schedule();
  }

  changed(change) {
    if (!change || !this.room) return;
    if (change.all || change.seq === undefined) this.full = true;
    else this.dirty.add(change.seq);
    // A reply changes its root's count; the reply itself is in the thread.
    if (change.root) this.dirty.add(change.root);
    this.schedule();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  nearBottom() {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 120;
  }

  draw() {
    const room = this.room;
    if (!room) return;
    const stick = this.full || this.nearBottom();
    if (this.full) {
      this.nodes = new Map();
      this.lastSeq = 0;
      const nodes = room.main().map((item) => this.node(room, item));
      const older = room.moreOlder ? el("button", { type: "button", class: "older", onclick: () => this.loadOlder() }, "Load older messages") : null;
      fill(this.list, older, nodes.length ? nodes : el("p", { class: "event" }, "No messages yet. Say hello!"));
      this.full = false;
      this.dirty.clear();
    } else {
      // New items are appended together; changed ones are replaced in place.
      const appended = document.createDocumentFragment();
      for (const seq of [...this.dirty].sort((a, b) => a - b)) {
        const item = room.items.get(seq);
        if (!item || (item.kind === "message" && item.thread)) continue;
        const existing = this.nodes.get(seq);
        if (existing) existing.replaceWith(this.node(room, item));
        else if (seq > this.lastSeq) appended.append(this.node(room, item));
        else this.full = true;
      }
      this.dirty.clear();
      if (this.full) { this.draw(); return; }
      if (appended.childNodes.length) {
        this.list.querySelector("p.event:only-child")?.remove();
        this.list.append(appended);
      }
    }
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }

  /** One item's element, remembered by seq for later changes. */
  node(room, item) {
    const node = messageNode(room, item, this.app);
    this.nodes.set(item.seq, node);
    this.lastSeq = Math.max(this.lastSeq || 0, item.seq);
    return node;
  }

  async loadOlder() {
    const room = this.room;
    if (!room || this.loading || !room.moreOlder) return;
    this.loading = true;
    const before = this.list.scrollHeight - this.list.scrollTop;
    try {
      await this.app.loadOlder(room);
      if (room === this.room) {
        this.full = true;
        this.draw();
        this.list.scrollTop = this.list.scrollHeight - before;
      }
    } catch (error) {
      this.app.toast(error.message);
    } finally {
      this.loading = false;
    }
  }
}

/** The composer: Enter sends, Shift+Enter a new line, Up edits your last message, Esc cancels. */
export function composer(app, { placeholder, onSend, label = "Message" }) {
  const input = el("textarea", { rows: 1, placeholder, "aria-label": label, maxlength: 8192 });
  const editing = el("div", { class: "editing", role: "status" });
  const state = { edit: null };
  const send = async () => {
    const text = input.value;
    if (!text.trim()) return;
    const edit = state.edit;
    input.value = "";
    setEdit(null);
    try { await onSend(text, edit); } catch (error) { if (!input.value) input.value = text; app.toast(error.message); }
  };
  const setEdit = (item) => {
    state.edit = item;
    editing.textContent = item ? "Editing your message — Enter saves, Esc cancels" : "";
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
    else if (e.key === "ArrowUp" && !input.value) {
      const last = app.lastOwnMessage();
      if (last) { e.preventDefault(); setEdit(last); input.value = last.text; }
    } else if (e.key === "Escape" && state.edit) { e.preventDefault(); setEdit(null); input.value = ""; }
    else if (e.key.length === 1) app.typing();
  });
  const form = el("form", { class: "composer", onsubmit: (e) => { e.preventDefault(); send(); } },
    input,
    el("button", { type: "submit", class: "primary" }, "Send"));
  const wrap = el("div", {}, editing, form);
  return { node: wrap, input, edit: (item) => { setEdit(item); input.value = item.text; input.focus(); } };
}
