// The console's service worker: the shell and its assets from the cache when the network
// is away (the page then says it is offline); the API is never cached.
const CACHE = "deltaomega-console-v1";

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(["/console/"])));
  self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || !url.pathname.startsWith("/console/")) return;
  if (event.request.mode === "navigate") {
    // the newest shell when online, the cached one when not
    event.respondWith(
      fetch(event.request)
        .then((response) => {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put("/console/", copy));
          return response;
        })
        .catch(() => caches.match("/console/")),
    );
    return;
  }
  // hashed assets never change: the cache first
  event.respondWith(
    caches.match(event.request).then(
      (hit) =>
        hit ||
        fetch(event.request).then((response) => {
          if (response.ok) {
            const copy = response.clone();
            caches.open(CACHE).then((cache) => cache.put(event.request, copy));
          }
          return response;
        }),
    ),
  );
});

// Web push: the control plane's "webpush" channel sends each critical alert here,
// encrypted for this browser; show it, and open the console's alert when it is tapped.
self.addEventListener("push", (event) => {
  let alert = { title: "Meta-ΔDΩΛ alert", body: "", url: "/console/alerts", tag: "alert" };
  try {
    alert = { ...alert, ...event.data.json() };
  } catch {
    if (event.data) alert.body = event.data.text();
  }
  event.waitUntil(
    self.registration.showNotification(alert.title, {
      body: alert.body,
      tag: alert.tag,
      icon: "/console/icon.svg",
      requireInteraction: alert.severity === "CRITICAL",
      data: { url: alert.url },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data?.url ?? "/console/alerts";
  event.waitUntil(self.clients.openWindow(url));
});
