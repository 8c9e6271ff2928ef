// Replies: the quote above the send box, quotes kept current from the original's own
// changes, and the jump from a quote to its original (loaded around its seq when it is
// not on screen).
import { gettext, tf } from "./common.js";
import { excerpt, senderName } from "./messages.js";

let view = null;
let replyTo = null; // the id of the message being answered
const preview = document.getElementById("reply-preview");

export function initReplies(roomView) {
  view = roomView;
  const cancel = document.getElementById("reply-cancel");
  if (cancel) {
    cancel.addEventListener("click", () => {
      clearReply();
      document.getElementById("message-body").focus();
    });
  }
}

export function currentReply() {
  return replyTo;
}

// The `reply_to` object a message answering `id` will carry, from what is on screen.
export function replyQuote(id) {
  const original = view.state.byId.get(id);
  if (!original) return null;
  return {
    id: original.id,
    seq: original.seq,
    sender: original.sender,
    excerpt: original.recalled ? null : excerpt(original.body),
    recalled: original.recalled,
    deleted: false,
  };
}

function showPreview() {
  const original = replyTo ? view.state.byId.get(replyTo) : null;
  if (!preview || !original) {
    if (preview) preview.hidden = true;
    return;
  }
  preview.querySelector(".reply-preview-label").textContent = tf(gettext("Replying to %(name)s"), { name: senderName(original) });
  let text = original.recalled ? gettext("Message recalled") : excerpt(original.body);
  if (!text) text = gettext("Image");
  preview.querySelector(".reply-preview-excerpt").textContent = text;
  preview.hidden = false;
}

export function startReply(id) {
  if (!preview || !view.state.byId.has(id)) return;
  replyTo = id;
  showPreview();
  document.getElementById("message-body").focus();
}

export function clearReply() {
  replyTo = null;
  if (preview) preview.hidden = true;
}

// `original` changed (edited, recalled, deleted, or replayed as it is now): the quotes of
// it in replies on screen follow, as the server's reply_to would show it.
export function originalChanged(original) {
  if (original.id === replyTo) {
    if (original.deleted) {
      clearReply();
      view.setNote(gettext("The message you were replying to was deleted."), "warning");
    } else {
      showPreview();
    }
  }
  const gone = Boolean(original.recalled || original.deleted);
  for (const [id, message] of view.state.byId) {
    const quote = message.reply_to;
    if (!quote || quote.id !== original.id) continue;
    const current = {
      ...quote,
      excerpt: gone ? null : original.body !== undefined ? excerpt(original.body) : quote.excerpt,
      recalled: Boolean(original.recalled),
      deleted: Boolean(original.deleted),
    };
    if (current.excerpt === quote.excerpt && current.recalled === quote.recalled && current.deleted === quote.deleted) continue;
    view.state.byId.set(id, { ...message, reply_to: current });
    view.redraw(id);
  }
}

function highlight(node) {
  node.classList.remove("highlight");
  void node.offsetWidth; // restart the fade when the same message is shown again
  node.classList.add("highlight");
  setTimeout(() => {
    const current = view.state.nodes.get(Number(node.dataset.id));
    if (current) current.classList.remove("highlight");
  }, 3000);
}

export async function jumpTo(id, seq) {
  if (!view.state.nodes.has(id)) {
    try {
      await view.showAround(seq);
    } catch {
      view.setNote(gettext("Could not load that message."), "error");
      return;
    }
  }
  const node = view.state.nodes.get(id);
  if (!node) {
    view.setNote(gettext("That message is no longer here."), "warning");
    return;
  }
  node.scrollIntoView({ block: "center" });
  highlight(node);
}
