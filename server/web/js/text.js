// A member's text, made safe to show: control characters and bidirectional
// overrides are shown as visible marks (as the terminal client does) instead
// of being obeyed, links become anchors only for http(s), and @mentions of
// members are marked. Everything is built as text nodes.

import { el } from "./dom.js";

const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/;
const LINK = /\bhttps?:\/\/[^\s<>"'`]+/gi;

function isControl(ch) {
  const c = ch.codePointAt(0);
  return (c < 0x20 && ch !== "\n" && ch !== "\t") || (c >= 0x7f && c < 0xa0);
}

function hex(ch) {
  return ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
}

/** Plain text with every control and bidi mark made visible: for places
 *  that take only a string (titles, names, notifications). */
export function visible(text) {
  let out = "";
  for (const ch of String(text ?? "")) {
    if (isControl(ch)) out += ch.codePointAt(0) < 0x20 ? `^${String.fromCharCode(ch.codePointAt(0) + 64)}` : `<U+${hex(ch)}>`;
    else if (BIDI.test(ch)) out += `<U+${hex(ch)}>`;
    else out += ch;
  }
  return out;
}

/** Nodes for a run of text with marks made visible and mentions marked. */
function plain(text, me) {
  const nodes = [];
  let run = "";
  const flush = () => { if (run) nodes.push(...mentions(run, me)); run = ""; };
  for (const ch of text) {
    if (isControl(ch) || BIDI.test(ch)) {
      flush();
      const shown = isControl(ch) && ch.codePointAt(0) < 0x20 ? `^${String.fromCharCode(ch.codePointAt(0) + 64)}` : `<U+${hex(ch)}>`;
      nodes.push(el("span", { class: "ctl", title: `control character U+${hex(ch)}` }, shown));
    } else run += ch;
  }
  flush();
  return nodes;
}

function mentions(text, me) {
  if (!me) return [text];
  const nodes = [];
  const pattern = new RegExp(`@${me.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\b`, "gi");
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    nodes.push(text.slice(last, match.index), el("span", { class: "mention-name" }, match[0]));
    last = match.index + match[0].length;
  }
  nodes.push(text.slice(last));
  return nodes.filter((n) => n !== "");
}

/** The nodes that show a member's `text`. */
export function render(text, me) {
  const source = String(text ?? "");
  const nodes = [];
  let last = 0;
  for (const match of source.matchAll(LINK)) {
    // Trailing punctuation belongs to the sentence, not the link.
    const url = match[0].replace(/[.,;:!?)\]]+$/, "");
    nodes.push(...plain(source.slice(last, match.index), me));
    let safe = null;
    try {
      const parsed = new URL(url);
      if (parsed.protocol === "http:" || parsed.protocol === "https:") safe = parsed.href;
    } catch { /* not a URL after all: shown as text */ }
    if (safe && !BIDI.test(url)) {
      nodes.push(el("a", { href: safe, rel: "noopener noreferrer nofollow", target: "_blank" }, url));
    } else nodes.push(...plain(url, me));
    last = match.index + url.length;
  }
  nodes.push(...plain(source.slice(last), me));
  return nodes;
}
