// Signing in from the browser (PROTOCOL.md, "Signing in from a browser"):
// the long-lived credential stays in an HttpOnly cookie the server set; this
// module only ever holds a short access token, in memory, and trades it for
// one-use WebSocket tickets.

import { el, fill } from "./dom.js";

let access = null; // {user, token, expires_at}

async function post(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body ?? {}),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw Object.assign(new Error("The server cannot be reached. Check your connection; this page tries again."), { code: "offline" });
  }
  let answer = {};
  try { answer = await response.json(); } catch { /* not JSON: a plain-text refusal */ }
  if (!response.ok) {
    throw Object.assign(new Error(answer.message || `The server answered ${response.status}.`), {
      code: answer.error || String(response.status),
      status: response.status,
    });
  }
  return answer;
}

/** The signed-in member, or null: asks the server with the cookie. */
export async function resume() {
  try {
    access = await post("/auth/session/refresh");
    return access;
  } catch (error) {
    if (error.code === "offline" || error.status >= 500) throw error;
    access = null;
    return null;
  }
}

/** A fresh access token, refreshed a minute before it expires. */
export async function token() {
  if (!access || access.expires_at - Date.now() < 60_000) {
    access = await post("/auth/session/refresh");
  }
  return access.token;
}

export function user() {
  return access?.user ?? null;
}

export function expiresAt() {
  return access?.expires_at ?? 0;
}

/** A one-use ticket for the WebSocket URL. */
export async function ticket() {
  const bearer = await token();
  const response = await fetch("/ticket", { method: "POST", headers: { authorization: `Bearer ${bearer}` }, cache: "no-store" });
  if (!response.ok) {
    const why = (await response.text()).trim();
    throw Object.assign(new Error(why || `no ticket (${response.status})`), { status: response.status });
  }
  return (await response.json()).ticket;
}

/** Downloads `path` (an export) as the file `name`: fetched with the
 * access token, saved from memory, so no token goes into a URL. */
export async function download(path, name) {
  const bearer = await token();
  const response = await fetch(path, { headers: { authorization: `Bearer ${bearer}` }, cache: "no-store" });
  if (!response.ok) throw new Error((await response.text()).trim() || `no export (${response.status})`);
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export async function signOut() {
  try { await post("/auth/session/logout"); } finally { access = null; }
}

export async function changePassword(password, newPassword) {
  access = await post("/auth/session/password", { password, new_password: newPassword });
}

/** Draws the sign-in screen into `root`; resolves once signed in. */
export function screen(root, { invite, signupCode, message } = {}) {
  return new Promise((resolve) => {
    // A link that carries a sign-up code is for someone without an account yet.
    let mode = signupCode ? "register" : "login";
    const draw = () => {
      const status = el("p", { class: "error", role: "alert", id: "signin-error" });
      if (message) status.textContent = message;
      const fields = {
        login: [
          field("Name", "name", "text", "username"),
          field("Password", "password", "password", "current-password"),
        ],
        register: [
          field("Name", "name", "text", "username", "1–32 letters, digits, _ . -"),
          field("Password", "password", "password", "new-password", "At least 8 characters"),
          field("Invitation code", "invite", "text", "off", "From whoever invited you (leave empty if the server is open)", signupCode),
        ],
        token: [field("Access token", "token", "password", "off", "A token the server's operator gave you; pasted once, kept by the browser in a cookie this page cannot read")],
      }[mode];
      const submit = async (event) => {
        event.preventDefault();
        const data = Object.fromEntries(new FormData(event.target));
        const button = event.target.querySelector("button[type=submit]");
        button.disabled = true;
        status.textContent = "";
        try {
          if (mode === "login") access = await post("/auth/session/login", { name: data.name, password: data.password });
          else if (mode === "register") access = await post("/auth/session/register", { name: data.name, password: data.password, invite: data.invite || undefined });
          else access = await post("/auth/session/token", { token: data.token.trim() });
          resolve(access);
        } catch (error) {
          status.textContent = error.message;
          button.disabled = false;
        }
      };
      const tab = (name, label) => el("button", {
        type: "button", role: "tab", "aria-selected": String(mode === name),
        onclick: () => { mode = name; message = null; draw(); },
      }, label);
      fill(root, el("main", { class: "signin" },
        el("h1", {}, el("img", { src: iconUrl(), alt: "" }), "Hearth"),
        invite ? el("p", {}, `You were invited to ${invite.room ? `the room “${invite.room}”` : "a room"}. Sign in or create an account to join.`) : null,
        el("div", { class: "tabs", role: "tablist", "aria-label": "How to sign in" },
          tab("login", "Sign in"), tab("register", "Create an account"), tab("token", "Use a token")),
        el("form", { onsubmit: submit, "aria-describedby": "signin-error" },
          fields,
          el("button", { type: "submit", class: "primary" }, { login: "Sign in", register: "Create account", token: "Continue" }[mode])),
        status));
      root.querySelector("input")?.focus();
    };
    draw();
  });
}

function field(label, name, type, autocomplete, hint, value) {
  const id = `f-${name}`;
  return [
    el("label", { for: id }, label),
    el("input", { id, name, type, autocomplete, required: name !== "invite", value: value || undefined, "aria-describedby": hint ? `${id}-hint` : undefined }),
    hint ? el("div", { class: "hint", id: `${id}-hint` }, hint) : null,
  ];
}

export function iconUrl() {
  return new URL("../icon.svg", import.meta.url).pathname;
}
