// Reactions: the bar under a bubble (a click toggles yours; hovering or a long press shows
// who reacted) and the picker to add one. Over the socket when it is up, else REST.
import { api, h } from "./common.js";
import { openPicker } from "./picker.js";

let view = null;
const LONG_PRESS_MS = 500;
let longPressed = null; // {id, emoji}: the press already showed who, the click after it toggles nothing
let popover = null;

export function initReactions(roomView) {
  view = roomView;
  let timer = null;
  let start = null;
  const cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  view.list.addEventListener("pointerdown", (event) => {
    const chip = event.target.closest("button.reaction[data-emoji]");
    longPressed = null;
    if (!chip || event.pointerType === "mouse") return;
    start = [event.clientX, event.clientY];
    timer = setTimeout(() => {
      longPressed = { id: Number(chip.closest("li").dataset.id), emoji: chip.dataset.emoji };
      showWho(chip);
    }, LONG_PRESS_MS);
  });
  view.list.addEventListener("pointermove", (event) => {
    if (timer && Math.hypot(event.clientX - start[0], event.clientY - start[1]) > 10) cancel();
  });
  view.list.addEventListener("pointerup", cancel);
  view.list.addEventListener("pointercancel", cancel);
  view.list.addEventListener("contextmenu", (event) => {
    if (event.target.closest("button.reaction[data-emoji]")) event.preventDefault();
  });
  document.addEventListener("pointerdown", (event) => {
    if (popover && !popover.contains(event.target)) hideWho();
  }, true);
  document.getElementById("scroller").addEventListener("scroll", hideWho, { passive: true });
}

// Touch screens have no hover for the title: the same text in a small bubble by the chip.
function showWho(chip) {
  hideWho();
  popover = h("div", { class: "who-popover", role: "status" }, chip.title);
  document.body.append(popover);
  const spot = chip.getBoundingClientRect();
  const width = popover.offsetWidth;
  const left = Math.max(8, Math.min(spot.left + spot.width / 2 - width / 2, window.innerWidth - width - 8));
  const above = spot.top - popover.offsetHeight - 8;
  popover.style.left = `${left}px`;
  popover.style.top = `${above > 8 ? above : spot.bottom + 8}px`;
}

function hideWho() {
  if (popover) popover.remove();
  popover = null;
}

function reactionOf(id, emoji) {
  const message = view.state.byId.get(id);
  return message && (message.reactions || []).find((reaction) => reaction.emoji === emoji);
}

function isMine(reaction) {
  return Boolean(reaction && reaction.users.includes(view.me));
}

export function toggleReaction(id, emoji) {
  if (longPressed && longPressed.id === id && longPressed.emoji === emoji) {
    longPressed = null;
    return;
  }
  if (!view.me || !view.state.byId.has(id)) return;
  if (isMine(reactionOf(id, emoji))) removeReaction(id, emoji);
  else addReaction(id, emoji);
}

export function openPickerFor(id) {
  if (!view.me || !view.state.byId.has(id)) return;
  openPicker((emoji) => {
    if (!isMine(reactionOf(id, emoji))) addReaction(id, emoji);
  });
}

function path(id, emoji) {
  return `/api/messages/${id}/reactions/${encodeURIComponent(emoji)}/`;
}

async function addReaction(id, emoji) {
  if (view.live()) {
    view.sendFrame({ type: "reaction.add", id, emoji });
    return;
  }
  try {
    const answer = await api(path(id, emoji), { method: "PUT" });
    view.ingest({ ...answer, type: "message.reactions" });
  } catch (error) {
    view.setNote(error.message, "error");
  }
}

async function removeReaction(id, emoji) {
  if (view.live()) {
    view.sendFrame({ type: "reaction.remove", id, emoji });
    return;
  }
  try {
    await api(path(id, emoji), { method: "DELETE" });
  } catch (error) {
    view.setNote(error.message, "error");
    return;
  }
  // A 204 carries no state: ours comes off here, the next poll brings everyone else's.
  const message = view.state.byId.get(id);
  if (!message) return;
  const reactions = message.reactions
    .map((r) => (r.emoji === emoji && isMine(r) ? { ...r, count: r.count - 1, users: r.users.filter((u) => u !== view.me) } : r))
    .filter((r) => r.count > 0);
  view.state.byId.set(id, { ...message, reactions });
  view.redraw(id);
}
