// An accessibility check the browser tests run in the page: the serious and
// critical kinds of problems axe-core reports, written for Hearth's tests.
// Evaluates to a list of problems, each naming the element.
(() => {
  const problems = [];
  const describe = (el) => {
    const id = el.id ? `#${el.id}` : "";
    const cls = el.className && typeof el.className === "string" ? `.${el.className.trim().split(/\s+/).join(".")}` : "";
    const text = (el.textContent || "").trim().slice(0, 30);
    return `<${el.tagName.toLowerCase()}${id}${cls}>${text ? ` "${text}"` : ""}`;
  };
  const shown = (el) => {
    if (el.closest("[hidden], [aria-hidden=true]")) return false;
    const style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden") return false;
    const rect = el.getBoundingClientRect();
    return rect.width > 0 && rect.height > 0 && el.checkVisibility({ opacityProperty: true });
  };
  const byId = (id) => document.getElementById(id);
  const nameOf = (el) => {
    const labelledby = el.getAttribute("aria-labelledby");
    if (labelledby) return labelledby.split(/\s+/).map((id) => byId(id)?.textContent || "").join(" ").trim();
    if (el.getAttribute("aria-label")?.trim()) return el.getAttribute("aria-label").trim();
    if (["INPUT", "SELECT", "TEXTAREA"].includes(el.tagName)) {
      const label = (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`)) || el.closest("label");
      if (label?.textContent.trim()) return label.textContent.trim();
      return el.getAttribute("title")?.trim() || "";
    }
    if (el.tagName === "IMG") return el.getAttribute("alt") ?? null;
    return (el.textContent || "").trim() || el.getAttribute("title")?.trim() || "";
  };

  if (!document.documentElement.lang) problems.push("html-has-lang: the document names no language");
  if (!document.title.trim()) problems.push("document-title: the document has no title");

  const ids = new Map();
  for (const el of document.querySelectorAll("[id]")) ids.set(el.id, (ids.get(el.id) || 0) + 1);
  for (const [id, n] of ids) if (n > 1) problems.push(`duplicate-id: ${id} is used ${n} times`);
  for (const attr of ["aria-labelledby", "aria-describedby", "aria-controls"]) {
    for (const el of document.querySelectorAll(`[${attr}]`)) {
      for (const id of el.getAttribute(attr).split(/\s+/)) if (!byId(id)) problems.push(`aria-valid-attr-value: ${attr}=${id} on ${describe(el)} names nothing`);
    }
  }
  for (const img of document.querySelectorAll("img")) if (shown(img) && img.getAttribute("alt") === null) problems.push(`image-alt: ${describe(img)}`);
  for (const el of document.querySelectorAll("button, a[href], [role=button], [role=tab]")) {
    if (shown(el) && !nameOf(el)) problems.push(`button-name / link-name: ${describe(el)} has no accessible name`);
  }
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || !shown(el)) continue;
    if (!nameOf(el)) problems.push(`label: ${describe(el)} has no label`);
  }
  for (const el of document.querySelectorAll("button button, a button, button a")) problems.push(`nested-interactive: ${describe(el)}`);

  // Colour contrast (WCAG AA): every shown element with text of its own,
  // against the background its ancestors paint, opacity included.
  const parse = (color) => {
    const m = color.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return { r, g, b, a };
  };
  const blend = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a), b: top.b * top.a + bottom.b * (1 - top.a), a: 1,
  });
  const background = (el) => {
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const bg = parse(getComputedStyle(node).backgroundColor);
      if (bg && bg.a > 0) layers.push(bg);
      if (bg && bg.a >= 1) break;
    }
    let color = { r: 255, g: 255, b: 255, a: 1 };
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    if (!layers.length || layers[layers.length - 1].a < 1) color = dark ? { r: 0, g: 0, b: 0, a: 1 } : color;
    for (const layer of layers.reverse()) color = blend(layer, color);
    return color;
  };
  const opacity = (el) => {
    let o = 1;
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) o *= Number(getComputedStyle(node).opacity);
    return o;
  };
  const luminance = ({ r, g, b }) => {
    const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  for (const el of document.querySelectorAll("body *")) {
    const ownText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!ownText || !shown(el) || el.closest("svg")) continue;
    const style = getComputedStyle(el);
    const bg = background(el);
    const fg0 = parse(style.color);
    const fg = blend({ ...fg0, a: fg0.a * opacity(el) }, bg);
    const [l1, l2] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const need = large ? 3 : 4.5;
    if (ratio < need) problems.push(`color-contrast: ${describe(el)} is ${ratio.toFixed(2)}:1, needs ${need}:1`);
  }
  return problems;
})()
