// The list of rooms at the left (a screen of its own on a phone): the
// rooms this member is in with unread counts and mentions, their direct
// conversations (named by who else is in them), the others they may join,
// and a form to open or create one.

import { el, fill } from "./dom.js";
import { visible } from "./text.js";

export function drawRooms(node, app) {
  const isDirect = (r) => !!(r.info?.direct?.length || r.listed?.direct?.length);
  const joined = [...app.rooms.values()].filter((r) => r.role || r.listed?.role);
  const mine = joined.filter((r) => !isDirect(r)).sort((a, b) => a.name.localeCompare(b.name));
  const direct = joined.filter(isDirect).sort((a, b) => app.roomLabel(a).localeCompare(app.roomLabel(b)));
  const others = [...app.rooms.values()].filter((r) => !(r.role || r.listed?.role) && r.listed).sort((a, b) => a.name.localeCompare(b.name));
  const item = (room) => {
    const name = app.roomLabel(room);
    const label = [isDirect(room) ? `conversation with ${name}` : name, room.unread ? `${room.unread} unread` : "", room.mentions ? `${room.mentions} mentioning you` : "", room.pending === "requested" ? "request pending" : ""].filter(Boolean).join(", ");
    return el("li", {},
      el("button", { type: "button", "aria-current": String(app.current === room.name), "aria-label": label, onclick: () => app.open(room.name) },
        el("span", { "aria-hidden": "true" }, isDirect(room) ? "✉" : "#"),
        el("span", { class: "name" }, visible(name)),
        room.mentions ? el("span", { class: "badge mention", "aria-hidden": "true" }, `@${room.mentions}`) : null,
        room.unread ? el("span", { class: "badge", "aria-hidden": "true" }, `${room.unread}${room.unreadMore ? "+" : ""}`) : null,
        room.pending === "requested" ? el("span", { class: "hint", "aria-hidden": "true" }, "asked") : null));
  };
  const typed = node.querySelector("#room-name");
  const input = el("input", { id: "room-name", name: "room", placeholder: "room name", autocomplete: "off", required: true, pattern: "[A-Za-z0-9_.\\-]{1,64}", title: "letters, digits, _ . - (up to 64)" });
  // Drawn again as rooms change: what the member was typing stays.
  if (typed) input.value = typed.value;
  const focused = typed && document.activeElement === typed;
  queueMicrotask(() => { if (focused) input.focus(); });
  fill(node,
    el("nav", { "aria-label": "Rooms" },
      el("h2", {}, "Your rooms"),
      mine.length ? el("ul", {}, mine.map(item)) : el("p", { class: "hint" }, "You are in no room yet."),
      direct.length ? [el("h2", {}, "Direct messages"), el("ul", {}, direct.map(item))] : null,
      others.length ? [el("h2", {}, "Other rooms"), el("ul", {}, others.map(item))] : null,
      el("form", { onsubmit: (e) => { e.preventDefault(); app.open(input.value.trim()); input.value = ""; } },
        el("label", { for: "room-name" }, "Open or create a room"),
        input,
        el("div", { class: "row" },
          el("button", { type: "submit" }, "Open"),
          el("button", { type: "button", onclick: () => { if (input.reportValidity()) app.createRoom(input.value.trim()); } }, "Create")))));
}
