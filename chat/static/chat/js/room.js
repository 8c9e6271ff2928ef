// The room view: history (infinite scroll upward), live messages over /ws/chat/<slug>/,
// resume after reconnect without gaps or duplicates, safe retries (client_id), images,
// recall/delete, typing, presence, read markers, and 5 s polling when sockets fail.
import { LiveSocket, api, avatar, clientId, formatDateTime, formatTime, gettext, h, linkify, tf } from "./common.js";

const root = document.getElementById("room");
const slug = root.dataset.room;
const me = root.dataset.me;
const isMember = root.dataset.member === "true";
const canModerate = root.dataset.canModerate === "true";
const isStaff = root.dataset.staff === "true";
const recallMs = Number(root.dataset.recallSeconds || 30) * 1000;
const apiBase = `/api/rooms/${encodeURIComponent(slug)}`;

const scroller = document.getElementById("scroller");
const list = document.getElementById("messages");
const pendingList = document.getElementById("pending");
const historyNote = document.getElementById("history-note");
const statusEl = document.getElementById("connection-status");
const onlineEl = document.getElementById("online");
const typingEl = document.getElementById("typing");
const jumpButton = document.getElementById("jump-latest");
const composer = document.getElementById("composer");
const textarea = composer ? composer.elements.body : null;
const note = document.getElementById("composer-note");

const state = {
  rev: Number(root.dataset.rev) || 0, // highest room revision applied
  byId: new Map(), // id → message
  nodes: new Map(), // id → <li>
  pending: new Map(), // client_id → {clientId, body, node, ackedId}
  hasOlder: root.dataset.hasOlder === "true",
  loadingOlder: false,
  polling: null,
  socketOpen: false,
  resumed: false,
  cooldownUntil: 0,
  readSent: 0,
  seenSeq: 0,
  unseen: 0,
};

// Rendering ------------------------------------------------------------------------------

const GROUP_MS = 5 * 60 * 1000;

function senderName(message) {
  return message.sender ? message.sender.display_name || message.sender.username : "";
}

function isMine(message) {
  return Boolean(me && message.sender && message.sender.username === me);
}

function canRecall(message) {
  return isMine(message) && !message.recalled && message.kind !== "system" && Date.now() - Date.parse(message.created_at) < recallMs;
}

function canDelete(message) {
  return message.kind !== "system" && (isMine(message) || canModerate || isStaff);
}

function renderMessage(message) {
  const li = h("li", {
    class: `message kind-${message.kind}`,
    dataset: { seq: message.seq, id: message.id, sender: message.sender ? message.sender.username : "" },
  });
  if (message.kind === "system") {
    li.classList.add("system");
    li.append(h("span", { class: "system-text" }, message.body));
    return li;
  }
  const mine = isMine(message);
  li.classList.add(mine ? "mine" : "theirs");
  if (message.recalled) li.classList.add("recalled");
  const time = h("time", { datetime: message.created_at, title: formatDateTime(message.created_at) }, formatTime(message.created_at));
  const bubble = h("div", { class: "bubble" });
  if (message.recalled) {
    bubble.append(h("p", { class: "recalled-text" }, mine ? gettext("You recalled a message") : tf(gettext("%(name)s recalled a message"), { name: senderName(message) })));
  } else {
    if (message.image) {
      const image = h("img", { class: "message-image", src: message.image, alt: gettext("Image"), loading: "lazy" });
      const open = h("button", { type: "button", class: "image-button", "aria-label": gettext("Enlarge image") }, image);
      open.addEventListener("click", () => openLightbox(message.image));
      image.addEventListener("load", () => stickIfNeeded());
      bubble.append(open);
    }
    if (message.body) bubble.append(h("p", { class: "message-text" }, linkify(message.body)));
  }
  bubble.append(h("span", { class: "message-meta" }, time));
  const main = h("div", { class: "message-main" });
  if (!mine) main.append(h("div", { class: "message-name" }, senderName(message)));
  main.append(bubble);
  const actions = h("div", { class: "message-actions" });
  if (canRecall(message)) {
    const recall = h("button", { type: "button", class: "action recall", dataset: { action: "recall" } }, gettext("Recall"));
    actions.append(recall);
    const left = recallMs - (Date.now() - Date.parse(message.created_at));
    setTimeout(() => recall.remove(), Math.max(0, left));
  }
  if (canDelete(message) && !message.recalled) {
    actions.append(h("button", { type: "button", class: "action delete", dataset: { action: "delete" } }, gettext("Delete")));
  }
  if (actions.childElementCount) main.append(actions);
  if (!mine) li.append(h("div", { class: "message-avatar" }, avatar(message.sender)));
  li.append(main);
  return li;
}

// Consecutive messages from one person within a few minutes share one name and avatar.
function regroup(node) {
  if (!node || !node.dataset) return;
  const prev = node.previousElementSibling;
  const a = state.byId.get(Number(node.dataset.id));
  const b = prev ? state.byId.get(Number(prev.dataset.id)) : null;
  const joined =
    a && b && a.kind !== "system" && b.kind !== "system" && a.sender && b.sender &&
    a.sender.username === b.sender.username && Date.parse(a.created_at) - Date.parse(b.created_at) < GROUP_MS;
  node.classList.toggle("continued", Boolean(joined));
}

function nearBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
}

let stick = true;
function stickIfNeeded() {
  if (stick) scroller.scrollTop = scroller.scrollHeight;
}

function scrollToEnd() {
  scroller.scrollTop = scroller.scrollHeight;
  state.unseen = 0;
  jumpButton.hidden = true;
}

// Puts a message from any source (history, live frame, replay, REST answer) in place:
// deduplicated by id, ordered by seq, tombstones removed, recalls replaced.
function apply(message, { live = false } = {}) {
  if (!message || message.room !== slug) return;
  if (message.client_id && isMine(message)) settlePending(message.client_id);
  const existing = state.nodes.get(message.id);
  if (message.deleted) {
    state.byId.delete(message.id);
    if (existing) {
      const next = existing.nextElementSibling;
      existing.remove();
      state.nodes.delete(message.id);
      regroup(next);
    }
    return;
  }
  const known = state.byId.get(message.id);
  if (known && known.rev >= message.rev && !(message.recalled && !known.recalled)) return;
  state.byId.set(message.id, message);
  const node = renderMessage(message);
  if (existing) {
    existing.replaceWith(node);
    state.nodes.set(message.id, node);
    regroup(node);
    regroup(node.nextElementSibling);
    observe(node);
    return;
  }
  const wasNear = nearBottom();
  // Find the place by seq, usually at the end.
  let after = list.lastElementChild;
  while (after && Number(after.dataset.seq) > message.seq) after = after.previousElementSibling;
  if (after) after.after(node);
  else list.prepend(node);
  state.nodes.set(message.id, node);
  regroup(node);
  regroup(node.nextElementSibling);
  observe(node);
  if (live) {
    if (wasNear || isMine(message)) scrollToEnd();
    else if (!isMine(message) && message.kind !== "system") {
      state.unseen += 1;
      jumpButton.hidden = false;
    }
  }
}

function applyChange(frame) {
  const known = state.byId.get(frame.id);
  if (frame.type === "message.deleted") apply({ ...(known || {}), id: frame.id, room: frame.room, seq: frame.seq, rev: frame.rev, deleted: true });
  else if (known) apply({ ...known, rev: frame.rev, recalled: true, body: "", image: null });
}

function bumpRev(rev) {
  if (typeof rev === "number" && rev > state.rev) state.rev = rev;
}

function lastSeq() {
  const last = list.lastElementChild;
  return last ? Number(last.dataset.seq) : 0;
}

function firstSeq() {
  const first = list.firstElementChild;
  return first ? Number(first.dataset.seq) : 0;
}

// History --------------------------------------------------------------------------------

async function loadOlder() {
  if (state.loadingOlder || !state.hasOlder) return;
  const before = firstSeq();
  if (!before) return;
  state.loadingOlder = true;
  historyNote.textContent = gettext("Loading earlier messages…");
  let loaded = false;
  try {
    const page = await api(`${apiBase}/messages/?before_seq=${before}&limit=50`);
    const height = scroller.scrollHeight;
    const top = scroller.scrollTop;
    for (const message of page) apply(message);
    scroller.scrollTop = top + (scroller.scrollHeight - height);
    state.hasOlder = page.length > 0 && page[0].seq > 1;
    historyNote.textContent = state.hasOlder ? "" : gettext("This is the beginning of the conversation.");
    loaded = true;
  } catch {
    historyNote.textContent = gettext("Could not load earlier messages.");
  } finally {
    state.loadingOlder = false;
  }
  if (loaded) fillViewport();
}

// Too few messages to scroll means no scroll event: keep loading until there is.
function fillViewport() {
  if (state.hasOlder && scroller.scrollHeight <= scroller.clientHeight + 200) loadOlder();
}

scroller.addEventListener("scroll", () => {
  stick = nearBottom();
  if (stick) {
    state.unseen = 0;
    jumpButton.hidden = true;
  }
  if (scroller.scrollTop < 200) loadOlder();
});
jumpButton.addEventListener("click", scrollToEnd);

// After a truncated replay: every change since our revision, page by page, from REST.
async function catchUpSinceRev(targetRev) {
  for (let round = 0; round < 50; round += 1) {
    let page;
    try {
      page = await api(`${apiBase}/messages/?since_rev=${state.rev}&limit=200`);
    } catch (error) {
      if (error.status !== 410) throw error;
      await reloadLatest(targetRev); // retention dropped changes we missed: start afresh
      return;
    }
    for (const message of page) {
      apply(message, { live: true });
      bumpRev(message.rev);
    }
    if (page.length < 200) break;
  }
  bumpRev(targetRev);
}

// The latest page instead of what is on screen, which may hold messages purged since.
// Emptied first: live frames arriving during the fetch land in the new list (deduplicated).
async function reloadLatest(targetRev) {
  list.replaceChildren();
  state.byId.clear();
  state.nodes.clear();
  const page = await api(`${apiBase}/messages/`);
  for (const message of page) apply(message);
  state.hasOlder = page.length > 0 && page[0].seq > 1;
  historyNote.textContent = state.hasOlder ? "" : gettext("This is the beginning of the conversation.");
  bumpRev(targetRev);
  scrollToEnd();
}

// Connection status ------------------------------------------------------------------------

const STATUS_TEXT = {
  connected: () => gettext("Connected"),
  connecting: () => gettext("Connecting…"),
  reconnecting: () => gettext("Reconnecting…"),
  offline: () => gettext("Offline"),
  polling: () => gettext("Live updates unavailable: checking every 5 s"),
};

function showStatus(value) {
  statusEl.dataset.state = value;
  statusEl.querySelector(".connection-label").textContent = STATUS_TEXT[value]();
}

// Socket ---------------------------------------------------------------------------------

const socket = new LiveSocket(`/ws/chat/${encodeURIComponent(slug)}/`, {
  onOpen() {
    state.socketOpen = true;
    state.resumed = false;
    // Everything since the revision this page (or the last socket) covered; repeats are
    // dropped by id. Live frames after `hello` may overlap the replay: same rule.
    socket.send({ type: "resume", room: slug, rev: state.rev });
  },
  onState(value) {
    state.socketOpen = value === "connected";
    if (value === "connected") stopPolling();
    showStatus(state.polling && value !== "connected" ? "polling" : value);
  },
  onRetry(failures) {
    // Sockets keep failing: if plain HTTP works, poll until a socket gets through.
    if (failures >= 3 && !state.polling) {
      api(`${apiBase}/messages/?after_seq=${lastSeq()}&limit=1`).then(startPolling, () => {});
    }
  },
  onFinal(code) {
    stopPolling();
    const reasons = { 4401: gettext("You have been logged out."), 4403: gettext("You no longer have access to this room."), 4404: gettext("This room does not exist.") };
    setNote(reasons[code] || gettext("Disconnected."));
  },
  onFrame: handleFrame,
});

function handleFrame(frame) {
  switch (frame.type) {
    case "hello":
      if (frame.room) setOnline(frame.room.online || []);
      break;
    case "message":
      apply(frame, { live: true });
      bumpRev(frame.rev);
      break;
    case "message.recalled":
    case "message.deleted":
      applyChange(frame);
      bumpRev(frame.rev);
      break;
    case "resumed":
      state.resumed = true;
      if (frame.truncated) {
        catchUpSinceRev(frame.rev).catch(() => location.reload());
      } else {
        bumpRev(frame.rev);
      }
      flushPending();
      markRead();
      break;
    case "ack":
      onAck(frame);
      break;
    case "error":
      onError(frame);
      break;
    case "presence":
      setOnline(frame.online || []);
      break;
    case "typing":
      showTyping(frame.user);
      break;
    case "announcement":
      document.dispatchEvent(new CustomEvent("parley:announcement", { detail: frame }));
      break;
    default:
      break;
  }
}

// Polling fallback -------------------------------------------------------------------------

function startPolling() {
  if (state.polling || state.socketOpen) return;
  state.polling = setInterval(poll, 5000);
  showStatus("polling");
  poll();
}

function stopPolling() {
  if (!state.polling) return;
  clearInterval(state.polling);
  state.polling = null;
}

async function poll() {
  try {
    const page = await api(`${apiBase}/messages/?after_seq=${lastSeq()}&limit=200`);
    for (const message of page) apply(message, { live: true });
    flushPending();
    markRead();
  } catch {
    /* the next tick tries again */
  }
}

// Presence and typing --------------------------------------------------------------------

function setOnline(usernames) {
  const names = [...new Set(usernames)];
  onlineEl.textContent = names.length ? tf(gettext("%(count)s online: %(names)s"), { count: names.length, names: names.join(", ") }) : "";
  onlineEl.title = names.join(", ");
}

const typers = new Map();
function showTyping(user) {
  if (!user || user === me) return;
  clearTimeout(typers.get(user));
  typers.set(user, setTimeout(() => {
    typers.delete(user);
    renderTyping();
  }, 4000));
  renderTyping();
}

function renderTyping() {
  const names = [...typers.keys()];
  typingEl.textContent = names.length === 0 ? "" : names.length === 1
    ? tf(gettext("%(name)s is typing…"), { name: names[0] })
    : tf(gettext("%(names)s are typing…"), { names: names.join(", ") });
}

// Read markers ---------------------------------------------------------------------------

const observer = "IntersectionObserver" in window
  ? new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) state.seenSeq = Math.max(state.seenSeq, Number(entry.target.dataset.seq));
    }
    scheduleRead();
  }, { root: scroller })
  : null;

function observe(node) {
  if (observer) observer.observe(node);
  else state.seenSeq = Math.max(state.seenSeq, Number(node.dataset.seq));
}

let readTimer = null;
function scheduleRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(markRead, 300);
}

function markRead() {
  if (!isMember || !me || document.visibilityState !== "visible") return;
  const seq = state.seenSeq;
  if (seq <= state.readSent) return;
  if (socket.send({ type: "read", room: slug, seq })) state.readSent = seq;
  else if (state.polling) api(`${apiBase}/read/`, { method: "POST", json: { seq } }).then(() => (state.readSent = Math.max(state.readSent, seq)), () => {});
}
document.addEventListener("visibilitychange", markRead);

// Sending --------------------------------------------------------------------------------

function setNote(text, kind = "") {
  if (!note) return;
  note.textContent = text;
  note.dataset.kind = kind;
}

function renderPending(entry) {
  const node = h(
    "li",
    { class: "message mine pending", dataset: { clientId: entry.clientId } },
    h("div", { class: "message-main" }, h("div", { class: "bubble" }, h("p", { class: "message-text" }, linkify(entry.body)), h("span", { class: "message-meta" }, h("span", { class: "sending" }, gettext("Sending…"))))),
  );
  pendingList.append(node);
  return node;
}

function settlePending(id) {
  const entry = state.pending.get(id);
  if (!entry) return;
  state.pending.delete(id);
  entry.node.remove();
}

function transmit(entry) {
  if (Date.now() < state.cooldownUntil) return; // flushPending runs when the cooldown ends
  if (state.socketOpen && state.resumed) {
    socket.send({ type: "message.send", room: slug, body: entry.body, client_id: entry.clientId });
  } else if (state.polling) {
    api(`${apiBase}/messages/`, { method: "POST", json: { body: entry.body, client_id: entry.clientId } })
      .then((message) => apply(message, { live: true }), (error) => onError({ code: error.code, detail: error.message, client_id: entry.clientId, retry_after: error.retryAfter }));
  }
  // Otherwise it waits: after the next resume flushPending sends it again, same client_id.
}

function flushPending() {
  for (const entry of state.pending.values()) transmit(entry);
}

function sendText(body) {
  const entry = { clientId: clientId(), body };
  entry.node = renderPending(entry);
  state.pending.set(entry.clientId, entry);
  scrollToEnd();
  transmit(entry);
}

function onAck(frame) {
  if (state.byId.has(frame.id)) settlePending(frame.client_id);
  else {
    const entry = state.pending.get(frame.client_id);
    if (entry) entry.ackedId = frame.id; // the message frame follows
  }
}

let cooldownTimer = null;
function startCooldown(seconds) {
  state.cooldownUntil = Date.now() + seconds * 1000;
  const sendButton = document.getElementById("send-button");
  composer.classList.add("cooling");
  const tick = () => {
    const left = Math.ceil((state.cooldownUntil - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(cooldownTimer);
      composer.classList.remove("cooling");
      sendButton.disabled = false;
      setNote("");
      flushPending();
      return;
    }
    sendButton.disabled = true;
    setNote(tf(gettext("You are sending too fast. Wait %(seconds)s s."), { seconds: left }), "warning");
  };
  clearInterval(cooldownTimer);
  cooldownTimer = setInterval(tick, 250);
  tick();
}

function onError(frame) {
  if (frame.code === "rate_limited") {
    startCooldown(Number(frame.retry_after) || 2);
    return;
  }
  const entry = frame.client_id ? state.pending.get(frame.client_id) : null;
  if (entry) {
    state.pending.delete(entry.clientId);
    entry.node.classList.add("failed");
    entry.node.querySelector(".sending").textContent = gettext("Not sent");
    const dismiss = h("button", { type: "button", class: "action" }, gettext("Dismiss"));
    dismiss.addEventListener("click", () => entry.node.remove());
    entry.node.querySelector(".message-main").append(h("div", { class: "message-actions visible" }, dismiss));
  }
  setNote(frame.detail || gettext("Something went wrong."), "error");
}

// Recall / delete -------------------------------------------------------------------------

list.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) {
    // Touch screens have no hover: a tap on a bubble shows its actions.
    const bubbleNode = event.target.closest(".bubble");
    if (bubbleNode && !event.target.closest("a, button")) {
      const item = bubbleNode.closest(".message");
      for (const other of list.querySelectorAll(".show-actions")) if (other !== item) other.classList.remove("show-actions");
      item.classList.toggle("show-actions");
    }
    return;
  }
  const id = Number(button.closest("li").dataset.id);
  button.disabled = true;
  try {
    if (button.dataset.action === "recall") {
      apply(await api(`/api/messages/${id}/recall/`, { method: "POST" }));
    } else {
      await api(`/api/messages/${id}/`, { method: "DELETE" });
      const known = state.byId.get(id);
      if (known) apply({ ...known, deleted: true });
    }
  } catch (error) {
    setNote(error.code === "recall_window_passed" ? gettext("It is too late to recall this message.") : error.message, "error");
    button.disabled = false;
  }
});

// Images ----------------------------------------------------------------------------------

const lightbox = document.getElementById("lightbox");
function openLightbox(src) {
  document.getElementById("lightbox-image").src = src;
  lightbox.showModal();
}
lightbox.addEventListener("click", (event) => {
  if (event.target === lightbox) lightbox.close();
});

let attachment = null;
function attach(file) {
  if (!file || !file.type.startsWith("image/")) return;
  attachment = file;
  const preview = document.getElementById("attachment-preview");
  if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  document.getElementById("attachment-name").textContent = file.name || gettext("Pasted image");
  document.getElementById("attachment").hidden = false;
  textarea.focus();
}

function clearAttachment() {
  attachment = null;
  document.getElementById("attachment").hidden = true;
  document.getElementById("image-input").value = "";
}

async function sendImage(file, caption) {
  const id = clientId();
  const form = new FormData();
  form.append("image", file, file.name || "pasted.png");
  form.append("body", caption);
  form.append("client_id", id);
  setNote(gettext("Uploading image…"));
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      apply(await api(`${apiBase}/messages/`, { method: "POST", form }), { live: true });
      setNote("");
      return true;
    } catch (error) {
      if (error.status === 0) {
        await new Promise((resolve) => setTimeout(resolve, 1000 * (attempt + 1)));
        continue; // the same client_id makes the retry safe
      }
      if (error.code === "rate_limited") startCooldown(error.retryAfter || 2);
      else setNote(error.message, "error");
      return false;
    }
  }
  setNote(gettext("Could not upload the image."), "error");
  return false;
}

// Composer --------------------------------------------------------------------------------

if (composer) {
  const fileInput = document.getElementById("image-input");
  document.getElementById("attach-button").addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => attach(fileInput.files[0]));
  document.getElementById("attachment-cancel").addEventListener("click", () => {
    clearAttachment();
    textarea.focus();
  });
  textarea.addEventListener("paste", (event) => {
    const items = event.clipboardData ? Array.from(event.clipboardData.files || []) : [];
    const image = items.find((file) => file.type.startsWith("image/"));
    if (image) {
      event.preventDefault();
      attach(image);
    }
  });

  const autosize = () => {
    textarea.style.height = "auto";
    textarea.style.height = `${Math.min(textarea.scrollHeight, 160)}px`;
  };

  let lastTyping = 0;
  textarea.addEventListener("input", () => {
    autosize();
    if (Date.now() - lastTyping > 2000 && textarea.value.trim()) {
      lastTyping = Date.now();
      socket.send({ type: "typing", room: slug });
    }
  });

  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });

  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = textarea.value.trim();
    if (attachment) {
      const file = attachment;
      clearAttachment();
      textarea.value = "";
      autosize();
      if (!(await sendImage(file, body))) {
        attach(file);
        textarea.value = body;
      }
      return;
    }
    if (!body) return;
    textarea.value = "";
    autosize();
    sendText(body);
  });
}

// Staff presets ----------------------------------------------------------------------------

async function loadPresets() {
  const bar = document.getElementById("presets");
  let presets;
  try {
    presets = await api("/api/presets/");
  } catch {
    return;
  }
  if (!presets.length) return;
  bar.replaceChildren(h("span", { class: "presets-label" }, gettext("Presets")));
  for (const preset of presets) {
    const button = h("button", { type: "button", class: "chip" }, preset.title);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        apply(await api(`${apiBase}/presets/${preset.id}/`, { method: "POST", json: { client_id: clientId() } }), { live: true });
      } catch (error) {
        setNote(error.message, "error");
      } finally {
        button.disabled = false;
      }
    });
    bar.append(button);
  }
  bar.hidden = false;
}

// Start ------------------------------------------------------------------------------------

const initial = JSON.parse(document.getElementById("initial-messages").textContent);
for (const message of initial) apply(message);
scrollToEnd();
fillViewport();
if (isStaff) loadPresets();
socket.start();
if (textarea && matchMedia("(hover: hover)").matches) textarea.focus();
