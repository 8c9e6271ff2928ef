// Every page: the drawer, the language switch, the announcement banner, and for
// logged-in users the `/ws/` stream that keeps the sidebar's unread badges live.
import { LiveSocket, api, avatar, gettext, h, paintInitials } from "./common.js";

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

function applyUnread(slug, count, lastSeq) {
  if (typeof lastSeq === "number") {
    if (lastSeq < (shownSeq.get(slug) ?? -1)) return false;
    shownSeq.set(slug, lastSeq);
  }
  setUnread(slug, count);
  return true;
}

export function setUnread(slug, count) {
  for (const link of document.querySelectorAll(`.room-link[data-room="${CSS.escape(slug)}"]`)) {
    const badge = link.querySelector(".badge");
    if (!badge) continue;
    badge.dataset.count = String(count);
    badge.textContent = count > 99 ? "99+" : String(count);
    badge.hidden = count <= 0;
  }
}

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
  const link = h(
    "a",
    { class: "room-link", href: room.kind === "dm" && room.peer ? `/dm/${encodeURIComponent(room.peer.username)}/` : `/rooms/${encodeURIComponent(room.slug)}/`, dataset: { room: room.slug, kind: room.kind } },
    icon,
    h("span", { class: "room-name" }, roomLabel(room)),
    badge,
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
  list.append(roomItem(room));
  if (room.unread_count) applyUnread(room.slug, room.unread_count, room.last_seq);
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
          if (!snapshot.has(link.dataset.room)) setUnread(link.dataset.room, 0);
        }
        snapshot = null;
      } else if (frame.type === "unread") {
        if (snapshot) snapshot.add(frame.room);
        if (!ownLink(frame.room)) showRoom(frame.room);
        applyUnread(frame.room, frame.count, frame.last_seq);
      }
      else if (frame.type === "room.added") showRoom(frame.room);
      else if (frame.type === "room.removed") dropRoomLink(frame.room);
      else if (frame.type === "announcement") showAnnouncement(frame);
      // Pages that list rooms of their own (a project's inbox) follow the same stream.
      if (frame.type === "unread" || frame.type === "room.added" || frame.type === "room.removed") {
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
