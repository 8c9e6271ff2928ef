// Shared helpers for Parley's pages: translation, DOM building (text only, never HTML),
// the REST client and a WebSocket that reconnects by itself.

// The JavaScript catalog (/jsi18n/, loaded before the modules) defines window.gettext.
// Strings are marked with gettext("…") in place, so makemessages -d djangojs finds them.
export function gettext(text) {
  return typeof window.gettext === "function" ? window.gettext(text) : text;
}

// Fills "%(name)s is typing…" (already translated) with named values.
export function tf(translated, values) {
  return translated.replace(/%\((\w+)\)s/g, (_, key) => String(values[key] ?? ""));
}

// Builds an element. Children are nodes or strings; strings become text nodes, so user
// data can never turn into markup.
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/gi;

// Text with http(s) links made clickable: a fragment of text nodes and <a> elements.
export function linkify(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    let raw = match[0];
    // Sentence punctuation after a link is not part of it.
    const trailing = raw.match(/[.,;:!?)\]}'"]+$/);
    if (trailing) raw = raw.slice(0, -trailing[0].length);
    let url = null;
    try {
      url = new URL(raw);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) continue;
    fragment.append(document.createTextNode(text.slice(last, match.index)));
    fragment.append(h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer" }, raw));
    last = match.index + raw.length;
  }
  fragment.append(document.createTextNode(text.slice(last)));
  return fragment;
}

export function clientId() {
  if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // Plain-http deployments are not a secure context: build a v4 UUID by hand.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const lang = () => document.documentElement.lang || undefined;

export function formatTime(iso) {
  const date = new Date(iso);
  return new Intl.DateTimeFormat(lang(), { hour: "numeric", minute: "2-digit" }).format(date);
}

export function formatDateTime(iso) {
  return new Intl.DateTimeFormat(lang(), { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

const PALETTE = ["#6366f1", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#ec4899", "#8b5cf6", "#14b8a6"];

export function colorFor(name) {
  let hash = 0;
  for (const ch of name || "?") hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

// An avatar: the picture, or the first letter on a colour chosen from the username.
export function avatar(user, size = "") {
  const cls = `avatar${size ? ` avatar-${size}` : ""}`;
  if (user && user.avatar) return h("img", { class: cls, src: user.avatar, alt: "", loading: "lazy" });
  // A webhook bot's icon_url: loaded by the browser (https only), never by the server.
  if (user && user.icon_url && user.icon_url.startsWith("https://")) {
    return h("img", { class: cls, src: user.icon_url, alt: "", loading: "lazy", referrerpolicy: "no-referrer" });
  }
  const name = (user && (user.display_name || user.username)) || "?";
  const node = h("span", { class: `${cls} avatar-initial`, "aria-hidden": "true" }, Array.from(name)[0].toUpperCase());
  node.style.setProperty("--avatar-color", colorFor(user ? user.username : "?"));
  return node;
}

export function paintInitials(root = document) {
  for (const node of root.querySelectorAll(".avatar-initial[data-name]")) {
    node.style.setProperty("--avatar-color", colorFor(node.dataset.name));
  }
}

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

export class ApiError extends Error {
  constructor(status, data, retryAfter) {
    super((data && data.detail) || `HTTP ${status}`);
    this.status = status;
    this.code = (data && data.code) || (status === 0 ? "network" : "error");
    this.retryAfter = retryAfter;
    this.until = (data && data.until) || null; // `muted`: when the mute ends
  }
}

// A refusal of the server's in the reader's language: known codes in words of our own, any
// other with the server's (English) text.
export function refusal(error) {
  const known = {
    forbidden: gettext("You may not do that to this person."),
    not_found: gettext("That person or room no longer exists."),
    rate_limited: gettext("Too many changes at once; try again in a moment."),
    network: gettext("The server cannot be reached; try again."),
    auth_required: gettext("Your session has ended; log in again."),
  };
  return known[error.code] || error.message || gettext("Something went wrong.");
}

// The REST API with the session cookie and CSRF header. `json` sends JSON, `form` a
// FormData (multipart). Throws ApiError (status 0 when the server cannot be reached).
export async function api(path, { method = "GET", json, form } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, null, null);
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const retry = Number(response.headers.get("Retry-After")) || (data && data.retry_after) || null;
    throw new ApiError(response.status, data, retry);
  }
  return data;
}

export function wsUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

// Close codes after which trying again cannot help (docs/realtime-protocol.md).
const FINAL_CLOSE_CODES = new Set([4401, 4403, 4404]);

// A WebSocket that reconnects with exponential backoff and full jitter, and pings so a
// silently dead connection is noticed. States: connecting | connected | reconnecting | offline.
export class LiveSocket {
  constructor(path, { onFrame, onOpen, onState, onFinal, onRetry } = {}) {
    this.path = path;
    this.onFrame = onFrame || (() => {});
    this.onOpen = onOpen || (() => {});
    this.onState = onState || (() => {});
    this.onFinal = onFinal || (() => {});
    this.onRetry = onRetry || (() => {});
    this.ws = null;
    this.failures = 0;
    this.everOpen = false;
    this.stopped = false;
    this.timer = null;
    this.lastHeard = Date.now();
    window.addEventListener("online", () => this.retryNow());
    window.addEventListener("offline", () => this.setState("offline"));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && !this.isOpen()) this.retryNow();
    });
    this.heartbeat = setInterval(() => this.checkAlive(), 15000);
  }

  setState(state) {
    this.state = state;
    this.onState(state);
  }

  isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    if (!("WebSocket" in window)) {
      this.setState("offline");
      this.onRetry(Infinity);
      return;
    }
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped) return;
    this.setState(this.everOpen ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(wsUrl(this.path));
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.failures = 0;
      this.everOpen = true;
      this.lastHeard = Date.now();
      this.setState("connected");
      this.onOpen();
    });
    ws.addEventListener("message", (event) => {
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame === "object") this.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (FINAL_CLOSE_CODES.has(event.code)) {
        this.stopped = true;
        this.setState("offline");
        this.onFinal(event.code);
        return;
      }
      this.scheduleRetry();
    });
  }

  scheduleRetry() {
    if (this.stopped || this.timer) return;
    this.failures += 1;
    const ceiling = Math.min(15000, 500 * 2 ** Math.min(this.failures - 1, 10));
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.setState(navigator.onLine === false ? "offline" : "reconnecting");
    this.onRetry(this.failures);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  retryNow() {
    if (this.stopped || this.isOpen()) return;
    if (this.ws && this.ws.readyState === WebSocket.CONNECTING) return;
    this.failures = 0;
    this.connect();
  }

  checkAlive() {
    if (!this.isOpen()) return;
    if (Date.now() - this.lastHeard > 40000) {
      this.ws.close(); // no pong for too long: the connection is dead
      return;
    }
    this.send({ type: "ping" });
  }

  send(frame) {
    if (!this.isOpen()) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
