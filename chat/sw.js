// Parley's service worker (served at /sw.js by chat/pwa.py, which puts SHELL, VERSION and
// STATIC_URL above this line). It caches the app shell and static files only — never
// pages, API answers or messages — and shows Web Push notifications (SPEC §6.2).
const CACHE = `parley-shell-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name.startsWith("parley-shell-") && name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

// Static files: from the cache, else the network (and kept). Everything else goes to the
// network untouched.
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !url.pathname.startsWith(STATIC_URL)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const hit = await cache.match(event.request);
    if (hit) return hit;
    const response = await fetch(event.request);
    if (response.ok) cache.put(event.request, response.clone());
    return response;
  })());
});

// Web Push: at least once from the server, so a repeat (same message id) is dropped.
const seen = new Set();
self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = {};
  }
  event.waitUntil((async () => {
    const tag = data.id ? `parley-${data.id}` : "parley";
    if (data.id) {
      const shown = await self.registration.getNotifications({ tag });
      if (seen.has(data.id) || shown.length) return;
      seen.add(data.id);
    }
    const title = [data.sender, data.room_name || data.room].filter(Boolean).join(" · ") || "Parley";
    await self.registration.showNotification(title, {
      body: data.excerpt || "",
      tag,
      icon: SHELL.find((path) => path.includes("icon-192")),
      data: { url: data.url || "/" },
    });
  })());
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(event.notification.data && event.notification.data.url || "/", self.location.origin).href;
  event.waitUntil((async () => {
    for (const client of await self.clients.matchAll({ type: "window", includeUncontrolled: true })) {
      if (new URL(client.url).origin === self.location.origin && "navigate" in client) {
        await client.focus();
        return client.navigate(url);
      }
    }
    return self.clients.openWindow(url);
  })());
});
