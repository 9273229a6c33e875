// The page's service worker: shows a notification the server pushed while
// the member was away (Web Push; the server encrypts it for this device),
// and opens its room on a click. Member text only ever as a notification's
// plain text, never as markup.

self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  const room = typeof data.room === "string" ? data.room : "";
  const from = typeof data.from === "string" ? data.from : "Someone";
  const title = {
    mention: `${from} mentioned you in #${room}`,
    direct: `${from} wrote to you`,
    queue: `Someone is waiting for a welcomer in #${room}`,
    message: `${from} wrote in #${room}`,
  }[data.kind] || `New in #${room}`;
  const body = typeof data.text === "string" ? data.text : "Open Hearth to read it.";
  // One notification per room: a newer one replaces it.
  event.waitUntil(self.registration.showNotification(title, { body, tag: room, data: { room } }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const room = event.notification.data?.room || "";
  const url = room ? `/r/${encodeURIComponent(room)}` : "/";
  event.waitUntil((async () => {
    const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const page of pages) {
      if (new URL(page.url).origin === self.location.origin) {
        await page.focus();
        if ("navigate" in page) await page.navigate(url);
        return;
      }
    }
    await self.clients.openWindow(url);
  })());
});
