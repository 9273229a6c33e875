// Hearth's page: signs the member in, keeps one live connection, joins
// every room the member is in (resuming each from its last seq after a
// reconnect: nothing missed, nothing twice), and draws the rooms, the
// timeline and the panel. Deep links: /r/ROOM opens a room,
// /invite/CODE?room=ROOM joins one with an invite.

import { el, fill, span } from "./dom.js";
import * as signin from "./signin.js";
import { Connection, closeWords } from "./connection.js";
import { Room, atLeast, lockedNow, lockUntil } from "./store.js";
import { TimelineView, composer } from "./timeline.js";
import { drawRooms } from "./rooms.js";
import { drawPanel } from "./moderation.js";
import { render, visible } from "./text.js";

const root = document.getElementById("app");

function route() {
  const path = location.pathname;
  const params = new URLSearchParams(location.search);
  if (path.startsWith("/r/")) return { room: decodeURIComponent(path.slice(3)) };
  if (path.startsWith("/invite/")) return { invite: { code: decodeURIComponent(path.slice(8)), room: params.get("room") }, signup: params.get("signup") };
  return {};
}

class App {
  constructor(me, start) {
    this.me = me;
    this.rooms = new Map();
    this.current = null;
    this.panel = null;
    this.start = start;
    this.lastTyping = 0;
    this.outbox = new Map(); // cmid -> {room, text, thread}: sends not yet answered
    this.blocked = new Set(); // members this one blocks: their messages collapsed
    this.timeline = new TimelineView(this);
    this.conn = new Connection({
      onEvent: (event) => this.event(event),
      onOpen: () => this.opened(),
      onStatus: (state, detail) => this.showStatus(state, detail),
      onSignedOut: (why) => this.signedOut(why),
    });
    this.build();
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.panel) { this.setPanel(null); this.composer?.input.focus(); }
    });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) this.markSeen(); });
  }

  build() {
    this.statusNode = el("span", { class: "status", role: "status", "aria-live": "polite" }, "connecting…");
    this.roomsNode = el("aside", { class: "rooms" });
    this.mainNode = el("main", { class: "main", id: "main" });
    this.panelNode = el("aside", { class: "panel", hidden: true });
    this.toastNode = el("div", { class: "visually-hidden", role: "alert" });
    this.shell = el("div", { class: "shell" },
      el("header", { class: "topbar" },
        el("button", { type: "button", class: "menu-button", "aria-label": "Rooms", onclick: () => this.toggleRooms() }, "☰", el("span", { class: "label" }, " Rooms")),
        el("span", { class: "brand" }, el("img", { src: signin.iconUrl(), alt: "" }), el("span", { class: "brand-name" }, "Hearth")),
        this.statusNode,
        el("span", { class: "spacer" }),
        el("span", { class: "who-am-i" }, visible(this.me)),
        el("button", { type: "button", "aria-label": "Search messages", onclick: () => this.setPanel(this.panel?.kind === "search" ? null : { kind: "search" }) }, "🔍"),
        el("button", { type: "button", "aria-label": "Mentions of you", onclick: () => this.setPanel(this.panel?.kind === "mentions" ? null : { kind: "mentions" }) }, "@"),
        el("button", { type: "button", "aria-label": "Notifications", onclick: () => this.setPanel(this.panel?.kind === "notify" ? null : { kind: "notify" }) }, "🔔"),
        el("button", { type: "button", "aria-label": "Change password", onclick: () => this.passwordDialog() }, "🔑"),
        el("button", { type: "button", onclick: () => this.signOut() }, "Sign out")),
      this.roomsNode, this.mainNode, this.panelNode, this.toastNode);
    fill(root, this.shell);
    root.className = "";
    this.drawRooms();
    this.drawMain();
  }

  room(name) {
    if (!this.rooms.has(name)) this.rooms.set(name, new Room(name));
    return this.rooms.get(name);
  }

  // ----- the connection -----

  async opened() {
    try {
      let after;
      for (let page = 0; page < 20; page++) {
        const answer = await this.conn.request("list_rooms", after ? { after, limit: 500 } : { limit: 500 });
        for (const entry of answer.rooms) this.room(entry.room).listed = entry;
        if (!answer.more || !answer.rooms.length) break;
        after = answer.rooms[answer.rooms.length - 1].room;
      }
    } catch (error) { this.toast(error.message); }
    this.conn.request("blocks").then((answer) => this.setBlocked(answer.users), () => {});
    // Every room the member is in, resumed from where this page stood.
    const joins = [...this.rooms.values()].filter((r) => r.listed?.role || r.role).map((r) => this.join(r, { quiet: r.name !== this.current }));
    if (this.start) {
      const start = this.start;
      this.start = null;
      if (start.invite) await this.joinByInvite(start.invite);
      // Unless the member opened another room while the list was loading:
      // a link should not pull them back from where they went.
      else if (start.room && (!this.current || this.current === start.room)) await this.open(start.room);
    }
    await Promise.allSettled(joins);
    await this.loadReadState();
    for (const [cmid, post] of this.outbox) this.deliver(cmid, post);
    if (!this.current) {
      const first = [...this.rooms.values()].find((r) => r.role);
      if (first) this.open(first.name);
    }
    this.drawRooms();
  }

  /** Where this member stands in each room, on every device: the unread counts. */
  async loadReadState() {
    try {
      const state = await this.conn.request("read_state");
      for (const entry of state.rooms) {
        const room = this.room(entry.room);
        room.readSeq = entry.seq;
        room.unread = entry.unread;
        room.unreadMore = !!entry.more;
      }
      const current = this.rooms.get(this.current);
      if (current && !document.hidden) this.markRead(current);
    } catch { /* counted from live messages only until the next connect */ }
    this.drawRooms();
    this.updateTitle();
  }

  /** Tells the server (and so every device) this room is read up to what is shown. */
  markRead(room) {
    room.unread = 0;
    room.mentions = 0;
    room.unreadMore = false;
    if (!room.receiving || room.seq <= (room.readSeq || 0)) return;
    clearTimeout(room.markTimer);
    // At most one mark a second per room, however fast messages come.
    room.markTimer = setTimeout(() => {
      const seq = room.seq;
      this.conn.request("mark_read", { room: room.name, seq }).then((mark) => { room.readSeq = Math.max(room.readSeq || 0, mark.seq); }, () => {});
    }, 1000);
  }

  /** Joins (or resumes) `room` on this connection. */
  async join(room, { invite, quiet } = {}) {
    const args = { room: room.name };
    if (room.epoch !== null && room.receivedOnce) args.since = { epoch: room.epoch, seq: room.seq };
    if (invite) args.invite = invite;
    try {
      const reply = await this.conn.request("join", args);
      room.info = reply.room;
      room.role = reply.role;
      room.pins = reply.pins || [];
      room.pending = null;
      room.receiving = true;
      if (reply.resume !== "replay") {
        if (reply.resume === "truncated") room.truncatedNotice = "Some messages from while you were away are no longer held; showing what the server still has.";
        room.items.clear();
        room.pageLoaded = false;
        room.oldest = null;
        room.moreOlder = true;
        room.epoch = reply.room.epoch;
        room.seq = reply.room.head;
        room.receivedOnce = true;
        if (!quiet || room.name === this.current) await this.loadNewest(room);
      }
      if (reply.first_join && reply.room.welcome) room.welcome = reply.room.welcome;
      if (room.name === this.current && !document.hidden) this.markRead(room);
      await this.refreshMembers(room);
      if (atLeast(room.role, "welcomer")) this.refreshQueues(room);
    } catch (error) {
      room.receiving = false;
      this.joinRefused(room, error);
      if (!quiet) throw error;
    } finally {
      if (room.name === this.current) this.drawMain();
      this.drawRooms();
    }
  }

  joinRefused(room, error) {
    room.refusal = error;
    if (error.code === "not_member" || error.code === "banned") {
      room.role = null;
      room.receivedOnce = false;
      if (room.listed) room.listed.role = undefined;
    }
  }

  async loadNewest(room) {
    const page = await this.conn.request("history", { room: room.name, limit: 100 });
    room.takePage(page.events, this.me);
    room.pageLoaded = true;
    room.moreOlder = page.more;
    if (page.events.length === 0) room.moreOlder = false;
  }

  async loadOlder(room) {
    if (room.oldest === null) return this.loadNewest(room);
    const page = await this.conn.request("history", { room: room.name, before: room.oldest, limit: 100 });
    room.takePage(page.events, this.me);
    room.moreOlder = page.more && page.events.length > 0;
  }

  async refreshMembers(room) {
    try {
      const [members, presence] = await Promise.all([
        this.conn.request("members", { room: room.name }),
        this.conn.request("presence", { room: room.name }),
      ]);
      room.members = new Map(members.members.map((m) => [m.user, m]));
      room.online = new Set(presence.online.map((o) => o.user));
    } catch { /* shown without roles until the next try */ }
  }

  async refreshQueues(room) {
    const before = JSON.stringify([room.requests, room.held, room.reports]);
    try {
      room.requests = (await this.conn.request("join_requests", { room: room.name })).requests;
      room.reports = (await this.conn.request("reports", { room: room.name })).reports;
      if (atLeast(room.role, "moderator")) room.held = (await this.conn.request("held", { room: room.name })).held;
    } catch { /* the panel asks again */ }
    // Drawn again only if the queues changed: a redraw loses what the
    // moderator is typing in the panel's forms.
    const changed = JSON.stringify([room.requests, room.held, room.reports]) !== before;
    if (changed && this.panel && room.name === this.current) this.drawPanel();
  }

  event(event) {
    if (event.ev === "typing") {
      const room = this.rooms.get(event.room);
      if (!room) return;
      room.typing.set(event.user, Date.now() + 5000);
      if (room.name === this.current) this.drawTyping();
      setTimeout(() => { if (room.name === this.current) this.drawTyping(); }, 5100);
      return;
    }
    if (event.ev === "presence") {
      const room = this.rooms.get(event.room);
      if (!room) return;
      for (const u of event.online || []) room.online.add(u);
      for (const u of event.offline || []) room.online.delete(u);
      if (room.name === this.current && this.panel?.kind === "members") this.drawPanel();
      return;
    }
    if (event.ev === "join_decision") {
      const room = this.room(event.room);
      if (event.approved) {
        room.pending = null;
        this.toast(`${event.by} let you into ${event.room}. Welcome!`);
        this.join(room, { quiet: room.name !== this.current });
      } else {
        room.pending = "denied";
        room.refusal = { code: "denied", message: `${event.by} declined your request${event.reason ? `: ${event.reason}` : "."}` };
        if (room.name === this.current) this.drawMain();
      }
      this.drawRooms();
      return;
    }
    if (event.ev === "blocks") { this.setBlocked(event.users); return; }
    if (event.ev === "direct_started" && !this.rooms.get(event.room)?.receiving) {
      // Someone started a conversation with this member: it is theirs now.
      const room = this.room(event.room);
      room.listed = { room: event.room, topic: "", visibility: "direct", members: event.members.length, role: "member", direct: event.members };
      if (event.from !== this.me) this.toast(`${event.from} started a conversation with you.`);
      this.join(room, { quiet: room.name !== this.current }).catch(() => {});
      this.drawRooms();
      return;
    }
    if (event.ev === "read") {
      const room = this.rooms.get(event.room);
      if (!room) return;
      room.readSeq = Math.max(room.readSeq || 0, event.seq);
      // Read elsewhere up to there: what is unread is what came after.
      const after = [...room.items.values()].filter((i) => i.kind === "message" && i.seq > room.readSeq && i.from !== this.me);
      room.unread = after.length;
      room.mentions = after.filter((i) => i.mentionsMe).length;
      room.unreadMore = false;
      this.drawRooms();
      this.updateTitle();
      return;
    }
    if (event.ev === "truncated") {
      const room = this.rooms.get(event.room);
      if (!room) return;
      room.epoch = event.epoch;
      room.seq = event.next - 1;
      room.truncatedNotice = `Messages ${event.after + 1}–${event.next - 1} could not be delivered and are lost; what the server still holds is shown.`;
      room.items.clear();
      room.oldest = null;
      this.loadNewest(room).then(() => { if (room.name === this.current) this.drawMain(); }, () => {});
      return;
    }
    if (!event.room || event.seq === undefined) return;
    const room = this.room(event.room);
    room.receivedOnce = true;
    if (room.epoch === null) room.epoch = room.info?.epoch ?? null;
    const change = room.apply(event, this.me);
    if (!change) return;
    if (event.ev === "message" && !change.mine && change.mentions && change.item) change.item.mentionsMe = true;
    if (event.ev === "message" && !change.mine) {
      const seen = room.name === this.current && !document.hidden;
      if (seen) this.markRead(room);
      else if (event.seq > (room.readSeq || 0)) {
        room.unread += 1;
        if (change.mentions) room.mentions += 1;
        this.drawRooms();
        this.updateTitle();
      }
    }
    if (["moderation", "member_joined", "member_left", "role"].includes(event.ev)) {
      // Removed by a kick or a ban, or by a warning that reached the room's limit.
      const action = event.action === "warn" ? event.escalation?.action : event.action;
      const removed = event.ev === "moderation" && ["kick", "ban"].includes(action) && event.user === this.me;
      if (removed) {
        room.role = null;
        room.receiving = false;
        room.receivedOnce = false;
        room.refusal = { code: action === "ban" ? "banned" : "kicked", message: action === "ban" ? `You were banned from ${room.name}${event.reason ? `: ${event.reason}` : "."}` : `You were removed from ${room.name}${event.reason ? `: ${event.reason}` : "."} You may join again.` };
        if (room.listed) room.listed.role = undefined;
        this.drawRooms();
      }
    }
    if (room.name !== this.current) return;
    if (change.root && this.panel?.kind === "thread" && this.panel.root === change.root) this.drawPanel();
    else if (this.panel?.kind === "thread" && change.seq === this.panel.root) this.drawPanel();
    if (["pin", "unpin", "room_updated", "role", "join_request", "held", "report", "moderation", "member_joined", "member_left"].includes(event.ev)) {
      if (this.panel && this.panel.kind !== "report") this.drawPanel();
      if (["room_updated", "pin", "unpin", "role", "member_joined", "member_left", "moderation", "join_request", "held", "report"].includes(event.ev)) this.drawHead();
    }
    if (room.refusal && !room.receiving) { this.drawMain(); return; }
    this.timeline.changed(change);
  }

  // ----- what the member does -----

  async open(name) {
    if (!name) return;
    this.current = name;
    this.shell.classList.remove("show-rooms");
    history.replaceState(null, "", `/r/${encodeURIComponent(name)}`);
    const room = this.room(name);
    this.markRead(room);
    this.updateTitle();
    this.panel = this.panel?.kind === "thread" ? null : this.panel;
    this.drawMain();
    this.drawRooms();
    if (!room.receiving && this.conn.state === "online" && !room.pending) {
      try { await this.join(room); } catch { /* drawn as the room's refusal */ }
    } else if (room.receiving && !room.pageLoaded) {
      // Joined quietly (in the background): only live events are here yet.
      try { await this.loadNewest(room); } catch (error) { this.toast(error.message); }
      this.drawMain();
    }
  }

  async joinByInvite(invite) {
    if (!invite.room) { this.toast("This invite link names no room; ask for a new link."); return; }
    const room = this.room(invite.room);
    this.current = invite.room;
    try {
      await this.join(room, { invite: invite.code });
      this.toast(`You joined ${invite.room}.`);
    } catch (error) { this.toast(error.message); }
    await this.open(invite.room);
  }

  async createRoom(name) {
    if (!name) return;
    try {
      const info = await this.conn.request("create_room", { room: name });
      this.room(name).listed = { room: name, topic: info.topic, role: "owner" };
      await this.open(name);
    } catch (error) { this.toast(error.message); }
  }

  /** Opens the direct conversation with `users` (starting it if need be). */
  async startDirect(users) {
    try {
      const info = await this.conn.request("start_direct", { with: users });
      const room = this.room(info.room);
      room.listed = { room: info.room, topic: "", visibility: "direct", members: info.members, role: "member", direct: info.direct };
      room.info = info;
      this.setPanel(null);
      await this.open(info.room);
    } catch (error) { this.toast(error.message); }
  }

  async block(user, on) {
    if (on && !confirm(`Block ${user}? They will not be able to write to you directly, and their messages will be folded away for you.`)) return;
    const answer = await this.act("block", { user, on });
    if (answer) this.setBlocked(answer.users);
  }

  /** This device's push subscription, if notifications are on here. */
  async pushSubscription() {
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) return null;
    const registration = await navigator.serviceWorker.getRegistration("/");
    return registration ? registration.pushManager.getSubscription() : null;
  }

  /** Turns notifications on for this device: permission, the service
   * worker, a subscription with the server's key, kept by the server. */
  async enablePush(withText) {
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) throw new Error("This browser cannot show notifications from a website.");
    if (await Notification.requestPermission() !== "granted") throw new Error("Notifications are blocked for this site in the browser's settings.");
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    const { key } = await this.conn.request("push_key");
    const padded = key.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - key.length % 4) % 4);
    const applicationServerKey = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });
    const json = subscription.toJSON();
    await this.conn.request("push_subscribe", { endpoint: json.endpoint, p256dh: json.keys.p256dh, auth: json.keys.auth, text: withText });
  }

  async disablePush() {
    const subscription = await this.pushSubscription();
    if (!subscription) return;
    await this.conn.request("push_unsubscribe", { endpoint: subscription.endpoint }).catch(() => {});
    await subscription.unsubscribe();
  }

  async setPushLevel(room, level) {
    await this.conn.request("push_level", { room: room.name, level });
  }

  /** The level the member set for `room` (on any device), or its default. */
  async pushLevel(room) {
    const answer = await this.conn.request("push_levels");
    const set = answer.levels.find((l) => l.room === room.name);
    return set ? set.level : (room.info?.direct?.length ? "everything" : "mentions");
  }

  setBlocked(users) {
    const next = new Set(users);
    const same = next.size === this.blocked.size && [...next].every((u) => this.blocked.has(u));
    this.blocked = next;
    if (same) return;
    // Only what shows blocks: a redraw of the whole page would lose what
    // the member is typing in a form.
    this.timeline.changed({ all: true });
    if (this.panel?.kind === "members") this.drawPanel();
  }

  /** What a room is called here: a conversation by who else is in it. */
  roomLabel(room) {
    const direct = room.info?.direct || room.listed?.direct;
    if (!direct?.length) return room.name;
    const others = direct.filter((u) => u !== this.me);
    return others.length ? others.join(", ") : "just you";
  }

  async requestJoin(room, note) {
    try {
      await this.conn.request("request_join", { room: room.name, note });
      room.pending = "requested";
      room.refusal = null;
    } catch (error) { this.toast(error.message); }
    this.drawMain();
    this.drawRooms();
  }

  send(room, text, thread) {
    const cmid = `w-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    const post = { room: room.name, text, thread };
    this.outbox.set(cmid, post);
    return this.deliver(cmid, post);
  }

  /** Sends a post until the server answers it: a retry keeps its cmid, so it is stored once. */
  async deliver(cmid, post, attempt = 0) {
    try {
      const reply = await this.conn.request("send", { room: post.room, text: post.text, cmid, ...(post.thread ? { thread: post.thread } : {}) });
      this.outbox.delete(cmid);
      if (reply.held) this.toast("Your post is waiting for a moderator's review, as newcomers' links are.");
    } catch (error) {
      if (error.code === "disconnected") return; // sent again after the reconnect
      if (["outcome_unknown", "overloaded"].includes(error.code) && attempt < 5) {
        await new Promise((r) => setTimeout(r, error.retry_after_ms || 500 * 2 ** attempt));
        return this.deliver(cmid, post, attempt + 1);
      }
      this.outbox.delete(cmid);
      if (error.code === "ack_required") {
        const room = this.room(post.room);
        this.setPanel({ kind: "pins" });
        this.toast("Please read and accept the room's rules first.");
        if (room.name === this.current) this.drawMain();
      }
      const wait = error.retry_after_ms ? ` Try again in ${span(error.retry_after_ms)}.` : "";
      throw new Error(`${error.message}${wait}`);
    }
  }

  async edit(room, item, text) {
    if (text === item.text) return;
    await this.conn.request("edit", { room: room.name, target: item.seq, text });
  }

  startEdit(room, item) {
    if (item.thread) { this.openThread(room, item.thread); return; }
    this.composer?.edit(item);
  }

  lastOwnMessage() {
    const room = this.rooms.get(this.current);
    if (!room) return null;
    return room.main().filter((i) => i.kind === "message" && i.from === this.me && !i.deleted).at(-1) || null;
  }

  async deleteMessage(room, item) {
    if (!confirm(item.from === this.me ? "Delete your message?" : `Delete ${item.from}'s message?`)) return;
    await this.act("delete", { room: room.name, target: item.seq });
  }

  /** Opens the report form for someone else's message. */
  reportMessage(room, item) {
    this.setPanel({ kind: "report", seq: item.seq });
  }

  async pinMessage(room, item) {
    const title = prompt("A title for this pin (optional):", "");
    if (title === null) return;
    await this.act("pin", { room: room.name, seq: item.seq, ...(title ? { title } : {}) });
  }

  async react(room, item, emoji, on) {
    await this.act("react", { room: room.name, target: item.seq, emoji, on });
  }

  async decide(room, user, approve, reason) {
    await this.act("decide_join", { room: room.name, user, approve, ...(reason ? { reason } : {}) });
    room.requests = room.requests.filter((r) => r.user !== user);
    this.drawPanel();
  }

  async ackRules(room) {
    const rules = room.pins.find((p) => (p.title || "").toLowerCase() === "rules");
    if (!rules) return;
    await this.act("ack_rules", { room: room.name, version: rules.version });
    const mine = room.members.get(this.me);
    if (mine) mine.rules_acked = rules.version;
    this.drawMain();
    if (this.panel) this.drawPanel();
  }

  needsRulesAck(room) {
    if (!room.info?.rules_ack || atLeast(room.role, "welcomer")) return false;
    const rules = room.pins.find((p) => (p.title || "").toLowerCase() === "rules");
    return !!rules && room.members.get(this.me)?.rules_acked !== rules.version;
  }

  /** Any request whose failure is only to be told. */
  async act(op, args) {
    try {
      return await this.conn.request(op, args);
    } catch (error) {
      this.toast(error.message);
      return null;
    }
  }

  typing() {
    const now = Date.now();
    if (now - this.lastTyping < 3000 || !this.current) return;
    this.lastTyping = now;
    this.conn.request("typing", { room: this.current }).catch(() => {});
  }

  /** Opens the room (or the thread) of a message found elsewhere — a
   * mention, a search result — and shows the message, loading older pages
   * of the room until it is there (at most 20 of them). */
  async openMessage(found) {
    this.setPanel(null);
    await this.open(found.room);
    const room = this.room(found.room);
    if (found.thread) { this.openThread(room, found.thread); return; }
    for (let pages = 0; !room.items.has(found.seq) && room.moreOlder !== false && pages < 20; pages++) {
      try { await this.loadOlder(room); } catch (error) { this.toast(error.message); break; }
    }
    if (!room.items.has(found.seq)) { this.toast("That message is further back than the room has loaded; scroll up to it."); return; }
    room.found = found.seq;
    this.drawMain();
    // After the timeline has laid itself out.
    requestAnimationFrame(() => {
      const node = this.mainNode.querySelector(`.msg[data-seq="${Number(found.seq)}"]`);
      node?.scrollIntoView({ block: "center" });
      node?.focus({ preventScroll: true });
    });
  }

  async openThread(room, root) {
    this.setPanel({ kind: "thread", root });
    try {
      const page = await this.conn.request("thread", { room: room.name, root, limit: 100 });
      room.takePage(page.events, this.me);
      if (this.panel?.kind === "thread" && this.panel.root === root) this.drawPanel();
    } catch (error) { this.toast(error.message); }
  }

  setPanel(panel) {
    const opening = panel?.kind === "moderate" && this.panel?.kind !== "moderate";
    this.panel = panel;
    this.drawPanel();
    const room = this.rooms.get(this.current);
    if (opening && room) this.refreshQueues(room);
    if (panel) this.panelNode.querySelector("button, input, textarea")?.focus();
  }

  toggleRooms() {
    this.shell.classList.toggle("show-rooms");
  }

  markSeen() {
    const room = this.rooms.get(this.current);
    if (room) this.markRead(room);
    this.drawRooms();
    this.updateTitle();
  }

  toast(message) {
    this.toastNode.textContent = message;
    const visibleToast = el("div", { class: "notice warn", role: "presentation" }, message);
    this.mainNode.querySelector(".toasts")?.replaceChildren(visibleToast);
    setTimeout(() => visibleToast.remove(), 6000);
  }

  async signOut() {
    this.conn.stop();
    await signin.signOut().catch(() => {});
    location.assign("/");
  }

  signedOut(why) {
    this.conn.stop();
    boot({ message: why || "You were signed out." });
  }

  passwordDialog() {
    const current = el("input", { id: "pw-old", type: "password", autocomplete: "current-password", required: true });
    const next = el("input", { id: "pw-new", type: "password", autocomplete: "new-password", required: true, minlength: 8 });
    const status = el("p", { role: "alert", class: "error" });
    const dialog = el("dialog", { "aria-labelledby": "pw-title" },
      el("form", { onsubmit: async (e) => {
        e.preventDefault();
        try {
          await signin.changePassword(current.value, next.value);
          dialog.close();
          this.toast("Password changed; your other devices are signed out.");
          this.conn.socket?.close(4000);
        } catch (error) { status.textContent = error.message; }
      } },
        el("h2", { id: "pw-title" }, "Change your password"),
        el("label", { for: "pw-old" }, "Current password"), current,
        el("label", { for: "pw-new" }, "New password (at least 8 characters)"), next, status,
        el("div", { class: "row" }, el("button", { type: "submit", class: "primary" }, "Change"), el("button", { type: "button", onclick: () => dialog.close() }, "Cancel"))));
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  }

  // ----- drawing -----

  showStatus(state, detail) {
    const words = { connecting: "connecting…", online: "online", reconnecting: "reconnecting", offline: "offline" }[state] || state;
    this.statusNode.className = `status ${state}`;
    this.statusNode.textContent = detail ? `${words}: ${detail}` : words;
  }

  updateTitle() {
    const unread = [...this.rooms.values()].reduce((n, r) => n + r.unread, 0);
    document.title = unread ? `(${unread}) Hearth` : "Hearth";
  }

  drawRooms() {
    drawRooms(this.roomsNode, this);
  }

  drawHead() {
    const room = this.rooms.get(this.current);
    const head = this.mainNode.querySelector(".roomhead");
    if (!room || !head) return;
    head.replaceWith(this.roomHead(room));
  }

  roomHead(room) {
    const tool = (kind, label, extra) => el("button", { type: "button", "aria-pressed": String(this.panel?.kind === kind), onclick: () => this.setPanel(this.panel?.kind === kind ? null : { kind }) }, label, extra);
    const queue = room.requests.length + room.held.length + (atLeast(room.role, "welcomer") ? room.reports.filter((r) => r.from !== this.me).length : 0);
    return el("div", { class: "roomhead" },
      el("h2", {}, room.info?.direct?.length || room.listed?.direct?.length ? `✉ ${visible(this.roomLabel(room))}` : `# ${visible(room.name)}`),
      el("span", { class: "topic" }, visible(room.info?.topic || room.listed?.topic || "")),
      lockedNow(room.info) ? el("span", { class: "lock", role: "status" }, lockedNow(room.info).level === "read_only" ? `🔒 Read-only${lockUntil(lockedNow(room.info))}: only moderators post` : `🔒 No new members${lockUntil(lockedNow(room.info))}`) : null,
      room.receiving ? el("div", { class: "tools" },
        tool("pins", `Pinned ${room.pins.length}`),
        tool("members", `Members ${room.members.size || room.info?.members || 0}`),
        atLeast(room.role, "welcomer") ? tool("moderate", "Moderate ", queue ? el("span", { class: "badge", "aria-label": `${queue} waiting` }, String(queue)) : null) : null,
      ) : null);
  }

  drawMain() {
    const room = this.rooms.get(this.current);
    if (!room) {
      fill(this.mainNode, el("div", { class: "notice" }, el("h2", {}, `Welcome, ${this.me}`),
        el("p", {}, "Pick a room on the left, or open one by its name. Someone who invites you can send you a link that opens their room.")));
      return;
    }
    const notices = [];
    if (room.welcome) notices.push(el("div", { class: "notice", role: "note" }, el("strong", {}, "Welcome! "), render(room.welcome, this.me),
      el("div", { class: "row" }, el("button", { type: "button", onclick: () => { room.welcome = null; this.drawMain(); } }, "Thanks"))));
    if (room.truncatedNotice) notices.push(el("div", { class: "notice warn", role: "note" }, room.truncatedNotice,
      el("button", { type: "button", class: "link", onclick: () => { room.truncatedNotice = null; this.drawMain(); } }, "OK")));
    if (room.receiving && this.needsRulesAck(room)) {
      const rules = room.pins.find((p) => (p.title || "").toLowerCase() === "rules");
      notices.push(el("div", { class: "notice warn", role: "note" },
        el("strong", {}, "This room's rules"), el("div", { class: "pin" }, render(rules.text, this.me)),
        el("div", { class: "row" }, el("button", { type: "button", class: "primary", onclick: () => this.ackRules(room) }, "I accept the rules"))));
    }
    if (!room.receiving) {
      fill(this.mainNode, this.roomHead(room), el("div", { class: "toasts" }), notices, this.outside(room));
      return;
    }
    if (room.pins.length && !room.pinsSeen) {
      room.pinsSeen = true;
      notices.push(el("div", { class: "notice", role: "note" },
        el("strong", {}, "Pinned: "), visible(room.pins.map((p) => p.title || "a note").join(" · ")),
        " ", el("button", { type: "button", class: "link", onclick: () => this.setPanel({ kind: "pins" }) }, "Read")));
    }
    this.composer = composer(this, {
      placeholder: room.listed?.direct?.length || room.info?.direct?.length ? `Message ${this.roomLabel(room)}` : `Message #${room.name}`,
      onSend: (text, editing) => (editing ? this.edit(room, editing, text) : this.send(room, text)),
    });
    this.typingNode = el("div", { class: "typing", "aria-live": "polite" });
    fill(this.mainNode, this.roomHead(room), el("div", { class: "toasts" }), notices, this.timeline.list, this.typingNode, this.composer.node);
    this.timeline.show(room);
    this.drawTyping();
    if (this.panel) this.drawPanel();
  }

  /** A room this member does not receive: why, and what they may do. */
  outside(room) {
    const refusal = room.refusal;
    if (room.pending === "requested") return el("div", { class: "notice" }, "You asked to join. A welcomer will decide; you will see it here as soon as they do.");
    if (!refusal) return el("p", { class: "loading" }, "Joining…");
    const code = refusal.code;
    if (code === "approval_required" || code === "denied") {
      const note = el("textarea", { id: "join-note", rows: 3, maxlength: 1000 });
      return el("form", { class: "notice", onsubmit: (e) => { e.preventDefault(); this.requestJoin(room, note.value); } },
        el("p", {}, code === "denied" ? refusal.message : "The welcomers of this room let new members in."),
        room.listed?.topic ? el("p", {}, "About this room: ", visible(room.listed.topic)) : null,
        el("label", { for: "join-note" }, "Tell them a little about yourself"), note,
        el("div", { class: "row" }, el("button", { type: "submit", class: "primary" }, "Ask to join")));
    }
    if (code === "not_found") return el("div", { class: "notice" }, `There is no room called “${room.name}”. `,
      el("button", { type: "button", onclick: () => this.createRoom(room.name) }, "Create it"));
    if (code === "kicked" || code === "not_member") return el("div", { class: "notice" }, refusal.message, " ",
      el("button", { type: "button", class: "primary", onclick: () => { room.refusal = null; room.epoch = null; this.join(room).catch(() => {}); } }, "Join"));
    if (code === "invite_required") return el("div", { class: "notice" }, "This room takes members by invitation. Ask a member for an invite link.");
    return el("div", { class: "notice warn" }, refusal.message || closeWords(0), " ",
      code === "banned" ? null : el("button", { type: "button", onclick: () => { room.refusal = null; this.join(room).catch(() => {}); } }, "Try again"));
  }

  drawTyping() {
    const room = this.rooms.get(this.current);
    if (!room || !this.typingNode) return;
    const now = Date.now();
    const who = [...room.typing.entries()].filter(([user, until]) => until > now && user !== this.me).map(([user]) => user);
    this.typingNode.textContent = who.length === 0 ? "" : who.length === 1 ? `${who[0]} is typing…` : who.length < 4 ? `${who.join(", ")} are typing…` : "Several people are typing…";
  }

  drawPanel() {
    const room = this.rooms.get(this.current);
    const open = !!(this.panel && (room || ["mentions", "search", "notify"].includes(this.panel.kind)));
    this.panelNode.hidden = !open;
    this.shell.classList.toggle("with-panel", open);
    if (!open) return;
    drawPanel(this.panelNode, this, room);
  }
}

async function boot(options = {}) {
  const start = route();
  let me = null;
  try {
    me = await signin.resume();
  } catch (error) {
    fill(root, el("p", { class: "loading", role: "alert" }, `${error.message} `, el("button", { type: "button", onclick: () => boot() }, "Try again")));
    return;
  }
  if (!me) me = await signin.screen(root, { invite: start.invite, signupCode: start.signup, message: options.message });
  const app = new App(me.user, start);
  window.hearth = app; // for the browser tests and the curious
  app.conn.start();
}

boot();
