// What the page knows of each room: its timeline as far as loaded, pins,
// members, who is online and typing, and where this page stands in it
// (`{epoch, seq}`, the resume position). Events are applied here in order;
// the views only read.

import { span } from "./dom.js";
/** Whether the server says `event` mentions `me` (by name, as the author
 *  of the thread's root, or a moderator's @room). */
export function mentionsOf(event, me) {
  return (event.mentions || []).includes(me) || !!event.mentions_room;
}

export const ROLES = ["member", "welcomer", "moderator", "owner"];
export const atLeast = (role, least) => ROLES.indexOf(role || "member") >= ROLES.indexOf(least);

export class Room {
  constructor(name) {
    this.name = name;
    this.info = null; // the join reply's room info
    this.role = null; // ours, once joined
    this.listed = null; // list_rooms' entry
    this.epoch = null;
    this.seq = 0; // the last timeline event processed
    this.items = new Map(); // seq -> message or event line, as far as loaded
    this.oldest = null; // the oldest seq loaded
    this.moreOlder = true;
    this.pins = [];
    this.members = new Map();
    this.online = new Set();
    this.typing = new Map(); // user -> until (ms)
    this.unread = 0;
    this.mentions = 0;
    this.receiving = false;
    this.pending = null; // "requested": asked to join; "denied": a decision
    this.welcome = null; // shown once after a first join
    this.requests = []; // join requests (welcomers)
    this.held = []; // held posts (moderators)
    this.reports = []; // open reports (welcomers; a member's own)
    this.truncatedNotice = null;
  }

  messages() {
    return [...this.items.values()].sort((a, b) => a.seq - b.seq);
  }

  message(seq) {
    const item = this.items.get(seq);
    return item && item.kind === "message" ? item : null;
  }

  /** The timeline without thread replies (they are in their thread). */
  main() {
    return this.messages().filter((i) => !(i.kind === "message" && i.thread));
  }

  replies(root) {
    return this.messages().filter((i) => i.kind === "message" && i.thread === root);
  }

  roleOf(user) {
    return this.members.get(user)?.role || (user === this.info?.owner ? "owner" : "member");
  }

  /** Messages as history pages give them (with `state`), kept as the truth. */
  takePage(events, me) {
    for (const event of events) {
      if (event.ev === "message") {
        const item = fromMessage(event);
        item.mentionsMe = event.from !== me && mentionsOf(event, me);
        this.items.set(event.seq, item);
      }
      else {
        const line = describe(event);
        if (line) this.items.set(event.seq, { kind: "event", seq: event.seq, ts: event.ts, text: line, ev: event.ev });
      }
      if (this.oldest === null || event.seq < this.oldest) this.oldest = event.seq;
    }
  }

  /**
   * Applies a live or replayed timeline event. Returns what changed, for the
   * views: `{seq}` of the item, or `{all: true}`.
   */
  apply(event, me) {
    if (event.seq !== undefined) {
      if (event.seq <= this.seq) return null; // seen: nothing twice
      this.seq = event.seq;
    }
    if (this.oldest === null && event.seq) this.oldest = event.seq;
    switch (event.ev) {
      case "message": {
        const item = fromMessage(event);
        this.items.set(event.seq, item);
        this.typing.delete(event.from);
        if (event.thread) {
          const root = this.message(event.thread);
          if (root) { root.replies = (root.replies || 0) + 1; root.lastReply = event.seq; }
        }
        return { seq: event.seq, root: event.thread, item, mine: event.from === me, mentions: mentionsOf(event, me) };
      }
      case "edit": {
        const target = this.message(event.target);
        if (target) { target.text = event.text; target.edited = event.ts; }
        this.pins = this.pins.map((p) => (p.seq === event.target ? { ...p, text: event.text } : p));
        return { seq: event.target, root: target?.thread };
      }
      case "delete": {
        const target = this.message(event.target);
        if (target) { target.deleted = true; target.text = "(deleted)"; target.reactions = new Map(); }
        this.pins = this.pins.map((p) => (p.seq === event.target ? { ...p, deleted: true, text: "(deleted)" } : p));
        return { seq: event.target, root: target?.thread };
      }
      case "erased": {
        const who = event.user;
        for (const seq of event.messages || []) {
          const target = this.message(seq);
          // Kept by the room, from a former member; or a tombstone.
          if (event.former_member) { if (target) Object.assign(target, { from: FORMER_MEMBER, erased: true }); continue; }
          if (target) Object.assign(target, { deleted: true, erased: true, text: "(deleted)", reactions: new Map() });
          this.pins = this.pins.map((p) => (p.seq === seq ? { ...p, deleted: true, text: "(deleted)" } : p));
        }
        for (const { target: seq, emoji } of event.reactions || []) {
          const entry = this.message(seq)?.reactions.get(emoji);
          if (entry?.users.delete(who)) entry.count -= 1;
          if (entry && entry.count <= 0) this.message(seq).reactions.delete(emoji);
        }
        this.held = this.held.filter((h) => !(h.user === who && (event.held || []).includes(h.cmid)));
        this.reports = this.reports.map((r) => ((event.messages || []).includes(r.message) ? { ...r, text: "(deleted)" } : r));
        this.members.delete(who);
        this.online.delete(who);
        break;
      }
      case "reaction": {
        const target = this.message(event.target);
        if (target) {
          const entry = target.reactions.get(event.emoji) || { count: 0, users: new Set() };
          if (event.on && !entry.users.has(event.from)) { entry.count += 1; entry.users.add(event.from); }
          if (!event.on && entry.count > 0) { entry.count -= 1; entry.users.delete(event.from); }
          if (entry.count > 0) target.reactions.set(event.emoji, entry); else target.reactions.delete(event.emoji);
        }
        return { seq: event.target, root: target?.thread };
      }
      case "pin": {
        const replaced = event.replaces;
        this.pins = this.pins.filter((p) => p.pin !== replaced && p.pin !== event.pin.pin);
        this.pins.push(event.pin);
        break;
      }
      case "unpin":
        this.pins = this.pins.filter((p) => p.pin !== event.pin);
        break;
      case "member_joined":
        this.members.set(event.from, { ...(this.members.get(event.from) || {}), user: event.from, role: event.role || "member", joined_at: event.ts, newcomer: true });
        if (event.lockdown) this.info = { ...(this.info || {}), lockdown: event.lockdown };
        break;
      case "direct_started":
        for (const user of event.members || []) this.members.set(user, { ...(this.members.get(user) || {}), user, role: "member", joined_at: event.ts });
        break;
      case "member_left":
        this.members.delete(event.user || event.from);
        this.online.delete(event.user || event.from);
        break;
      case "role": {
        const member = this.members.get(event.user);
        if (member) Object.assign(member, { role: event.role, role_expires_at: event.expires_at, title: event.title ?? member.title });
        if (event.user === me) this.role = event.role;
        break;
      }
      case "room_updated":
        this.info = { ...(this.info || {}), ...event.settings };
        if (event.settings?.lockdown?.level === "off") this.info.lockdown = null;
        break;
      case "moderation":
        if (["kick", "ban"].includes(event.action) && event.user) { this.members.delete(event.user); this.online.delete(event.user); }
        if (event.action === "mute" && this.members.get(event.user)) this.members.get(event.user).muted_until = event.until;
        if (event.action === "unmute" && this.members.get(event.user)) delete this.members.get(event.user).muted_until;
        if (event.action === "reject") this.requests = this.requests.filter((r) => r.user !== event.user);
        if (event.action === "delete" && event.held) this.held = this.held.filter((h) => h.cmid !== event.held);
        if (event.action === "resolve") this.reports = this.reports.filter((r) => !(event.reports || []).includes(r.report));
        if (event.action === "warn" && event.escalation && this.members.get(event.user)) {
          if (event.escalation.action === "mute") this.members.get(event.user).muted_until = event.escalation.until;
          else { this.members.delete(event.user); this.online.delete(event.user); }
        }
        break;
      case "report":
        this.reports = this.reports.filter((r) => r.report !== event.seq).concat([{
          report: event.seq, message: event.message, author: event.author, text: event.text, from: event.from,
          category: event.category, note: event.note, at: event.ts,
        }]);
        break;
      case "join_request":
        this.requests = this.requests.filter((r) => r.user !== event.from).concat([{ user: event.from, note: event.note, at: event.ts }]);
        break;
      case "held":
        this.held = this.held.filter((h) => !(h.user === event.from && h.cmid === event.cmid)).concat([{ user: event.from, cmid: event.cmid, text: event.text, thread: event.thread, at: event.ts }]);
        break;
      default:
        break;
    }
    if (event.ev === "member_joined" && event.approved_by) this.requests = this.requests.filter((r) => r.user !== event.from);
    if (event.ev === "message" && event.released_by) this.held = this.held.filter((h) => h.cmid !== event.cmid);
    const line = describe(event);
    if (line && event.seq) this.items.set(event.seq, { kind: "event", seq: event.seq, ts: event.ts, text: line, ev: event.ev });
    return { seq: event.seq, all: true };
  }
}

function fromMessage(event) {
  const state = event.state || {};
  const reactions = new Map();
  for (const r of state.reactions || []) reactions.set(r.emoji, { count: r.count, users: new Set(r.users || []) });
  return {
    kind: "message", seq: event.seq, ts: event.ts, from: event.from, text: event.text, cmid: event.cmid,
    thread: event.thread, edited: state.edited_at, deleted: !!state.deleted, erased: !!state.erased, reactions,
    replies: state.replies || 0, lastReply: state.last_reply, prompt: !!event.prompt, releasedBy: event.released_by,
    imported: event.imported,
  };
}

/** " until <when>" of a lockdown, or " until lifted". */
export function lockUntil(lockdown) {
  return lockdown.until ? ` until ${new Date(lockdown.until).toLocaleString()}` : " until lifted";
}

/** The room's lockdown holding now, if any. */
export function lockedNow(info) {
  const l = info?.lockdown;
  return l && l.level !== "off" && (!l.until || l.until > Date.now()) ? l : null;
}

/** Whom a room that keeps erased members' words shows them as from. */
export const FORMER_MEMBER = "former-member";

/** Report categories as members read them, in the order a form offers them. */
export const CATEGORIES = {
  spam: "spam or advertising", harassment: "harassment", hate: "hate", sexual: "sexual content",
  violence: "violence or threats", self_harm: "someone may be at risk", off_topic: "off topic", other: "something else",
};
const OUTCOMES = { dismiss: "dismissed", delete: "message deleted", warn: "author warned", mute: "author muted", kick: "author removed", ban: "author banned" };
const ESCALATED = { mute: "muted", kick: "removed", ban: "banned" };

const ROLE_NAMES = { member: "a member", welcomer: "a welcomer", moderator: "a moderator", owner: "the owner" };

/** One line for a timeline event that is not a message; null for those that change another item. */
export function describe(event) {
  const until = event.until ? ` until ${new Date(event.until).toLocaleString()}` : "";
  const why = event.reason ? ` (${event.reason})` : "";
  switch (event.ev) {
    case "member_joined":
      return `${event.from} joined${event.approved_by ? `, let in by ${event.approved_by}` : event.invite ? " with an invite" : ""}${event.lockdown ? ` — so many at once that the room takes no new members${lockUntil(event.lockdown)} (a raid?)` : ""}`;
    case "member_left": return `${event.user || event.from} left`;
    case "erased": return `${event.user} erased their account: ${event.former_member ? "what they wrote here stays, from a former member" : "what they wrote here is gone"}`;
    case "direct_started": return `${event.from} started this conversation with ${(event.members || []).filter((m) => m !== event.from).join(", ")}`;
    case "role":
      return `${event.from} made ${event.user} ${ROLE_NAMES[event.role] || event.role}${event.expires_at ? ` for ${span(event.expires_at - Date.now())}` : ""}${event.title ? ` — “${event.title}”` : ""}`;
    case "room_updated": {
      const lockdown = event.settings?.lockdown;
      if (lockdown?.level === "off") return `${event.from} lifted the lockdown`;
      if (lockdown) return `${event.from} locked the room: ${lockdown.level === "read_only" ? "read-only below moderator" : "no new members"}${lockUntil(lockdown)}`;
      return `${event.from} changed the room's settings: ${Object.keys(event.settings || {}).join(", ").replaceAll("_", " ")}`;
    }
    case "pin": return `${event.from} pinned ${event.pin?.title ? `“${event.pin.title}”` : "a note"}`;
    case "unpin": return `${event.from} unpinned a note`;
    case "moderation": {
      const words = {
        kick: `${event.from} removed ${event.user} from the room${why}`,
        ban: `${event.from} banned ${event.user}${until}${why}`,
        unban: `${event.from} lifted ${event.user}'s ban`,
        mute: `${event.from} muted ${event.user}${until}${why}`,
        unmute: `${event.from} unmuted ${event.user}`,
        reject: `${event.from} declined ${event.user}'s request to join${why}`,
        create_invite: `${event.from} made an invite`,
        revoke_invite: `${event.from} revoked an invite`,
        delete: event.held ? `${event.from} dropped a held post${event.user ? ` by ${event.user}` : ""}${why}` : `${event.from} deleted a message${why}`,
        warn: `${event.from} warned ${event.user}${why}${event.escalation ? ` — and ${ESCALATED[event.escalation.action] || event.escalation.action} them${event.escalation.until ? ` until ${new Date(event.escalation.until).toLocaleString()}` : ""}, as the room does at this many warnings` : ""}`,
        unwarn: `${event.from} lifted a warning of ${event.user}`,
        resolve: `${event.from} resolved the reports on a message by ${event.user}: ${OUTCOMES[event.outcome] || event.outcome}${why}`,
      };
      return words[event.action] || `${event.from}: ${event.action}${why}`;
    }
    case "join_request": return `${event.from} asks to join: “${event.note || ""}”`;
    case "ack": return `${event.from} acknowledged the rules`;
    case "arrived": return `${event.from} arrived for the first time`;
    case "held": return `A post by ${event.from} is held for review`;
    case "report": return `${event.from} reported a message by ${event.author} (${CATEGORIES[event.category] || event.category})`;
    case "prompt": return event.text ? `${event.from} scheduled a prompt: “${event.text}”` : `${event.from} cancelled a prompt`;
    default: return null;
  }
}
