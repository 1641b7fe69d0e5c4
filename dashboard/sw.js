// ProxyGate dashboard service worker: keeps the app shell for offline use. The cache is named
// after a hash of the assets (filled in by the gateway), so a new binary brings a new cache and
// the old one is dropped. Statistics (/admin/*) always go to the network.
const VERSION = '__ASSETS_VERSION__';
const PREFIX = 'proxygate-dashboard-';
const CACHE = PREFIX + VERSION;
const SHELL = [
  '/dashboard',
  '/dashboard/app.css',
  '/dashboard/app.js',
  '/dashboard/manifest.webmanifest',
  '/dashboard/icon.svg',
  '/dashboard/icon-192.png',
  '/dashboard/icon-512.png',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(
        keys.filter((k) => k.startsWith(PREFIX) && k !== CACHE).map((k) => caches.delete(k)),
      ))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin) return;
  if (url.pathname !== '/dashboard' && !url.pathname.startsWith('/dashboard/')) return;
  const key = url.pathname === '/dashboard/' ? '/dashboard' : url.pathname;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const hit = await cache.match(key);
    if (hit) return hit;
    try {
      return await fetch(req);
    } catch (err) {
      const shell = req.mode === 'navigate' ? await cache.match('/dashboard') : undefined;
      if (shell) return shell;
      throw err;
    }
  })());
});
