// Web Push on the profile page (SPEC §6.2): subscribe this browser (the service worker at
// /sw.js, the server's VAPID key from /api/push/key/), unsubscribe, and list every
// subscription with its last success and last error, so a dead one is visible.
import { api, gettext } from "./common.js";

const subscribeButton = document.getElementById("push-subscribe");
const unsubscribeButton = document.getElementById("push-unsubscribe");
const note = document.getElementById("push-note");
const list = document.getElementById("push-list");

function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (base64url.length % 4)) % 4));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : gettext("never");
}

async function current() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return null;
  const registration = await navigator.serviceWorker.getRegistration("/");
  return registration ? registration.pushManager.getSubscription() : null;
}

async function showList() {
  let subscriptions = [];
  try {
    subscriptions = await api("/api/push/subscriptions/");
  } catch (error) {
    note.textContent = error.message;
  }
  const mine = await current().catch(() => null);
  list.replaceChildren(...subscriptions.map((s) => {
    const li = document.createElement("li");
    li.className = s.last_error && (!s.last_success_at || s.last_error_at > s.last_success_at) ? "push-item failing" : "push-item";
    li.dataset.endpoint = s.endpoint;
    const host = document.createElement("strong");
    host.textContent = new URL(s.endpoint).host + (mine && mine.endpoint === s.endpoint ? ` (${gettext("this device")})` : "");
    const ok = document.createElement("span");
    ok.className = "push-success";
    ok.textContent = `${gettext("Last delivered")}: ${when(s.last_success_at)}`;
    li.append(host, ok);
    if (s.last_error) {
      const bad = document.createElement("span");
      bad.className = "push-error";
      bad.textContent = `${gettext("Last error")}: ${s.last_error} (${when(s.last_error_at)})`;
      li.append(bad);
    }
    return li;
  }));
  if (!subscriptions.length) {
    const li = document.createElement("li");
    li.className = "push-none";
    li.textContent = gettext("No device receives pushes yet.");
    list.replaceChildren(li);
  }
  subscribeButton.hidden = Boolean(mine);
  unsubscribeButton.hidden = !mine;
}

// Exported for tests: what the page sends once the browser has a subscription.
export async function register(subscription) {
  const json = subscription.toJSON ? subscription.toJSON() : subscription;
  await api("/api/push/subscriptions/", { method: "POST", json: { endpoint: json.endpoint, keys: json.keys } });
}

async function subscribe() {
  note.textContent = "";
  try {
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) throw new Error(gettext("This browser cannot receive pushes."));
    if ((await Notification.requestPermission()) !== "granted") throw new Error(gettext("Notifications are blocked for this site."));
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    const { key } = await api("/api/push/key/");
    window.parleyPushKey = key;
    const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
    await register(subscription);
    note.textContent = gettext("This device now receives pushes.");
  } catch (error) {
    note.textContent = error.message || String(error);
  }
  showList();
}

async function unsubscribe() {
  const subscription = await current().catch(() => null);
  if (subscription) {
    await api("/api/push/subscriptions/", { method: "DELETE", json: { endpoint: subscription.endpoint } }).catch(() => {});
    await subscription.unsubscribe().catch(() => {});
  }
  showList();
}

if (subscribeButton) {
  subscribeButton.addEventListener("click", subscribe);
  unsubscribeButton.addEventListener("click", unsubscribe);
  showList();
}
