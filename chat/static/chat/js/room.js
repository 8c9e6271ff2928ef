// The room view: live messages over /ws/chat/<slug>/, resume after reconnect without gaps
// or duplicates, 5 s polling when sockets fail, typing, presence, read markers, and the
// clicks in the list. What is on screen: timeline.js; bubbles: messages.js; sending:
// composer.js; edits.js, replies.js, reactions.js for those.
import { LiveSocket, api, avatar, clientId, formatDateTime, gettext, h, tf } from "./common.js";
import { flushPending, initComposer, onAck, onSendError } from "./composer.js";
import { initEdits, showVersions, startEdit } from "./edits.js";
import { initMentionAutocomplete, initNotify } from "./notify.js";
import { initReactions, openPickerFor, toggleReaction } from "./reactions.js";
import { initReplies, jumpTo, startReply } from "./replies.js";
import {
  apply, bumpRev, catchUpSinceRev, fillViewport, ingest, initTimeline, lastSeq, names, redraw, reloadLatest,
  scrollToEnd, showAround, state, stickIfNeeded,
} from "./timeline.js";

const root = document.getElementById("room");
const slug = root.dataset.room;
const apiBase = `/api/rooms/${encodeURIComponent(slug)}`;
const list = document.getElementById("messages");
const statusEl = document.getElementById("connection-status");
const onlineEl = document.getElementById("online");
const typingEl = document.getElementById("typing");
const note = document.getElementById("composer-note");

// What the other modules see of the room.
const view = {
  slug,
  apiBase,
  state,
  list,
  me: root.dataset.me,
  isMember: root.dataset.member === "true",
  canModerate: root.dataset.canModerate === "true",
  isStaff: root.dataset.staff === "true",
  kind: root.dataset.kind,
  // People the reader blocked (their messages are collapsed), and messages shown anyway.
  blocked: new Set(JSON.parse(document.getElementById("blocked-users").textContent)),
  revealed: new Set(),
  reveal(id) {
    view.revealed.add(id);
    const known = state.byId.get(id);
    if (known) redraw(id);
  },
  showMuted,
  recallMs: Number(root.dataset.recallSeconds || 30) * 1000,
  editMs: Number(root.dataset.editSeconds || 0) * 1000,
  maxBody: Number(root.dataset.maxBody) || 4000,
  maxUpload: Number(root.dataset.maxUpload) || 0,
  maxFile: Number(root.dataset.maxFile) || 0,
  decorators: [], // (li, message) after each render: the open editor goes back in
  nameOf: (username) => names.get(username) || memberName(username) || username,
  openLightbox,
  onImageLoad: () => stickIfNeeded(),
  live: () => state.socketOpen && state.resumed,
  sendFrame: (frame) => socket.send(frame),
  apply,
  ingest,
  redraw,
  setNote,
  scrollToEnd,
  reloadLatest,
  showAround,
  onSeen: () => scheduleRead(),
};

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
    // dropped by id and rev. Live frames after `hello` may overlap the replay: same rule.
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
    if (code === 4403) loseAccess();
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
      if (frame.sender) stopTyping(frame.sender.username);
      if (frame.system) followRoomChange(frame.system);
      ingest(frame);
      break;
    case "user.updated":
      if (frame.user) userUpdated(frame.user);
      break;
    case "message.edited":
    case "message.reactions":
    case "message.recalled":
    case "message.deleted":
      ingest(frame);
      break;
    case "message.pinned":
      ingest(frame);
      loadPins();
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
      if (frame.code === "muted") showMuted(frame.until);
      onSendError(frame);
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

// `?since_rev=` brings edits, reactions, recalls and deletions as well as new messages.
async function poll() {
  try {
    await catchUpSinceRev();
    flushPending();
    markRead();
  } catch {
    /* the next tick tries again */
  }
}

// Presence and typing --------------------------------------------------------------------

// Display names where the member list (the room panel) or the messages know them.
function memberName(username) {
  const member = document.querySelector(`#members .member[data-username="${CSS.escape(username)}"]`);
  return member ? member.dataset.name : "";
}

function shownName(username) {
  return view.nameOf(username);
}

let onlineNow = [];
function setOnline(usernames) {
  const unique = [...new Set(usernames)];
  onlineNow = unique;
  const names = unique.map(shownName);
  onlineEl.textContent = unique.length ? tf(gettext("%(count)s online: %(names)s"), { count: unique.length, names: names.join(", ") }) : "";
  onlineEl.title = names.join(", ");
  for (const member of document.querySelectorAll("#members .member")) {
    const dot = member.querySelector(".presence-dot");
    const on = unique.includes(member.dataset.username);
    member.classList.toggle("online", on);
    if (dot) dot.hidden = !on;
  }
}

// Someone changed their display name or avatar: their messages, the member list, the
// online and typing lines show the new ones at once.
function userUpdated(user) {
  names.set(user.username, user.display_name || user.username);
  for (const [id, message] of state.byId) {
    const theirs = message.sender && message.sender.username === user.username;
    const named = message.system && (message.system.user === user.username || message.system.by === user.username);
    if (!theirs && !named) continue;
    if (theirs) message.sender = { ...message.sender, display_name: user.display_name, avatar: user.avatar };
    redraw(id);
  }
  const member = document.querySelector(`#members .member[data-username="${CSS.escape(user.username)}"]`);
  if (member) {
    const name = user.display_name || user.username;
    member.dataset.name = name;
    const label = member.querySelector(".member-name");
    if (label) label.replaceChildren(name, ...(name !== user.username ? [" ", h("span", { class: "muted" }, `@${user.username}`)] : []));
    const old = member.querySelector(".avatar");
    if (old) old.replaceWith(avatar(user, "sm"));
  }
  // A direct conversation is named after the other person.
  const peer = document.getElementById("block-button");
  if (view.kind === "dm" && peer && peer.dataset.username === user.username) {
    document.getElementById("room-name").textContent = user.display_name || user.username;
    const old = document.querySelector(".room-head > .avatar");
    if (old) old.replaceWith(avatar(user));
  }
  setOnline(onlineNow);
  renderTyping();
}

// A rename or a new topic (their system messages) shows in the header as it happens.
function followRoomChange(event) {
  if (event.event === "changed" && event.name !== undefined) {
    document.getElementById("room-name").textContent = event.name;
    document.title = `${event.name} · Parley`;
  } else if (event.event === "topic") {
    const topic = document.getElementById("room-topic");
    topic.textContent = event.topic || "";
    topic.hidden = !event.topic;
  }
}

// Removed from the room (or it went private): it leaves the sidebar, nothing more can be
// sent, and nobody is shown online any more.
function loseAccess() {
  setOnline([]);
  for (const link of document.querySelectorAll(`.room-link[data-room="${CSS.escape(slug)}"]`)) {
    link.closest("li").remove();
  }
  const form = document.getElementById("composer");
  if (form) {
    form.classList.add("disabled");
    for (const control of form.querySelectorAll("textarea, button, input")) control.disabled = true;
  }
  const panelOpen = document.getElementById("room-panel-open");
  if (panelOpen) panelOpen.hidden = true;
}

// "New since your last visit": above the first message, among those there when the page
// loaded, that came after the member last read the room (not for what arrives live).
const lastReadAtLoad = root.dataset.lastRead === "" ? null : Number(root.dataset.lastRead);
const lastSeqAtLoad = Number(root.dataset.lastSeq || 0);
let dividerSeq = null;
view.decorators.push((li, message) => {
  if (lastReadAtLoad === null || message.kind === "system" || (message.sender && message.sender.username === view.me)) return;
  if (dividerSeq === null && message.seq > lastReadAtLoad && message.seq <= lastSeqAtLoad) dividerSeq = message.seq;
  if (message.seq === dividerSeq) {
    li.classList.add("first-unread");
    li.dataset.newLabel = gettext("New since your last visit");
  }
});

// Sending into a public room joins it (docs/api.md, "Joining"): when the user stream says
// the room is ours, the Join button goes.
document.addEventListener("parley:activity", (event) => {
  const frame = event.detail;
  if (frame.type !== "room.added" || !frame.room || frame.room.slug !== slug) return;
  view.isMember = true;
  root.dataset.member = "true";
  const join = document.getElementById("join-room");
  if (join) join.closest("form").remove();
});

// The room panel: members, invitations, settings, leaving.
const panel = document.getElementById("room-panel");
const panelOpen = document.getElementById("room-panel-open");
if (panel && panelOpen) {
  panelOpen.addEventListener("click", () => panel.showModal());
  if (location.hash === "#room-panel") panel.showModal();
  panel.addEventListener("close", () => {
    if (location.hash === "#room-panel") history.replaceState(null, "", location.pathname + location.search);
  });
}

const typers = new Map();
function showTyping(user) {
  if (!user || user === view.me) return;
  clearTimeout(typers.get(user));
  typers.set(user, setTimeout(() => {
    typers.delete(user);
    renderTyping();
  }, 4000));
  renderTyping();
}

// Their message has come: they are no longer typing it.
function stopTyping(user) {
  if (!typers.has(user)) return;
  clearTimeout(typers.get(user));
  typers.delete(user);
  renderTyping();
}

function renderTyping() {
  const typing = [...typers.keys()].map((user) => view.nameOf(user));
  typingEl.textContent = typing.length === 0 ? "" : typing.length === 1
    ? tf(gettext("%(name)s is typing…"), { name: typing[0] })
    : tf(gettext("%(names)s are typing…"), { names: typing.join(", ") });
}

// Read markers ---------------------------------------------------------------------------

let readTimer = null;
function scheduleRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(markRead, 300);
}

function markRead() {
  if (!view.isMember || !view.me || document.visibilityState !== "visible") return;
  const seq = state.seenSeq;
  if (seq <= state.readSent) return;
  if (socket.send({ type: "read", room: slug, seq })) state.readSent = seq;
  else if (state.polling) api(`${apiBase}/read/`, { method: "POST", json: { seq } }).then(() => (state.readSent = Math.max(state.readSent, seq)), () => {});
}
document.addEventListener("visibilitychange", markRead);

function setNote(text, kind = "") {
  if (!note) return;
  note.textContent = text;
  note.dataset.kind = kind;
}

// Clicks in the list: message actions, quotes, reactions, the "(edited)" marker --------------

list.addEventListener("click", async (event) => {
  const target = event.target;
  const item = target.closest("li[data-id]");
  const id = item ? Number(item.dataset.id) : 0;
  const quote = target.closest("button.reply-quote");
  if (quote) return jumpTo(Number(quote.dataset.replyTo), Number(quote.dataset.replySeq));
  if (target.closest(".edited-marker")) return showVersions(id);
  if (target.closest(".reaction-add")) return openPickerFor(id);
  const chip = target.closest("button.reaction");
  if (chip) return toggleReaction(id, chip.dataset.emoji);
  const button = target.closest("button[data-action]");
  if (!button) {
    // Touch screens have no hover: a tap on a bubble shows its actions.
    const bubbleNode = target.closest(".bubble");
    if (bubbleNode && item && !target.closest("a, button, form")) {
      for (const other of list.querySelectorAll(".show-actions")) if (other !== item) other.classList.remove("show-actions");
      item.classList.toggle("show-actions");
    }
    return;
  }
  const action = button.dataset.action;
  if (action === "reply") return startReply(id);
  if (action === "react") return openPickerFor(id);
  if (action === "edit") return startEdit(id);
  if (action === "report") return report(id);
  if (action === "delete" && !window.confirm(gettext("Delete this message for everyone?"))) return;
  button.disabled = true;
  try {
    if (action === "pin") {
      const known = state.byId.get(id);
      const pinned = Boolean(known && known.pinned);
      apply(await api(`/api/messages/${id}/pin/`, { method: pinned ? "DELETE" : "POST" }));
      loadPins();
    } else if (action === "recall") {
      apply(await api(`/api/messages/${id}/recall/`, { method: "POST" }));
    } else if (action === "delete") {
      await api(`/api/messages/${id}/`, { method: "DELETE" });
      const known = state.byId.get(id);
      if (known) apply({ ...known, deleted: true });
    }
  } catch (error) {
    setNote(error.code === "recall_window_passed" ? gettext("It is too late to recall this message.") : error.message, "error");
    button.disabled = false;
  }
});

// Moderation and safety: reports, pins, the muted notice, blocking (SPEC §6.4) ---------------

const reportDialog = document.getElementById("report-dialog");
function report(id) {
  reportDialog.dataset.id = String(id);
  reportDialog.querySelector("textarea").value = "";
  reportDialog.showModal();
}
reportDialog.addEventListener("close", async () => {
  if (reportDialog.returnValue !== "send") return;
  const reason = reportDialog.querySelector("textarea").value.trim();
  try {
    await api(`/api/messages/${reportDialog.dataset.id}/report/`, { method: "POST", json: { reason } });
    setNote(gettext("Thank you: the report was sent to the moderators."));
  } catch (error) {
    setNote(error.message, "error");
  }
});

const pinsButton = document.getElementById("pins-button");
const pinsPanel = document.getElementById("pins");
async function loadPins() {
  let pins;
  try {
    pins = await api(`${apiBase}/pins/`);
  } catch {
    return;
  }
  pinsButton.hidden = !pins.length;
  pinsButton.querySelector(".pins-count").textContent = String(pins.length);
  const items = pins.map((message) => {
    const text = message.body || (message.file && message.file.name) || gettext("Image");
    const jump = h("button", { type: "button", class: "pin-jump" }, h("strong", {}, view.nameOf(message.sender ? message.sender.username : "")), " ", Array.from(text).slice(0, 100).join(""));
    jump.addEventListener("click", () => {
      pinsPanel.hidden = true;
      pinsButton.setAttribute("aria-expanded", "false");
      jumpTo(message.id, message.seq);
    });
    return h("li", {}, jump);
  });
  pinsPanel.querySelector("ol").replaceChildren(...items);
  if (!pins.length) pinsPanel.hidden = true;
}
pinsButton.addEventListener("click", () => {
  pinsPanel.hidden = !pinsPanel.hidden;
  pinsButton.setAttribute("aria-expanded", String(!pinsPanel.hidden));
});

// A muted user sees why they cannot send, and until when; the box comes back by itself.
let mutedTimer = null;
function showMuted(until) {
  const composerForm = document.getElementById("composer");
  const notice = document.getElementById("muted-notice");
  if (!composerForm || !until) return;
  const ends = Date.parse(until);
  if (!(ends > Date.now())) return;
  for (const element of composerForm.elements) element.disabled = true;
  notice.textContent = tf(gettext("You are muted in this room until %(time)s."), { time: formatDateTime(until) });
  notice.hidden = false;
  clearTimeout(mutedTimer);
  // setTimeout holds at most ~24 days: a longer mute waits again.
  mutedTimer = setTimeout(() => (Date.now() < ends ? showMuted(until) : endMuted()), Math.min(ends - Date.now(), 2 ** 31 - 1));
}

function endMuted() {
  const composerForm = document.getElementById("composer");
  const notice = document.getElementById("muted-notice");
  clearTimeout(mutedTimer);
  if (!composerForm || notice.hidden) return;
  for (const element of composerForm.elements) element.disabled = false;
  notice.hidden = true;
}

// A mute given or lifted while the page is open (the user stream, docs/realtime-protocol.md).
document.addEventListener("parley:activity", (event) => {
  const frame = event.detail;
  if (frame.room !== slug) return;
  if (frame.type === "room.muted") showMuted(frame.until);
  else if (frame.type === "room.unmuted") endMuted();
});

const blockButton = document.getElementById("block-button");
if (blockButton) {
  blockButton.addEventListener("click", async () => {
    const username = blockButton.dataset.username;
    const blocking = blockButton.getAttribute("aria-pressed") !== "true";
    blockButton.disabled = true;
    try {
      await api("/api/blocks/", { method: blocking ? "POST" : "DELETE", json: { username } });
      blockButton.setAttribute("aria-pressed", String(blocking));
      blockButton.querySelector(".tool-label").textContent = blocking ? gettext("Unblock") : gettext("Block");
      if (blocking) view.blocked.add(username);
      else view.blocked.delete(username);
      setNote(blocking ? gettext("Blocked: they can no longer write to you here.") : gettext("Unblocked."));
    } catch (error) {
      setNote(error.message, "error");
    } finally {
      blockButton.disabled = false;
    }
  });
}

// Images ----------------------------------------------------------------------------------

const lightbox = document.getElementById("lightbox");
function openLightbox(src) {
  document.getElementById("lightbox-image").src = src;
  lightbox.showModal();
}
lightbox.addEventListener("click", (event) => {
  if (event.target === lightbox) lightbox.close();
});

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

initTimeline(view);
initEdits(view);
initReplies(view);
initReactions(view);
initNotify(view, jumpTo);
const textarea = initComposer(view);
initMentionAutocomplete(textarea);
const initial = JSON.parse(document.getElementById("initial-messages").textContent);
for (const message of initial) apply(message, { page: true });
scrollToEnd();
fillViewport();
// Opened from a search result (/rooms/<slug>/?around_seq=N&message=ID): show it, marked.
const opened = new URLSearchParams(location.search);
if (opened.has("around_seq") && opened.has("message")) {
  jumpTo(Number(opened.get("message")), Number(opened.get("around_seq")));
}
if (view.isStaff) loadPresets();
loadPins();
showMuted(root.dataset.mutedUntil);
socket.start();
if (textarea && matchMedia("(hover: hover)").matches) textarea.focus();
