// The panel at the right (a screen of its own on a phone): members, pinned
// notes, a thread, mentions, search, and the tools of welcomers and moderators — the join
// queue, reports, held posts, invites, settings, prompts, the log, and the
// room's health drawn as a chart; the form a member reports a message with.

import { el, fill, svg, clock, span } from "./dom.js";
import { render, visible } from "./text.js";
import { atLeast, ROLES, CATEGORIES, lockedNow, lockUntil } from "./store.js";
import { messageNode, composer } from "./timeline.js";
import { download } from "./signin.js";

const DURATIONS = [["10 minutes", 600], ["1 hour", 3600], ["1 day", 86400], ["1 week", 604800]];

export function drawPanel(node, app, room) {
  const panel = app.panel;
  const close = el("button", { type: "button", "aria-label": "Close panel", onclick: () => app.setPanel(null) }, "✕");
  const title = { members: "Members", pins: "Pinned notes", thread: "Thread", moderate: "Moderation", mentions: "Mentions", search: "Search", notify: "Notifications", report: "Report a message" }[panel.kind];
  const body = {
    report: () => (panel.nodes ??= reportForm(app, room, panel.seq)),
    mentions: () => mentions(app),
    notify: () => (panel.nodes ??= notifications(app, room)),
    // Kept across redraws (events redraw the panel): the query and its results stay.
    search: () => (panel.nodes ??= search(app, room)),
    members: () => members(app, room),
    pins: () => pins(app, room),
    thread: () => thread(app, room, panel.root),
    moderate: () => moderate(app, room, panel),
  }[panel.kind]();
  fill(node, el("header", {}, el("h2", { id: "panel-title" }, title), close), body);
  node.setAttribute("aria-labelledby", "panel-title");
}

/** The form a member reports someone's message with: why, and a note for
 * the keepers. Kept across redraws, so what is typed stays. */
function reportForm(app, room, seq) {
  const item = room.message(seq);
  const category = el("select", { id: "report-category" }, Object.entries(CATEGORIES).map(([value, label]) => el("option", { value }, label)));
  const note = el("textarea", { id: "report-note", rows: 3, maxlength: 500, placeholder: "Anything the moderators should know (optional)" });
  const status = el("p", { role: "status" });
  const form = el("form", { onsubmit: async (e) => {
    e.preventDefault();
    try {
      await app.conn.request("report", { room: room.name, seq, category: category.value, ...(note.value.trim() ? { note: note.value.trim() } : {}) });
      fill(status, "Thank you. The room's moderators have your report; the person you reported is not told who sent it.");
      form.querySelector("button[type=submit]").disabled = true;
    } catch (error) { fill(status, el("span", { class: "error" }, error.message)); }
  } },
  item ? el("blockquote", { class: "pin text" }, el("strong", {}, visible(item.from)), " ", render(item.text, app.me)) : null,
  el("label", { for: "report-category" }, "What is wrong with it?"), category,
  el("label", { for: "report-note" }, "Note"), note,
  el("div", { class: "row" }, el("button", { type: "submit", class: "primary" }, "Send report")),
  status);
  return form;
}

/** Notifications while away, on this device, and what each room tells. */
function notifications(app, room) {
  const status = el("p", { role: "status" }, "Checking this device…");
  const withText = el("input", { type: "checkbox", id: "push-text" });
  const actions = el("div", { class: "row" });
  const draw = async () => {
    let on = false;
    try { on = !!(await app.pushSubscription()); } catch { /* shown as off */ }
    status.textContent = on
      ? "This device shows a notification when you are away and someone mentions you, writes to you directly, or is waiting for you."
      : "Notifications are off on this device.";
    fill(actions, on
      ? el("button", { type: "button", onclick: async () => { await app.disablePush(); draw(); } }, "Turn off on this device")
      : el("button", { type: "button", class: "primary", onclick: async () => {
        try { await app.enablePush(withText.checked); } catch (error) { app.toast(error.message); }
        draw();
      } }, "Turn on on this device"));
  };
  draw();
  const levels = [["everything", "Every message"], ["mentions", "Mentions, replies and waiting requests"], ["nothing", "Nothing"]];
  const direct = !!(room?.info?.direct?.length);
  const level = room ? el("select", { id: "push-level", disabled: true, onchange: () => app.setPushLevel(room, level.value).catch((e) => app.toast(e.message)) },
    levels.map(([value, label]) => el("option", { value }, label))) : null;
  // As the member set it, on whichever device.
  if (room) app.pushLevel(room).then((chosen) => { level.value = chosen; level.disabled = false; }, (e) => app.toast(e.message));
  return [
    status,
    el("label", {}, withText, " Show the message's text in notifications (turn on again to change it)"),
    actions,
    room ? [el("label", { for: "push-level" }, `While you are away, tell me about ${direct ? "this conversation" : `#${room.name}`}:`), level] : null,
  ];
}

/** Messages that mentioned the member, in every room, newest first. */
function mentions(app) {
  const list = el("ul", { "aria-label": "Mentions" }, el("li", { class: "hint" }, "Loading…"));
  const more = el("div", { class: "row" });
  const load = async (before) => {
    try {
      const page = await app.conn.request("mentions", before ? { before } : {});
      if (!before) list.replaceChildren();
      if (!page.mentions.length && !before) list.append(el("li", { class: "hint" }, "Nobody has mentioned you yet."));
      for (const m of page.mentions) {
        list.append(el("li", {},
          el("div", {}, el("strong", {}, visible(m.from)), el("span", { class: "hint" }, ` in #${m.room} · ${clock(m.ts)}${m.read ? "" : " · unread"}`)),
          el("div", { class: "pin text" }, render(m.text, app.me)),
          el("div", { class: "row" }, el("button", { type: "button", onclick: () => app.openMessage(m) }, m.thread ? "Open the thread" : "Show the message"))));
      }
      fill(more, page.next ? el("button", { type: "button", onclick: () => load(page.next) }, "Older mentions") : null);
    } catch (error) { fill(list, el("li", { class: "error" }, error.message)); }
  };
  load();
  return [list, more];
}

/** Messages containing a text, in the member's rooms or the open one,
 * newest first; the matches marked. A page may come back short (the server
 * looks at a bounded share of messages per page): "Search further" asks on. */
function search(app, room) {
  const input = el("input", { type: "search", name: "query", maxlength: 200, required: true, placeholder: "Words, part of a word, 写真…", "aria-label": "Search for" });
  const where = el("select", { name: "where", "aria-label": "Where" },
    el("option", { value: "" }, "In all my rooms"),
    room ? el("option", { value: room.name }, `In #${room.name}`) : null);
  const list = el("ul", { "aria-label": "Search results", "aria-live": "polite" });
  const more = el("div", { class: "row" });
  let asked = null;
  const load = async (args, before) => {
    try {
      const page = await app.conn.request("search", before ? { ...args, before } : args);
      if (args !== asked) return;
      if (!before) list.replaceChildren();
      for (const r of page.results) {
        const text = r.parts.map((part, n) => n % 2 ? el("mark", {}, render(part, app.me)) : render(part, app.me));
        list.append(el("li", {},
          el("div", {}, el("strong", {}, visible(r.from)), el("span", { class: "hint" }, ` in #${r.room} · ${clock(r.ts)}`)),
          el("div", { class: "pin text" }, text),
          el("div", { class: "row" }, el("button", { type: "button", onclick: () => app.openMessage(r) }, r.thread ? "Open the thread" : "Show the message"))));
      }
      const none = !list.querySelector("li:not(.hint)");
      if (none && !page.next) fill(list, el("li", { class: "hint" }, "Nothing found."));
      else if (none) fill(list, el("li", { class: "hint" }, "Nothing among the newest messages yet."));
      fill(more, page.next ? el("button", { type: "button", onclick: () => load(args, page.next) }, none ? "Search further back" : "Older results") : null);
    } catch (error) { fill(list, el("li", { class: "error" }, error.message)); fill(more); }
  };
  const form = el("form", { class: "search", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const query = input.value.trim();
    if (!query) return;
    asked = where.value ? { query, room: where.value } : { query };
    fill(list, el("li", { class: "hint" }, "Searching…"));
    fill(more);
    load(asked);
  } }, input, el("div", { class: "row" }, where, el("button", { type: "submit" }, "Search")));
  queueMicrotask(() => input.focus());
  return [form, list, more];
}

function members(app, room) {
  const list = [...room.members.values()];
  const canAct = (m) => ROLES.indexOf(room.role) > ROLES.indexOf(m.role) && m.user !== app.me && atLeast(room.role, "moderator");
  return el("ul", {}, list.map((m) => el("li", {},
    el("div", {},
      el("span", { class: `dot${room.online.has(m.user) ? " on" : ""}`, title: room.online.has(m.user) ? "online" : "away", "aria-label": room.online.has(m.user) ? "online" : "away", role: "img" }),
      el("strong", {}, visible(m.user)), " ",
      el("span", { class: "hint" }, m.role + (m.role_expires_at ? ` for ${span(m.role_expires_at - Date.now())}` : "")),
      m.title ? el("span", { class: "hint" }, ` · ${visible(m.title)}`) : null,
      m.newcomer ? el("span", { class: "hint" }, " · 🌱 new") : null,
      m.muted_until && m.muted_until > Date.now() ? el("span", { class: "hint" }, ` · muted for ${span(m.muted_until - Date.now())}`) : null),
    m.user !== app.me ? personActions(app, m.user) : [warningsOf(app, room, m.user, "My warnings"),
      el("div", { class: "row" }, el("button", { type: "button", onclick: () => download("/export/me.json", `hearth-${app.me}.json`).catch((e) => app.toast(e.message)) }, "Download my data")),
      eraseForm(app)],
    canAct(m) ? memberActions(app, room, m) : null)));
}

/**
 * Erasing one's own account, behind a typed confirmation. Kept on `app`: the
 * members panel is drawn again on room events, and a half-typed name stays.
 */
function eraseForm(app) {
  if (app.eraseForm) return app.eraseForm;
  const name = el("input", { id: "erase-confirm", autocomplete: "off", spellcheck: "false" });
  const status = el("p", { class: "hint", role: "status" });
  const form = el("form", { class: "erase", onsubmit: async (e) => {
    e.preventDefault();
    if (name.value.trim() !== app.me) { status.textContent = `Type ${app.me} to confirm.`; return; }
    status.textContent = "Erasing… this can take a moment.";
    try {
      const done = await app.conn.request("erase_account", { confirm: app.me });
      status.textContent = `Erased: ${done.messages} message(s) in ${done.rooms} room(s) are gone. This page will sign out.`;
    } catch (error) { status.textContent = error.message; }
  } },
  el("p", {}, "Every message you wrote, in every room, is removed for good; your reactions, read state and devices go, and your name can never sign in again. Download your data first if you want to keep it."),
  el("label", { for: "erase-confirm" }, `Type your name (${app.me}) to confirm`), name,
  el("div", { class: "row" }, el("button", { type: "submit", class: "danger" }, "Erase my account")), status);
  app.eraseForm = el("details", {}, el("summary", {}, "Erase my account…"), form);
  return app.eraseForm;
}

/** A member's live warnings, loaded when opened; moderators may lift them. */
function warningsOf(app, room, user, label) {
  const list = el("ul", { "aria-label": `Warnings of ${user}` });
  const load = async () => {
    fill(list, el("li", { class: "hint" }, "Loading…"));
    try {
      const answer = await app.conn.request("warnings", { room: room.name, ...(user === app.me ? {} : { user }) });
      const limit = answer.warn_limit && answer.warn_action ? el("li", { class: "hint" }, `At ${answer.warn_limit} warnings the room ${{ mute: "mutes", kick: "removes", ban: "bans" }[answer.warn_action] || answer.warn_action} the member.`) : null;
      fill(list, answer.warnings.length ? answer.warnings.map((w) => el("li", {},
        el("div", {}, visible(w.reason)),
        el("div", { class: "hint" }, `by ${w.by}, ${clock(w.at)}${w.until ? ` · counts until ${new Date(w.until).toLocaleDateString()}` : ""}`),
        user !== app.me && atLeast(room.role, "moderator") ? el("button", { type: "button", onclick: async () => { await app.act("unwarn", { room: room.name, user, warning: w.warning }); load(); } }, "Lift this warning") : null)) : el("li", { class: "hint" }, "No warnings."), limit);
    } catch (error) { fill(list, el("li", { class: "error" }, error.message)); }
  };
  return el("details", { ontoggle: (e) => { if (e.target.open) load(); } }, el("summary", {}, label), list);
}

/** What any member may do about another: write to them, block them. */
function personActions(app, user) {
  const blocked = app.blocked.has(user);
  return el("div", { class: "row" },
    blocked ? null : el("button", { type: "button", "aria-label": `Message ${user} directly`, onclick: () => app.startDirect([user]) }, "✉ Message"),
    el("button", { type: "button", "aria-label": `${blocked ? "Unblock" : "Block"} ${user}`, onclick: () => app.block(user, !blocked) }, blocked ? "Unblock" : "Block"));
}

function memberActions(app, room, m) {
  const reason = el("input", { placeholder: "reason (optional)", "aria-label": `Reason for acting on ${m.user}` });
  const duration = el("select", { "aria-label": "For how long" }, DURATIONS.map(([label, secs]) => el("option", { value: secs }, label)));
  const role = el("select", { "aria-label": `Role for ${m.user}` },
    ROLES.filter((r) => r !== "owner" && (r !== "moderator" || room.role === "owner")).map((r) => el("option", { value: r, selected: r === m.role }, r)));
  const roleFor = el("select", { "aria-label": "Role for how long" }, el("option", { value: "" }, "for good"), DURATIONS.map(([label, secs]) => el("option", { value: secs }, `for ${label}`)));
  const act = (op, args) => app.act(op, { room: room.name, user: m.user, ...args });
  return el("details", {},
    el("summary", {}, `Act on ${m.user}`),
    reason,
    el("div", { class: "row" }, duration,
      el("button", { type: "button", onclick: () => act("mute", { duration_secs: Number(duration.value), reason: reason.value }) }, "Mute"),
      m.muted_until ? el("button", { type: "button", onclick: () => act("unmute", {}) }, "Unmute") : null),
    el("div", { class: "row" },
      el("button", { type: "button", onclick: () => reason.value.trim() ? act("warn", { reason: reason.value.trim() }) : app.toast("A warning needs a reason: write it above.") }, "Warn")),
    warningsOf(app, room, m.user, `Warnings of ${m.user}`),
    el("div", { class: "row" },
      el("button", { type: "button", class: "danger", onclick: () => act("kick", { reason: reason.value }) }, "Remove"),
      el("button", { type: "button", class: "danger", onclick: () => act("ban", { reason: reason.value, duration_secs: Number(duration.value) }) }, "Ban for that long"),
      el("button", { type: "button", class: "danger", onclick: () => act("ban", { reason: reason.value }) }, "Ban")),
    el("div", { class: "row" }, role, roleFor,
      el("button", { type: "button", onclick: () => act("set_role", { role: role.value, ...(roleFor.value ? { expires_at: Date.now() + Number(roleFor.value) * 1000 } : {}) }) }, "Set role")));
}

function pins(app, room) {
  const rulesPin = room.pins.find((p) => (p.title || "").toLowerCase() === "rules");
  const items = room.pins.map((p) => el("li", { class: "pin" },
    el("h3", {}, visible(p.title || "Note"), p.version > 1 ? el("span", { class: "hint" }, ` · version ${p.version}`) : null),
    el("div", { class: "text" }, p.deleted ? "(deleted)" : render(p.text, app.me)),
    el("div", { class: "hint" }, `by ${p.by}, ${clock(p.at)}`),
    atLeast(room.role, "moderator") ? el("div", { class: "row" },
      el("button", { type: "button", onclick: () => app.act("unpin", { room: room.name, pin: p.pin }) }, "Unpin")) : null));
  const needsAck = app.needsRulesAck(room);
  const title = el("input", { id: "pin-title", placeholder: "Title (Rules, About…)" });
  const text = el("textarea", { id: "pin-text", rows: 3 });
  return [
    needsAck && rulesPin ? el("div", { class: "notice warn" }, "This room asks you to read and accept its rules before you post.",
      el("div", { class: "row" }, el("button", { type: "button", class: "primary", onclick: () => app.ackRules(room) }, "I accept the rules"))) : null,
    items.length ? el("ul", {}, items) : el("p", { class: "hint" }, "Nothing pinned yet."),
    atLeast(room.role, "moderator") ? el("form", { onsubmit: (e) => { e.preventDefault(); app.act("pin", { room: room.name, note: text.value, title: title.value || undefined }); text.value = ""; title.value = ""; } },
      el("label", { for: "pin-title" }, "Pin a note"), title,
      el("label", { for: "pin-text" }, "Text"), text,
      el("div", { class: "row" }, el("button", { type: "submit" }, "Pin"))) : null,
  ];
}

function thread(app, room, root) {
  const rootItem = room.message(root);
  const replies = room.replies(root);
  const box = composer(app, { placeholder: "Reply in thread", label: "Reply", onSend: (text, edit) => edit ? app.edit(room, edit, text) : app.send(room, text, root) });
  return [
    rootItem ? messageNode(room, rootItem, app, { inThread: true }) : el("p", { class: "hint" }, "Loading…"),
    el("div", { class: "thread", role: "log", "aria-label": "Replies" }, replies.map((r) => messageNode(room, r, app, { inThread: true }))),
    box.node,
  ];
}

const TOOLS = [["requests", "Requests", "welcomer"], ["reports", "Reports", "welcomer"], ["held", "Held posts", "moderator"], ["invites", "Invites", "welcomer"], ["settings", "Settings", "welcomer"], ["prompts", "Prompts", "moderator"], ["log", "Log", "moderator"], ["health", "Health", "moderator"]];

function moderate(app, room, panel) {
  const tab = panel.tab || "requests";
  const tabs = el("div", { class: "tabs", role: "tablist", "aria-label": "Tools" },
    TOOLS.filter(([, , least]) => atLeast(room.role, least)).map(([name, label]) => el("button", {
      type: "button", role: "tab", "aria-selected": String(tab === name), onclick: () => app.setPanel({ kind: "moderate", tab: name }),
    }, label + count(name, room, app))));
  const area = el("div", { role: "tabpanel" });
  ({ requests, reports, held, invites, settings, prompts, log, health }[tab])(area, app, room, panel);
  return [tabs, area];
}

/** How many wait in a tool's queue, as its tab shows it. */
function count(name, room, app) {
  const n = { requests: room.requests.length, held: room.held.length, reports: room.reports.filter((r) => r.from !== app.me).length }[name];
  return n ? ` (${n})` : "";
}

/** Open reports, one entry per reported message: what was said, who
 * reported it and why; dismissed, or acted on, in one step. */
function reports(area, app, room) {
  const open = room.reports.filter((r) => r.from !== app.me);
  if (!open.length) { fill(area, el("p", { class: "hint" }, "No open reports.")); return; }
  const byMessage = new Map();
  for (const r of open) byMessage.set(r.message, [...(byMessage.get(r.message) || []), r]);
  const moderator = atLeast(room.role, "moderator");
  fill(area, el("ul", {}, [...byMessage.entries()].map(([message, list]) => {
    const first = list[0];
    const reason = el("input", { placeholder: "reason (shown to the room with the action)", "aria-label": `Reason for acting on the message by ${first.author}` });
    const duration = el("select", { "aria-label": "Mute for how long" }, DURATIONS.map(([label, secs]) => el("option", { value: secs }, label)));
    const resolve = (outcome, extra = {}) => app.act("resolve_report", { room: room.name, seq: message, outcome, reason: reason.value.trim(), ...extra });
    return el("li", {},
      el("div", {}, el("strong", {}, visible(first.author)), el("span", { class: "hint" }, ` · message #${message}`)),
      el("blockquote", { class: "pin text" }, render(first.text, app.me)),
      el("ul", { class: "hint", "aria-label": "Reports" }, list.map((r) => el("li", {},
        `${CATEGORIES[r.category] || r.category} — reported by ${r.from}, ${clock(r.at)}`, r.note ? el("div", {}, visible(r.note)) : null))),
      el("div", { class: "row" },
        el("button", { type: "button", onclick: () => app.openMessage({ room: room.name, seq: message }) }, "Show the message"),
        el("button", { type: "button", onclick: () => resolve("dismiss") }, "Dismiss")),
      moderator ? [reason,
        el("div", { class: "row" },
          el("button", { type: "button", class: "danger", onclick: () => resolve("delete") }, "Delete it"),
          el("button", { type: "button", onclick: () => reason.value.trim() ? resolve("warn") : app.toast("A warning needs a reason: write it above.") }, "Warn")),
        el("div", { class: "row" }, duration,
          el("button", { type: "button", onclick: () => resolve("mute", { duration_secs: Number(duration.value) }) }, "Mute"),
          el("button", { type: "button", class: "danger", onclick: () => resolve("kick") }, "Remove"),
          el("button", { type: "button", class: "danger", onclick: () => resolve("ban") }, "Ban"))] : null);
  })));
}

function requests(area, app, room) {
  if (!room.requests.length) { fill(area, el("p", { class: "hint" }, "No one is waiting to join.")); return; }
  fill(area, el("ul", {}, room.requests.map((r) => {
    const reason = el("input", { placeholder: "reason, if you decline", "aria-label": `Reason for declining ${r.user}` });
    return el("li", {},
      el("strong", {}, visible(r.user)), el("span", { class: "hint" }, ` asked ${clock(r.at)}`),
      el("div", {}, render(r.note || "(no answer)", app.me)),
      reason,
      el("div", { class: "row" },
        el("button", { type: "button", class: "primary", onclick: () => app.decide(room, r.user, true) }, "Let in"),
        el("button", { type: "button", class: "danger", onclick: () => app.decide(room, r.user, false, reason.value) }, "Decline")));
  })));
}

function held(area, app, room) {
  if (!room.held.length) { fill(area, el("p", { class: "hint" }, "No post is waiting for review.")); return; }
  fill(area, el("ul", {}, room.held.map((h) => el("li", {},
    el("strong", {}, visible(h.user)), el("span", { class: "hint" }, ` ${clock(h.at)}`),
    el("div", {}, render(h.text, app.me)),
    el("div", { class: "row" },
      el("button", { type: "button", class: "primary", onclick: () => app.act("release", { room: room.name, user: h.user, cmid: h.cmid, approve: true }) }, "Post it"),
      el("button", { type: "button", class: "danger", onclick: () => app.act("release", { room: room.name, user: h.user, cmid: h.cmid, approve: false }) }, "Drop it"))))));
}

function invites(area, app, room, panel) {
  const out = el("div", { role: "status" });
  // Kept on the panel: the room's own event for the invite redraws it.
  if (panel.invite) {
    fill(out, el("label", { for: "invite-link" }, "Share this link (shown once):"),
      el("input", { id: "invite-link", readonly: true, value: panel.invite.link, onfocus: (e) => e.target.select() }),
      el("p", { class: "hint" }, `Valid until ${new Date(panel.invite.expires_at).toLocaleString()}.`));
  }
  const uses = el("select", { id: "invite-uses" }, [["1", "one person"], ["5", "5 people"], ["25", "25 people"], ["", "anyone with the link"]].map(([v, l]) => el("option", { value: v }, l)));
  const signup = el("input", { id: "invite-signup", autocomplete: "off", "aria-describedby": "invite-signup-hint" });
  fill(area, el("p", {}, "An invite link lets people into this room directly, whatever its visibility."),
    el("label", { for: "invite-uses" }, "For"), uses,
    el("label", { for: "invite-signup" }, "Sign-up code to include (optional)"), signup,
    el("div", { class: "hint", id: "invite-signup-hint" }, "People without an account need one where the server asks for it; the operator makes them (hearth-server accounts invite)."),
    el("div", { class: "row" }, el("button", { type: "button", class: "primary", onclick: async () => {
      try {
        const invite = await app.conn.request("create_invite", { room: room.name, ...(uses.value ? { max_uses: Number(uses.value) } : {}) });
        const code = signup.value.trim();
        const link = `${location.origin}/invite/${encodeURIComponent(invite.code)}?room=${encodeURIComponent(room.name)}${code ? `&signup=${encodeURIComponent(code)}` : ""}`;
        app.setPanel({ kind: "moderate", tab: "invites", invite: { link, expires_at: invite.expires_at } });
      } catch (error) { app.toast(error.message); }
    } }, "Make an invite link")), out);
}

/** The settings tab. The room's events redraw the panel: the forms are
 * kept on the panel, so what a moderator types survives them; only the
 * lockdown's state is drawn afresh. */
function settings(area, app, room, panel) {
  panel.settingsForms ??= [settingsForm(app, room), atLeast(room.role, "moderator") ? filterForm(app, room) : null];
  const [form, filter] = panel.settingsForms;
  fill(area, form, atLeast(room.role, "moderator") ? lockdownForm(app, room) : null, filter, room.role === "owner" ? exportForm(app, room) : null);
}

/** The owner takes the room's history away: as data, or as a page to keep. */
function exportForm(app, room) {
  const save = (format) => download(`/export/room/${encodeURIComponent(room.name)}.${format}`, `hearth-${room.name}.${format}`).catch((e) => app.toast(e.message));
  return el("fieldset", {}, el("legend", {}, "Export"),
    el("p", { class: "hint" }, "The room's history as it is now: edits applied, deleted messages as tombstones, reactions and threads."),
    el("div", { class: "row" },
      el("button", { type: "button", onclick: () => save("jsonl") }, "Download as data (JSON Lines)"),
      el("button", { type: "button", onclick: () => save("html") }, "Download as a web page")));
}

function settingsForm(app, room) {
  const info = room.info || {};
  const moderator = atLeast(room.role, "moderator");
  const f = (id, label, input, hint) => [el("label", { for: id }, label), Object.assign(input, { id }), hint ? el("div", { class: "hint" }, hint) : null];
  const topic = el("input", { value: info.topic || "" });
  const visibility = el("select", {}, ["open", "approval", "invite_only"].map((v) => el("option", { value: v, selected: info.visibility === v }, { open: "open: anyone may join", approval: "approval: a welcomer lets people in", invite_only: "invite only" }[v])));
  const welcome = el("textarea", { rows: 3 }); welcome.value = info.welcome || "";
  const slow = el("input", { type: "number", min: 0, max: 3600, value: info.slow_mode_secs || 0 });
  const probation = el("input", { type: "number", min: 0, max: 90, value: Math.round((info.probation_secs || 0) / 86400) });
  const rulesAck = el("input", { type: "checkbox", checked: !!info.rules_ack });
  const expiry = el("input", { type: "number", min: 0, max: 3650, value: info.warn_expiry_days ?? 90 });
  const limit = el("input", { type: "number", min: 0, max: 20, value: info.warn_limit || 0 });
  const then = el("select", {}, [["", "nothing more"], ["mute", "mute them"], ["kick", "remove them"], ["ban", "ban them"]].map(([v, l]) => el("option", { value: v, selected: (info.warn_action || "") === v }, l)));
  const thenFor = el("select", {}, [["0", "until lifted"], ...DURATIONS.map(([l, s]) => [String(s), `for ${l}`])].map(([v, l]) => el("option", { value: v, selected: String(info.warn_action_secs || 0) === v }, l)));
  const raidJoins = el("input", { type: "number", min: 0, max: 1000, value: info.raid_joins || 0 });
  const raidSecs = el("input", { type: "number", min: 1, max: 3600, value: info.raid_secs || 60 });
  const raidFor = el("select", {}, DURATIONS.map(([l, s]) => el("option", { value: s, selected: (info.raid_lock_secs || 3600) === s }, l)));
  const owner = room.role === "owner";
  const keepErased = el("select", {}, [["false", "become “deleted” placeholders"], ["true", "stay, shown as from “a former member”"]].map(([v, l]) => el("option", { value: v, selected: String(!!info.erased_as_former_member) === v }, l)));
  const save = (e) => {
    e.preventDefault();
    const settings = moderator ? {
      topic: topic.value, visibility: visibility.value, welcome: welcome.value,
      slow_mode_secs: Number(slow.value), probation_secs: Number(probation.value) * 86400, rules_ack: rulesAck.checked,
      warn_expiry_days: Number(expiry.value), warn_limit: then.value ? Number(limit.value) : 0,
      ...(then.value ? { warn_action: then.value, warn_action_secs: Number(thenFor.value) } : {}),
      raid_joins: Number(raidJoins.value), raid_secs: Number(raidSecs.value), raid_lock_secs: Number(raidFor.value),
      ...(owner ? { erased_as_former_member: keepErased.value === "true" } : {}),
    } : { welcome: welcome.value };
    app.act("set_room", { room: room.name, settings });
  };
  return el("form", { onsubmit: save },
    moderator ? [f("s-topic", "Topic", topic), f("s-vis", "Who may join", visibility, "In an approval room, people who ask to join answer in a few words; the topic is what they see before asking, so put your entry question there."),
      f("s-slow", "Slow mode (seconds between posts)", slow), f("s-prob", "Probation for newcomers (days)", probation, "Newcomers on probation wait between posts and their links are held for review.")] : null,
    f("s-welcome", "Welcome message (shown on a member's first join)", welcome),
    moderator ? el("label", {}, rulesAck, " Members must accept the pinned “Rules” before posting") : null,
    moderator ? el("fieldset", {}, el("legend", {}, "Warnings"),
      f("s-warn-days", "A warning counts for (days; 0: until lifted)", expiry),
      f("s-warn-limit", "When a member has this many warnings", limit),
      f("s-warn-then", "then", then), f("s-warn-for", "for", thenFor, "The warning that reaches the number brings it, at once.")) : null,
    moderator ? el("fieldset", {}, el("legend", {}, "Raids"),
      f("s-raid-joins", "Close the doors when this many people join or ask to join (0: never)", raidJoins),
      f("s-raid-secs", "within (seconds)", raidSecs),
      f("s-raid-for", "for", raidFor, "The room then takes no new members for that long; you can lift it from here.")) : null,
    owner ? f("s-erased", "When a member erases their account, what they wrote here should", keepErased, "Either way their name, reactions and read state go.") : null,
    el("div", { class: "row" }, el("button", { type: "submit", class: "primary" }, "Save")));
}

/** The room's word filter: its rules, each removable, and a form to add one. */
function filterForm(app, room) {
  const list = el("ul", { "aria-label": "Word filter rules" }, el("li", { class: "hint" }, "Loading…"));
  const pattern = el("input", { id: "filter-pattern", maxlength: 200, placeholder: "a phrase, or a pattern" });
  const regex = el("input", { type: "checkbox", id: "filter-regex" });
  const action = el("select", { id: "filter-action" }, [["hold", "hold it for a moderator's look"], ["refuse", "refuse it"]].map(([v, l]) => el("option", { value: v }, l)));
  const reason = el("input", { id: "filter-reason", maxlength: 200, placeholder: "what the author reads (optional)" });
  let rules = [];
  const save = async (next) => {
    if (await app.act("set_room", { room: room.name, settings: { filters: next } })) { rules = next; draw(); return true; }
    return false;
  };
  const draw = () => fill(list, rules.length ? rules.map((r, n) => el("li", {},
    el("code", {}, visible(r.pattern)), el("span", { class: "hint" }, ` ${r.regex ? "pattern" : "phrase"} · ${r.action}${r.reason ? ` · “${r.reason}”` : ""}`),
    el("button", { type: "button", "aria-label": `Remove the rule ${r.pattern}`, onclick: () => save(rules.filter((_, i) => i !== n)) }, "Remove"))) : el("li", { class: "hint" }, "No rules: nothing is filtered."));
  app.conn.request("filters", { room: room.name }).then((answer) => { rules = answer.filters; draw(); }, (error) => fill(list, el("li", { class: "error" }, error.message)));
  return el("fieldset", {}, el("legend", {}, "Word filter"),
    el("p", { class: "hint" }, "Posts with these words are held for a look or refused. Only moderators see this list; moderators' own posts pass."),
    list,
    el("label", { for: "filter-pattern" }, "Words"), pattern,
    el("label", {}, regex, " A regular expression"),
    el("label", { for: "filter-action" }, "Then"), action,
    el("label", { for: "filter-reason" }, "Reason"), reason,
    el("div", { class: "row" }, el("button", { type: "button", onclick: async () => {
      if (!pattern.value.trim()) { app.toast("Write the words to filter first."); return; }
      const rule = { pattern: pattern.value.trim(), action: action.value, ...(regex.checked ? { regex: true } : {}), ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) };
      if (await save([...rules, rule])) { pattern.value = ""; reason.value = ""; }
    } }, "Add the rule")));
}

/** Locks the room down for a time, or lifts the lockdown. */
function lockdownForm(app, room) {
  const now = lockedNow(room.info);
  const level = el("select", { id: "lock-level" }, [["joins", "No new members"], ["read_only", "Read-only: only moderators post"]].map(([v, l]) => el("option", { value: v }, l)));
  const length = el("select", { id: "lock-for", "aria-label": "Lock for how long" }, DURATIONS.map(([l, s]) => el("option", { value: s, selected: s === 3600 }, `for ${l}`)));
  return el("fieldset", {}, el("legend", {}, "Lockdown"),
    now ? el("p", { role: "status" }, `Locked: ${now.level === "read_only" ? "read-only" : "no new members"}${lockUntil(now)}.`) : el("p", { class: "hint" }, "For a bad day: it lifts by itself."),
    el("label", { for: "lock-level" }, "Lock"), level, length,
    el("div", { class: "row" },
      el("button", { type: "button", class: "danger", onclick: () => app.act("lockdown", { room: room.name, level: level.value, duration_secs: Number(length.value) }) }, "Lock the room"),
      now ? el("button", { type: "button", onclick: () => app.act("lockdown", { room: room.name, level: "off" }) }, "Lift the lockdown") : null));
}

async function prompts(area, app, room) {
  const text = el("textarea", { id: "p-text", rows: 2 });
  const at = el("input", { id: "p-at", type: "datetime-local" });
  const weekly = el("input", { type: "checkbox" });
  const list = el("ul", {}, el("li", { class: "hint" }, "Loading…"));
  fill(area, list, el("form", { onsubmit: async (e) => {
    e.preventDefault();
    const when = new Date(at.value).getTime();
    if (!when) { app.toast("Pick a date and time."); return; }
    await app.act("schedule_prompt", { room: room.name, text: text.value, at: when, weekly: weekly.checked });
    app.setPanel({ kind: "moderate", tab: "prompts" });
  } }, el("label", { for: "p-text" }, "Schedule a prompt"), text, el("label", { for: "p-at" }, "When"), at,
    el("label", {}, weekly, " Every week"), el("div", { class: "row" }, el("button", { type: "submit" }, "Schedule"))));
  try {
    const answer = await app.conn.request("prompts", { room: room.name });
    fill(list, answer.prompts.length ? answer.prompts.map((p) => el("li", {}, el("div", {}, visible(p.text)),
      el("div", { class: "hint" }, `${p.weekly ? "weekly, next" : "on"} ${new Date(p.next_at).toLocaleString()} · by ${p.by}`),
      el("button", { type: "button", onclick: async () => { await app.act("cancel_prompt", { room: room.name, prompt: p.prompt }); app.setPanel({ kind: "moderate", tab: "prompts" }); } }, "Cancel"))) : el("li", { class: "hint" }, "No prompt scheduled."));
  } catch (error) { fill(list, el("li", { class: "error" }, error.message)); }
}

async function log(area, app, room) {
  fill(area, el("p", { class: "hint" }, "Loading…"));
  try {
    const answer = await app.conn.request("mod_log", { room: room.name, limit: 50 });
    fill(area, answer.entries.length ? el("ul", {}, answer.entries.map((e) => el("li", {},
      el("div", {}, `${e.by} · ${e.action.replaceAll("_", " ")}${e.user ? ` · ${e.user}` : ""}${e.outcome ? ` · ${e.outcome}` : ""}${e.escalation ? ` · then ${e.escalation.action}` : ""}`),
      el("div", { class: "hint" }, clock(e.at) + (e.until ? ` · until ${new Date(e.until).toLocaleString()}` : "")),
      e.reason ? el("div", {}, visible(e.reason)) : null))) : el("p", { class: "hint" }, "Nothing logged yet."));
  } catch (error) { fill(area, el("p", { class: "error" }, error.message)); }
}

const HEALTH = [["messages", "Messages"], ["active_members", "Members who posted"], ["new_members", "New members"], ["threads", "Conversations with replies"], ["repeat_interactions", "Pairs who talk back and forth"]];

/** The room's health: this week against an average week of the last 30 days. */
async function health(area, app, room) {
  fill(area, el("p", { class: "hint" }, "Loading…"));
  try {
    const answer = await app.conn.request("stats", { room: room.name });
    const week = answer.windows.find((w) => w.days === 7) || {};
    const month = answer.windows.find((w) => w.days === 30) || {};
    const rows = HEALTH.map(([key, label]) => [label, week[key] || 0, ((month[key] || 0) * 7) / 30]);
    const max = Math.max(1, ...rows.flatMap(([, a, b]) => [a, b]));
    const width = 320, rowHeight = 46, labelWidth = 0;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${rows.length * rowHeight + 10}`, role: "img", "aria-label": "This week against an average week of the last 30 days" },
      rows.map(([label, now, usual], i) => {
        const y = i * rowHeight + 4;
        const w = (v) => Math.max(2, ((width - 60 - labelWidth) * v) / max);
        return svg("g", {},
          svg("text", { x: 0, y: y + 10 }, label),
          svg("rect", { class: "bar", x: 0, y: y + 14, width: w(now), height: 12, rx: 3 }),
          svg("text", { x: w(now) + 6, y: y + 24 }, String(now)),
          svg("rect", { class: "bar", x: 0, y: y + 28, width: w(usual), height: 8, rx: 3, opacity: 0.45 }),
          svg("text", { x: w(usual) + 6, y: y + 36 }, usual.toFixed(1)));
      }));
    const reply = week.newcomer_first_reply_secs;
    fill(area, el("div", { class: "chart" },
      el("p", { class: "hint" }, "Each pair of bars: this week (solid) and an average week of the last 30 days (light)."),
      chart,
      el("table", { class: "visually-hidden" }, el("caption", {}, "Room health"),
        el("tr", {}, el("th", {}, "measure"), el("th", {}, "last 7 days"), el("th", {}, "average week, last 30 days")),
        rows.map(([label, now, usual]) => el("tr", {}, el("td", {}, label), el("td", {}, String(now)), el("td", {}, usual.toFixed(1))))),
      el("p", {}, reply !== undefined ? `Newcomers' first posts got a reply after ${span(reply * 1000)} (median, last 7 days).` : "No newcomer posted in the last 7 days."),
      el("p", {}, `Replies per conversation: ${(week.avg_replies_per_thread || 0).toFixed(1)} this week, ${(month.avg_replies_per_thread || 0).toFixed(1)} over 30 days.`)));
  } catch (error) { fill(area, el("p", { class: "error" }, error.message)); }
}
