// Every page: the drawer, the language switch, the announcement banner, and for
// logged-in users the `/ws/` stream that keeps the sidebar's unread badges live.
import { LiveSocket, api, avatar, formatDateTime, gettext, h, paintInitials } from "./common.js";

const body = document.body;
const loggedIn = Boolean(body.dataset.user);

// Drawer (phone width) ---------------------------------------------------------------

const sidebar = document.getElementById("sidebar");
const toggle = document.getElementById("drawer-toggle");
const backdrop = document.getElementById("drawer-backdrop");

function setDrawer(open) {
  body.classList.toggle("drawer-open", open);
  if (toggle) toggle.setAttribute("aria-expanded", String(open));
  if (backdrop) backdrop.hidden = !open;
  if (open && sidebar) {
    const current = sidebar.querySelector(".room-link.active") || sidebar.querySelector("a, button, input");
    if (current) current.focus();
  } else if (!open && toggle && sidebar && sidebar.contains(document.activeElement)) {
    toggle.focus();
  }
}

if (toggle) toggle.addEventListener("click", () => setDrawer(!body.classList.contains("drawer-open")));
if (backdrop) backdrop.addEventListener("click", () => setDrawer(false));
const closeButton = document.getElementById("drawer-close");
if (closeButton) closeButton.addEventListener("click", () => setDrawer(false));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && body.classList.contains("drawer-open")) setDrawer(false);
});

// Language: switching submits at once (the button is there for keyboards without JS).
for (const select of document.querySelectorAll(".language-select")) {
  select.addEventListener("change", () => select.form.submit());
  const go = select.form.querySelector(".language-go");
  if (go) go.classList.add("visually-hidden");
}

paintInitials();

// Search: Ctrl-K (Cmd-K) focuses the box every app page has.
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "k") {
    const box = document.querySelector("form#search input[name=q]");
    if (box) {
      event.preventDefault();
      // Phone width: the box is in the drawer.
      if (sidebar && sidebar.contains(box) && toggle && toggle.offsetParent) setDrawer(true);
      box.focus();
      box.select();
    }
  }
});

// New room: suggest an address from the name.
const nameInput = document.getElementById("new-room-name");
const slugInput = document.getElementById("new-room-slug");
if (nameInput && slugInput) {
  let touched = false;
  slugInput.addEventListener("input", () => (touched = true));
  nameInput.addEventListener("input", () => {
    if (touched) return;
    slugInput.value = nameInput.value
      .normalize("NFKD")
      .toLowerCase()
      .replace(/[^a-z0-9_-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 50);
  });
}

// New direct message: the user asked for it, so start it (a POST) and open its room.
// Anything the API refuses goes to /dm/<username>/, whose page says why; without
// JavaScript the form leads there too, and its button starts the conversation.
const dmForm = document.getElementById("dm-form");
if (dmForm) {
  dmForm.addEventListener("submit", async (event) => {
    const name = dmForm.elements.username.value.trim();
    if (!name) return;
    event.preventDefault();
    const page = `/dm/${encodeURIComponent(name)}/`;
    try {
      const room = await api(`/api${page}`, { method: "POST" });
      location.assign(`/rooms/${encodeURIComponent(room.slug)}/`);
    } catch {
      location.assign(page);
    }
  });
}

// Announcement -------------------------------------------------------------------------

const banner = document.getElementById("announcement");

export function showAnnouncement(frame) {
  if (!banner || !frame) return;
  const text = frame.text || "";
  banner.replaceChildren();
  if (!text && !frame.image) {
    banner.hidden = true;
    return;
  }
  banner.classList.toggle("has-image", Boolean(frame.image));
  // The picture as itself (not a faint background): a thumbnail that opens full size.
  if (frame.image) {
    banner.append(
      h("a", { class: "announcement-image-link", href: frame.image, target: "_blank", rel: "noopener", title: gettext("Open the image") },
        h("img", { class: "announcement-image", src: frame.image, alt: gettext("Announcement image") })),
    );
  }
  banner.append(h("p", { class: "announcement-text" }, text));
  const close = h("button", { type: "button", class: "icon-button announcement-close", "aria-label": gettext("Hide announcement") }, "✕");
  close.addEventListener("click", () => {
    banner.hidden = true;
    sessionStorage.setItem("parley.announcement.hidden", text);
  });
  banner.append(close);
  banner.hidden = sessionStorage.getItem("parley.announcement.hidden") === text && text !== "";
  const editor = document.getElementById("announcement-text");
  if (editor && document.activeElement !== editor) editor.value = text;
}

if (banner) {
  api("/api/announcement/").then(showAnnouncement, () => {});
  document.addEventListener("parley:announcement", (event) => showAnnouncement(event.detail));
}

const editorForm = document.getElementById("announcement-form");
if (editorForm) {
  const note = document.getElementById("announcement-note");
  const publish = async (payload) => {
    note.textContent = gettext("Saving…");
    try {
      showAnnouncement(await api("/api/announcement/", { method: "PUT", ...payload }));
      note.textContent = gettext("Published.");
    } catch (error) {
      note.textContent = error.message;
    }
  };
  editorForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = editorForm.elements.text.value;
    const file = editorForm.elements.image.files[0];
    if (file) {
      const form = new FormData();
      form.append("text", text);
      form.append("image", file);
      publish({ form });
    } else {
      publish({ json: { text } });
    }
  });
  document.getElementById("announcement-clear").addEventListener("click", () => {
    editorForm.elements.text.value = "";
    publish({ json: { text: "", image: null } });
  });
}

// Sidebar badges -------------------------------------------------------------------------

// The room's last_seq each badge shows the count for. Frames can arrive out of order (a
// read marker moved on another tab, a new message here): an `unread` counted over fewer
// messages than the one shown is older, and dropped (SPEC §3).
const shownSeq = new Map();
// slug → {count, mentions}: what the badges and the tab title show.
const counts = new Map();
const baseTitle = document.title;

function applyUnread(slug, count, lastSeq, mentions) {
  if (typeof lastSeq === "number") {
    if (lastSeq < (shownSeq.get(slug) ?? -1)) return false;
    shownSeq.set(slug, lastSeq);
  }
  setUnread(slug, count, mentions);
  return true;
}

function roomLinks(slug) {
  return document.querySelectorAll(`.room-link[data-room="${CSS.escape(slug)}"]`);
}

// A room's settings as its sidebar link carries them (SPEC §6.2): muted until a time, and
// which messages notify. A muted room (or one set to `none`) shows no count badge;
// mentions still show.
export function roomSettings(slug) {
  const link = ownLink(slug);
  const notify = (link && link.dataset.notify) || "mentions";
  const until = link ? link.dataset.mutedUntil : "";
  return { notify, mutedUntil: until || null, muted: Boolean(until) && Date.parse(until) > Date.now() };
}

function quiet(slug) {
  const settings = roomSettings(slug);
  return settings.muted || settings.notify === "none";
}

function paintBadges(slug) {
  const { count, mentions } = counts.get(slug) || { count: 0, mentions: 0 };
  const hush = quiet(slug);
  for (const link of roomLinks(slug)) {
    const badge = link.querySelector(".badge");
    if (badge) {
      badge.dataset.count = String(count);
      badge.textContent = count > 99 ? "99+" : String(count);
      badge.hidden = count <= 0 || hush;
    }
    const mention = link.querySelector(".mention-badge");
    if (mention) {
      mention.dataset.count = String(mentions);
      mention.textContent = `@${mentions > 99 ? "99+" : mentions}`;
      mention.hidden = mentions <= 0;
    }
    link.classList.toggle("muted", hush);
  }
}

// Mentions ---------------------------------------------------------------------------------
// The sidebar's "Mentions" panel: my unread mentions (GET /api/mentions/, newest first),
// read when it opens and again while it is open when a mention count changes; each opens
// its room at the message. Its badge is the sum of the rooms' mention badges.

const mentionsPanel = document.getElementById("mentions-panel");
const mentionsList = document.getElementById("mentions-list");
let mentionsLoad = null;

function mentionItem(message) {
  const link = ownLink(message.room);
  const roomName = link ? link.querySelector(".room-name").textContent : message.room;
  const sender = message.sender ? message.sender.display_name : "";
  return h("li", {},
    h("a", { class: "mention-link", href: messageUrl(message), dataset: { id: String(message.id) } },
      h("span", { class: "mention-where" }, sender ? `${sender} · ${roomName}` : roomName, " · ",
        h("time", { datetime: message.created_at }, formatDateTime(message.created_at))),
      h("span", { class: "mention-excerpt" }, excerpt(message))));
}

async function loadMentions() {
  if (!mentionsPanel || !mentionsPanel.open) return;
  const load = (mentionsLoad = api("/api/mentions/?limit=20"));
  let messages;
  try {
    messages = await load;
  } catch {
    if (load === mentionsLoad) mentionsList.replaceChildren(h("li", { class: "nav-empty" }, gettext("Could not load your mentions.")));
    return;
  }
  if (load !== mentionsLoad) return; // a newer read is under way
  mentionsList.replaceChildren(...(messages.length
    ? messages.map(mentionItem)
    : [h("li", { class: "nav-empty" }, gettext("No unread mentions."))]));
}

if (mentionsPanel) mentionsPanel.addEventListener("toggle", loadMentions);

function paintMentionsTotal() {
  const total = document.getElementById("mentions-total");
  if (!total) return;
  let sum = 0;
  for (const { mentions } of counts.values()) sum += mentions;
  total.textContent = `@${sum > 99 ? "99+" : sum}`;
  total.hidden = sum <= 0;
}

// The tab title carries the unread total of the rooms that are not muted.
function paintTitle() {
  let total = 0;
  for (const [slug, { count }] of counts) if (ownLink(slug) && !quiet(slug)) total += count;
  document.title = total > 0 ? `(${total > 99 ? "99+" : total}) ${baseTitle}` : baseTitle;
  document.body.dataset.unreadTotal = String(total);
}

export function setUnread(slug, count, mentions) {
  const known = counts.get(slug) || { count: 0, mentions: 0 };
  const now = { count, mentions: typeof mentions === "number" ? mentions : count > 0 ? known.mentions : 0 };
  counts.set(slug, now);
  paintBadges(slug);
  paintTitle();
  paintMentionsTotal();
  if (now.mentions !== known.mentions) loadMentions();
}

// New settings for one of the user's rooms (the settings panel, or another tab).
export function applySettings(settings) {
  for (const link of roomLinks(settings.room)) {
    if (!link.dataset.notify) continue; // not one of the user's own
    link.dataset.notify = settings.notify;
    link.dataset.mutedUntil = settings.muted_until || "";
  }
  paintBadges(settings.room);
  paintTitle();
}

document.addEventListener("parley:room-settings", (event) => applySettings(event.detail));

for (const link of document.querySelectorAll(".room-link[data-notify]")) {
  const badge = link.querySelector(".badge");
  const mention = link.querySelector(".mention-badge");
  counts.set(link.dataset.room, { count: Number(badge ? badge.dataset.count : 0) || 0, mentions: Number(mention ? mention.dataset.count : 0) || 0 });
  paintBadges(link.dataset.room);
}
paintTitle();
paintMentionsTotal();

// As chat/views.py room_label: a DM by the person, a project conversation by project and person.
export function roomLabel(room) {
  if (!room.peer) return room.name;
  return room.kind === "project" ? `${room.name} · ${room.peer.display_name}` : room.peer.display_name;
}

function roomItem(room) {
  const icon = room.peer
    ? avatar(room.peer, "sm")
    : h("span", { class: "room-icon", "aria-hidden": "true" }, room.kind === "private" ? h("img", { src: body.dataset.lockIcon, alt: "" }) : "#");
  const badge = h("span", { class: "badge", "aria-label": gettext("unread messages"), hidden: true, dataset: { count: "0" } }, "0");
  const mention = h("span", { class: "mention-badge", "aria-label": gettext("unread mentions"), hidden: true, dataset: { count: "0" } }, "@0");
  const dataset = { room: room.slug, kind: room.kind };
  if (room.member) Object.assign(dataset, { notify: room.kind === "dm" || room.kind === "project" ? "all" : "mentions", mutedUntil: "" });
  const link = h(
    "a",
    { class: "room-link", href: room.kind === "dm" && room.peer ? `/dm/${encodeURIComponent(room.peer.username)}/` : `/rooms/${encodeURIComponent(room.slug)}/`, dataset },
    icon,
    h("span", { class: "room-name" }, roomLabel(room)),
    badge,
    mention,
  );
  return h("li", {}, link);
}

function ownLink(slug) {
  return document.querySelector(`.nav-section ul:not(#room-discover) .room-link[data-room="${CSS.escape(slug)}"]`);
}

// A room the user now belongs to joins their own list (leaving the not-joined sample).
function addRoomLink(room) {
  const sampled = document.querySelector(`#room-discover .room-link[data-room="${CSS.escape(room.slug)}"]`);
  if (sampled) sampled.closest("li").remove();
  if (ownLink(room.slug)) return;
  const list = document.querySelector(`.nav-section[data-section="${CSS.escape(room.kind)}"] ul:not(#room-discover)`);
  if (!list) return;
  const empty = list.querySelector(".nav-empty");
  if (empty) empty.remove();
  list.append(roomItem({ ...room, member: true }));
  if (room.unread_count) applyUnread(room.slug, room.unread_count, room.last_seq, room.mention_count || 0);
  api(`/api/rooms/${encodeURIComponent(room.slug)}/settings/`).then(applySettings, () => {});
}

// One room, not the whole list: there may be tens of thousands of public rooms.
async function showRoom(room) {
  try {
    // Two-person rooms are named after the other person, whom only the detail names.
    const known = typeof room === "object" && room.kind !== "dm" && room.kind !== "project";
    addRoomLink(known ? room : await api(`/api/rooms/${encodeURIComponent(room.slug || room)}/`));
  } catch {
    /* the next room.added or reload catches up */
  }
}

// Forms that change something for good ask first (leave a room, remove someone).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// A room taken from the user (removed, left elsewhere, made private) leaves the sidebar.
function dropRoomLink(slug) {
  const link = ownLink(slug);
  if (link) link.closest("li").remove();
  counts.delete(slug); // its unread no longer counts in the tab title
  paintTitle();
}

// Room search ----------------------------------------------------------------------------
// The sidebar shows a sample of the public rooms not joined; typing asks GET /api/rooms/?q=.

const search = document.getElementById("room-search");
const found = document.getElementById("room-discover");
if (search && found) {
  const input = search.elements.q;
  const head = document.getElementById("discover-head");
  const sample = { items: Array.from(found.children), head: head.textContent };
  let timer = null;
  let asked = 0;
  const show = (items, heading) => {
    found.replaceChildren(...items);
    head.textContent = heading;
  };
  const run = async () => {
    const q = input.value.trim();
    const ticket = (asked += 1);
    if (!q) {
      // Rooms joined meanwhile have moved to the user's own list.
      show(sample.items.filter((li) => !li.firstElementChild || !ownLink(li.firstElementChild.dataset.room || "")), sample.head);
      return;
    }
    let items;
    try {
      const rooms = await api(`/api/rooms/?q=${encodeURIComponent(q)}&limit=${found.dataset.limit || 20}`);
      items = rooms.length ? rooms.map(roomItem) : [h("li", { class: "nav-empty" }, gettext("No rooms match."))];
    } catch (error) {
      items = [h("li", { class: "nav-empty" }, error.message)];
    }
    if (ticket === asked) show(items, gettext("Matching rooms")); // an older answer arriving late is dropped
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(run, 250);
  });
  search.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    run();
  });
}

// Browser notifications -----------------------------------------------------------------
// While the tab is hidden, a count that grows in a room whose settings ask for it shows a
// system notification: sender and excerpt fetched over REST (`?after_seq=`); a click
// opens the room at that message. Permission is asked only from the button.

const lastNotified = new Map(); // slug → seq already looked at

async function notifyGrowth(slug, before, frame) {
  if (document.visibilityState !== "hidden") return;
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const settings = roomSettings(slug);
  if (settings.notify === "none" || settings.muted) return;
  if (frame.count <= before.count) {
    // One more mention and no new message: an edit named me (chat/services/edits.py).
    if (frame.mentions > before.mentions) notifyEditedMention(slug);
    return;
  }
  const wantsAll = settings.notify === "all";
  if (!wantsAll && frame.mentions <= before.mentions) return;
  const after = Math.max(lastNotified.get(slug) ?? 0, frame.last_seq - Math.min(20, frame.count - before.count));
  lastNotified.set(slug, Math.max(after, frame.last_seq));
  let messages;
  try {
    messages = await api(`/api/rooms/${encodeURIComponent(slug)}/messages/?after_seq=${after}&limit=20`);
  } catch {
    return;
  }
  const me = body.dataset.user;
  const wanted = messages.filter((m) => m.kind !== "system" && !m.recalled && (!m.sender || m.sender.username !== me)
    && (wantsAll || m.mentions_all || (m.mentions || []).includes(me)));
  const message = wanted[wanted.length - 1];
  if (message) showNotification(message);
}

async function notifyEditedMention(slug) {
  let messages;
  try {
    messages = await api("/api/mentions/?limit=50");
  } catch {
    return;
  }
  const edited = messages.filter((m) => m.room === slug && m.edited_at)
    .sort((a, b) => Date.parse(b.edited_at) - Date.parse(a.edited_at));
  if (edited.length) showNotification(edited[0]);
}

function excerpt(message) {
  if (message.body) return message.body.length > 120 ? `${message.body.slice(0, 119)}…` : message.body;
  return message.image ? gettext("Image") : "";
}

export function messageUrl(message) {
  return `/rooms/${encodeURIComponent(message.room)}/#message-${message.id}-${message.seq}`;
}

function showNotification(message) {
  const link = ownLink(message.room);
  const roomName = link ? link.querySelector(".room-name").textContent : message.room;
  const sender = message.sender ? message.sender.display_name : "";
  const title = sender && sender !== roomName ? `${sender} · ${roomName}` : roomName;
  const notification = new Notification(title, { body: excerpt(message), tag: `parley-${message.id}`, data: { url: messageUrl(message) } });
  notification.addEventListener("click", () => {
    window.focus();
    window.location.assign(messageUrl(message));
    notification.close();
  });
  (window.parleyNotifications ||= []).push({ title, body: excerpt(message), url: messageUrl(message) });
}

const notifyButton = document.getElementById("notify-permission");
if (notifyButton && "Notification" in window) {
  const paint = () => {
    notifyButton.hidden = Notification.permission !== "default";
  };
  paint();
  notifyButton.addEventListener("click", async () => {
    await Notification.requestPermission();
    paint();
  });
}

if (loggedIn && sidebar) {
  // After `hello` the stream sends one `unread` per room with a count; every other room has
  // none. The pong to a ping sent on hello comes after them: then the rooms that got no
  // frame since hello are set to 0 (never zeroed first and refilled: no flicker).
  let snapshot = null;
  const stream = new LiveSocket("/ws/", {
    onFrame(frame) {
      if (frame.type === "hello") {
        snapshot = new Set();
        stream.send({ type: "ping" });
      } else if (frame.type === "pong" && snapshot) {
        for (const link of document.querySelectorAll(".room-link[data-room]")) {
          if (!snapshot.has(link.dataset.room)) setUnread(link.dataset.room, 0, 0);
        }
        snapshot = null;
      } else if (frame.type === "unread") {
        if (snapshot) snapshot.add(frame.room);
        if (!ownLink(frame.room)) showRoom(frame.room);
        const before = counts.get(frame.room) || { count: 0, mentions: 0 };
        if (applyUnread(frame.room, frame.count, frame.last_seq, frame.mentions) && !snapshot) {
          notifyGrowth(frame.room, before, frame);
        }
      }
      else if (frame.type === "room.settings") applySettings(frame);
      else if (frame.type === "room.added") showRoom(frame.room);
      else if (frame.type === "room.removed") dropRoomLink(frame.room);
      else if (frame.type === "announcement") showAnnouncement(frame);
      // Pages that list rooms of their own (a project's inbox) follow the same stream.
      // The room page also hears of the reader being muted or unmuted there.
      if (["unread", "room.added", "room.removed", "room.muted", "room.unmuted"].includes(frame.type)) {
        document.dispatchEvent(new CustomEvent("parley:activity", { detail: frame }));
      }
    },
    onOpen() {
      // Rooms added while the stream was down arrive as unread frames of unknown rooms.
      body.dataset.stream = "connected";
    },
    onState(state) {
      body.dataset.stream = state;
    },
  });
  stream.start();
}

// The installable app: the service worker caches the shell and shows pushes (chat/sw.js).
if ("serviceWorker" in navigator && window.isSecureContext) {
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {});
}
