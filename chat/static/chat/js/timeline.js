// What the room shows: the list of messages as one stretch of the room's history (the
// latest, or a window around an earlier message), kept current by upserts by id and rev,
// extended by pages upward and downward, and replaced whole while live frames wait.
import { api, gettext } from "./common.js";
import { settlePending } from "./composer.js";
import { editsChanged } from "./edits.js";
import { renderMessage } from "./messages.js";
import { originalChanged } from "./replies.js";

const root = document.getElementById("room");
const slug = root.dataset.room;
const apiBase = `/api/rooms/${encodeURIComponent(slug)}`;
const scroller = document.getElementById("scroller");
const list = document.getElementById("messages");
const historyNote = document.getElementById("history-note");
const jumpButton = document.getElementById("jump-latest");

let view = null; // the room's, set by initTimeline

export const state = {
  rev: Number(root.dataset.rev) || 0, // highest room revision applied
  maxSeq: Number(root.dataset.lastSeq) || 0, // highest seq known to exist: newer ones are new
  byId: new Map(), // id → message
  nodes: new Map(), // id → <li>
  hasOlder: root.dataset.hasOlder === "true",
  hasNewer: false, // the list is a window around an earlier message (a jump to a reply's original)
  loadingOlder: false,
  loadingNewer: false,
  held: null, // frames kept back while the list is being replaced
  polling: null,
  socketOpen: false,
  resumed: false,
  readSent: 0,
  seenSeq: 0,
  unseen: 0,
};

export const names = new Map(); // username → display name, from the senders seen

export function initTimeline(roomView) {
  view = roomView;
  scroller.addEventListener("scroll", () => {
    stick = nearBottom() && !state.hasNewer;
    if (stick && state.unseen) {
      state.unseen = 0;
      updateJump();
    }
    if (scroller.scrollTop < 200) loadOlder();
    if (state.hasNewer && scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 400) loadNewer();
  });
  jumpButton.addEventListener("click", () => (state.hasNewer ? reloadLatest() : scrollToEnd()));
}

// Placing messages --------------------------------------------------------------------------

const GROUP_MS = 5 * 60 * 1000;

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
export function stickIfNeeded() {
  if (stick) scroller.scrollTop = scroller.scrollHeight;
}

function updateJump() {
  jumpButton.hidden = !(state.hasNewer || state.unseen > 0);
  jumpButton.textContent = `${state.hasNewer ? gettext("Jump to latest") : gettext("New messages")} ↓`;
}

export function scrollToEnd() {
  scroller.scrollTop = scroller.scrollHeight;
  state.unseen = 0;
  updateJump();
}

export function lastSeq() {
  const last = list.lastElementChild;
  return last ? Number(last.dataset.seq) : 0;
}

function firstSeq() {
  const first = list.firstElementChild;
  return first ? Number(first.dataset.seq) : 0;
}

// A message not on screen belongs there only if it falls inside the loaded stretch; one
// outside it (an old message edited or reacted to in a replay, a new one while the list
// is a window) comes, as it is then, with the page that reaches it.
function inWindow(seq) {
  if (!list.firstElementChild) return !state.hasNewer;
  if (seq < firstSeq() && state.hasOlder) return false;
  return !(seq > lastSeq() && state.hasNewer);
}

// Renders the message held for `id` again (its reply quote or reactions changed locally).
export function redraw(id) {
  const message = state.byId.get(id);
  const existing = state.nodes.get(id);
  if (!message || !existing) return;
  const node = renderMessage(message, view);
  for (const kept of ["highlight", "show-actions"]) if (existing.classList.contains(kept)) node.classList.add(kept);
  existing.replaceWith(node);
  state.nodes.set(id, node);
  regroup(node);
  regroup(node.nextElementSibling);
  observe(node);
}

// Puts a message from any source (history page, live frame, replay, REST answer) in place:
// upserted by id when its rev is higher, ordered by seq, tombstones removed. `page`: it
// comes with a page of history that extends the list, so it is inside by definition.
export function apply(message, { live = false, page = false } = {}) {
  if (!message || message.room !== slug) return;
  if (message.client_id && message.sender && message.sender.username === view.me) settlePending(message.client_id);
  const isNew = message.seq > state.maxSeq;
  if (isNew) state.maxSeq = message.seq;
  const existing = state.nodes.get(message.id);
  if (message.deleted) {
    state.byId.delete(message.id);
    if (existing) {
      const next = existing.nextElementSibling;
      existing.remove();
      state.nodes.delete(message.id);
      regroup(next);
    }
    editsChanged(message);
    originalChanged(message);
    return;
  }
  const known = state.byId.get(message.id);
  if (known && known.rev >= message.rev && !(message.recalled && !known.recalled)) return;
  if (message.sender) names.set(message.sender.username, message.sender.display_name || message.sender.username);
  if (!known && !page && !inWindow(message.seq)) {
    if (live && isNew && message.kind !== "system") {
      state.unseen += 1;
      updateJump();
    }
    return;
  }
  state.byId.set(message.id, message);
  if (known) {
    editsChanged(message);
    originalChanged(message);
  }
  if (existing) {
    redraw(message.id);
    return;
  }
  const node = renderMessage(message, view);
  const wasNear = nearBottom();
  let after = list.lastElementChild; // the place by seq, usually at the end
  while (after && Number(after.dataset.seq) > message.seq) after = after.previousElementSibling;
  if (after) after.after(node);
  else list.prepend(node);
  state.nodes.set(message.id, node);
  regroup(node);
  regroup(node.nextElementSibling);
  observe(node);
  if (live && isNew) {
    const mine = message.sender && message.sender.username === view.me;
    if ((wasNear && !state.hasNewer) || mine) scrollToEnd();
    else if (message.kind !== "system") {
      state.unseen += 1;
      updateJump();
    }
  }
}

// message.edited / message.reactions / message.recalled / message.deleted: a change to a
// message this page may hold, as a newer version of it.
function applyChange(frame) {
  const known = state.byId.get(frame.id);
  if (frame.type === "message.deleted") {
    apply({ ...(known || {}), id: frame.id, room: frame.room, seq: frame.seq, rev: frame.rev, deleted: true });
    return;
  }
  if (!known) {
    if (frame.type === "message.edited" || frame.type === "message.recalled") {
      originalChanged({ ...frame, recalled: frame.type === "message.recalled" }); // quotes of an original not on screen
    }
    return;
  }
  const changed = { ...known, rev: frame.rev };
  if (frame.type === "message.recalled") Object.assign(changed, { recalled: true, body: "", html: "", image: null, reactions: [], edited_at: null });
  else if (frame.type === "message.edited") {
    Object.assign(changed, { body: frame.body, html: frame.html, edited_at: frame.edited_at });
    if (frame.mentions) Object.assign(changed, { mentions: frame.mentions, mentions_all: frame.mentions_all });
  }
  else if (frame.type === "message.pinned") changed.pinned = frame.pinned;
  else changed.reactions = frame.reactions;
  apply(changed);
}

export function bumpRev(rev) {
  if (typeof rev === "number" && rev > state.rev) state.rev = rev;
}

// Every frame that changes the list goes through here, so it can wait while the list is
// being replaced by a page (its changes would land on what is thrown away).
export function ingest(frame) {
  if (state.held) {
    state.held.push(frame);
    return;
  }
  if (frame.type === "message") apply(frame, { live: true });
  else applyChange(frame);
  bumpRev(frame.rev);
}

async function holdingFrames(work) {
  if (state.held) return work(); // already held by an outer replacement
  state.held = [];
  try {
    return await work();
  } finally {
    const held = state.held;
    state.held = null;
    for (const frame of held) ingest(frame);
  }
}

// History --------------------------------------------------------------------------------

function showHistoryNote() {
  historyNote.textContent = state.hasOlder ? "" : gettext("This is the beginning of the conversation.");
}

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
    for (const message of page) apply(message, { page: true });
    scroller.scrollTop = top + (scroller.scrollHeight - height);
    state.hasOlder = page.length > 0 && page[0].seq > 1;
    showHistoryNote();
    loaded = true;
  } catch {
    historyNote.textContent = gettext("Could not load earlier messages.");
  } finally {
    state.loadingOlder = false;
  }
  if (loaded) fillViewport();
}

// Below a window: the next page, with live frames held so none falls between the page
// and the end of the window.
async function loadNewer() {
  if (state.loadingNewer || !state.hasNewer) return;
  state.loadingNewer = true;
  try {
    await holdingFrames(async () => {
      const page = await api(`${apiBase}/messages/?after_seq=${lastSeq()}&limit=50`);
      for (const message of page) apply(message, { page: true });
      if (page.length < 50) state.hasNewer = false;
    });
  } catch {
    /* the next scroll tries again */
  } finally {
    state.loadingNewer = false;
    updateJump();
  }
}

// Too few messages to scroll means no scroll event: keep loading until there is.
export function fillViewport() {
  if (state.hasOlder && scroller.scrollHeight <= scroller.clientHeight + 200) loadOlder();
}

// The list becomes the page at `url`: the latest messages, or (`around`) a window around
// one, which has newer messages below it unless it reaches the end.
async function replaceList(url, { around = false } = {}) {
  await holdingFrames(async () => {
    const page = await api(url);
    list.replaceChildren();
    state.byId.clear();
    state.nodes.clear();
    state.unseen = 0;
    state.hasNewer = false;
    for (const message of page) apply(message, { page: true });
    state.hasOlder = page.length > 0 && page[0].seq > 1;
    if (around) state.hasNewer = lastSeq() < state.maxSeq;
    showHistoryNote();
  });
}

// The latest page instead of what is on screen (after a jump, or when what is on screen
// may hold messages purged since).
export async function reloadLatest(targetRev) {
  await replaceList(`${apiBase}/messages/`);
  bumpRev(targetRev);
  stick = true;
  scrollToEnd();
}

// A window of 50 messages around `seq` (to show a reply's original that is not loaded).
export async function showAround(seq) {
  await replaceList(`${apiBase}/messages/?around_seq=${seq}&limit=50`, { around: true });
  stick = false;
  updateJump();
}

// After a truncated replay, and each polling tick: every change since our revision,
// page by page, from REST.
export async function catchUpSinceRev(targetRev) {
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
      ingest({ ...message, type: "message" });
      bumpRev(message.rev); // also while frames are held, so the next page starts after it
    }
    if (page.length < 200) break;
  }
  bumpRev(targetRev);
}

// Read markers: what has been on screen.

const observer = "IntersectionObserver" in window
  ? new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) state.seenSeq = Math.max(state.seenSeq, Number(entry.target.dataset.seq));
    }
    view.onSeen();
  }, { root: scroller })
  : null;

function observe(node) {
  if (observer) observer.observe(node);
  else state.seenSeq = Math.max(state.seenSeq, Number(node.dataset.seq));
}
