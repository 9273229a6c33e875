// The live connection: one WebSocket speaking hearth.v1.json, requests
// matched to replies by id, events handed to the app, and reconnecting by
// itself with back-off. What happens after a reconnect (joining every room
// again from its last seq) is the app's: see `onOpen`.

import * as signin from "./signin.js";

/** Close codes in words, and whether to try again (PROTOCOL.md, "Close codes"). */
const CLOSES = {
  1002: ["This page broke the protocol (a bug).", "slow"],
  1007: ["This page sent text the server could not read (a bug).", "slow"],
  1009: ["A message was too big for the server.", "slow"],
  4000: ["The server is restarting.", "retry"],
  4001: ["You were signed out: your sign-in is no longer valid here (a password change signs out every other device).", "auth"],
  4002: ["Your sign-in needed renewing.", "renew"],
  4003: ["This page sent something the server did not understand (a bug).", "slow"],
  4005: ["This page sent the wrong kind of frame (a bug).", "slow"],
  4006: ["Your connection fell behind the room.", "retry"],
  4007: ["The connection was quiet for too long.", "retry"],
  4008: ["Too many requests at once; pausing.", "slow"],
  4009: ["The server is full right now.", "retry"],
  4010: ["You have too many Hearth windows open; close one.", "slow"],
  4011: ["Your account was disabled by the server's operator.", "stop"],
  4500: ["The server hit a bug.", "retry"],
};

export function closeWords(code, reason) {
  const [words] = CLOSES[code] || ["The connection was lost.", "retry"];
  const detail = reason && code === 4011 ? ` (${reason.replace(/^account_disabled:\s*/, "")})` : "";
  return words + detail;
}

export class Connection {
  constructor({ onEvent, onOpen, onStatus, onSignedOut }) {
    Object.assign(this, { onEvent, onOpen, onStatus, onSignedOut });
    this.nextId = 1;
    this.pending = new Map();
    this.socket = null;
    this.attempt = 0;
    this.stopped = false;
    this.hello = null;
    this.renewTimer = null;
    window.addEventListener("online", () => { if (!this.socket) this.connectNow(); });
  }

  status(state, detail = "") {
    this.state = state;
    this.onStatus?.(state, detail);
  }

  async start() {
    this.stopped = false;
    await this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.renewTimer);
    this.socket?.close(1000);
  }

  connectNow() {
    clearTimeout(this.retryTimer);
    clearInterval(this.countdown);
    this.connect();
  }

  async connect() {
    if (this.stopped || this.socket) return;
    this.status("connecting");
    let ticket;
    try {
      ticket = await signin.ticket();
    } catch (error) {
      if (error.status === 401 || error.status === 403 || error.code === "signed_out" || error.code === "unauthorized" || error.code === "token_expired") {
        this.stopped = true;
        this.onSignedOut?.(error.message);
        return;
      }
      this.retry(error.message || "The server cannot be reached.");
      return;
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/?ticket=${encodeURIComponent(ticket)}`, "hearth.v1.json");
    this.socket = socket;
    socket.onmessage = (message) => this.receive(message.data);
    socket.onclose = (close) => this.closed(socket, close.code, close.reason);
  }

  receive(data) {
    let frame;
    try { frame = JSON.parse(data); } catch { return; }
    if (frame.ev === "hello") {
      this.hello = frame;
      this.attempt = 0;
      this.status("online");
      this.scheduleRenew();
      this.onOpen?.(frame);
      return;
    }
    if (frame.ev) { this.onEvent?.(frame); return; }
    const waiting = this.pending.get(frame.id);
    if (!waiting) return;
    this.pending.delete(frame.id);
    if (frame.err) waiting.reject(Object.assign(new Error(frame.err.message), frame.err));
    else waiting.resolve(frame.ok ?? {});
  }

  closed(socket, code, reason) {
    if (this.socket !== socket) return;
    this.socket = null;
    clearTimeout(this.renewTimer);
    for (const waiting of this.pending.values()) {
      waiting.reject(Object.assign(new Error("The connection was lost before the server answered."), { code: "disconnected" }));
    }
    this.pending.clear();
    if (this.stopped) return;
    const [, what] = CLOSES[code] || [null, "retry"];
    const words = closeWords(code, reason);
    if (what === "stop") { this.stopped = true; this.status("offline", words); return; }
    if (what === "auth") {
      // Maybe only this token was revoked: the cookie may still sign in.
      signin.resume().then((me) => {
        if (me) this.retry(words, 0);
        else { this.stopped = true; this.onSignedOut?.(words); }
      }, () => this.retry(words));
      return;
    }
    if (what === "renew") { this.retry(words, 0); return; }
    this.retry(words, what === "slow" ? 30_000 : undefined);
  }

  /** Tries again after a back-off (1 s, 2 s, 4 s … 30 s, with jitter), counting down. */
  retry(why, fixed) {
    if (this.stopped) return;
    const base = fixed ?? Math.min(30_000, 1000 * 2 ** this.attempt);
    const delay = fixed === 0 ? 0 : Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt += 1;
    const until = Date.now() + delay;
    const tick = () => this.status("reconnecting", `${why} Trying again in ${Math.max(0, Math.ceil((until - Date.now()) / 1000))} s.`);
    tick();
    clearInterval(this.countdown);
    this.countdown = setInterval(tick, 1000);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => { clearInterval(this.countdown); this.connect(); }, delay);
  }

  /** Hands the connection a fresh token a minute before its own expires. */
  scheduleRenew() {
    clearTimeout(this.renewTimer);
    const wait = Math.max(5_000, signin.expiresAt() - Date.now() - 60_000);
    this.renewTimer = setTimeout(async () => {
      try {
        const token = await signin.token();
        await this.request("auth", { token });
        this.scheduleRenew();
      } catch {
        this.renewTimer = setTimeout(() => this.scheduleRenew(), 15_000);
      }
    }, Math.min(wait, 2 ** 31 - 1));
  }

  /** Sends `op` with `args`; resolves with the reply's `ok`, rejects with its `err`. */
  request(op, args = {}) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN || !this.hello) {
      return Promise.reject(Object.assign(new Error("Not connected right now."), { code: "disconnected" }));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ id, op, ...args }));
    });
  }
}
