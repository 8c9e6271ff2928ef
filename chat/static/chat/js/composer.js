// The send box: text with safe retries (client_id), replies, images (picker and paste with
// preview), the rate-limit cooldown, Up arrow to edit your last message.
import { api, clientId, gettext, h, linkify, tf } from "./common.js";
import { editLast, editFailed } from "./edits.js";
import { formatSize, renderQuote } from "./messages.js";
import { clearReply, currentReply, replyQuote } from "./replies.js";

let view = null;
let composer = null;
let textarea = null;
const pending = new Map(); // client_id → {clientId, body, replyTo, node}
let cooldownUntil = 0;

function renderPending(entry) {
  const quote = entry.replyTo ? replyQuote(entry.replyTo) : null;
  const node = h(
    "li",
    { class: "message mine pending", dataset: { clientId: entry.clientId } },
    h("div", { class: "message-main" }, h("div", { class: "bubble" }, quote ? renderQuote(quote) : null, h("p", { class: "message-text" }, linkify(entry.body)), h("span", { class: "message-meta" }, h("span", { class: "sending" }, gettext("Sending…"))))),
  );
  document.getElementById("pending").append(node);
  return node;
}

export function settlePending(id) {
  const entry = pending.get(id);
  if (!entry) return;
  pending.delete(id);
  entry.node.remove();
}

function transmit(entry) {
  if (Date.now() < cooldownUntil) return; // flushPending runs when the cooldown ends
  const extra = entry.replyTo ? { reply_to: entry.replyTo } : {};
  if (view.live()) {
    view.sendFrame({ type: "message.send", room: view.slug, body: entry.body, client_id: entry.clientId, ...extra });
  } else if (view.state.polling) {
    api(`${view.apiBase}/messages/`, { method: "POST", json: { body: entry.body, client_id: entry.clientId, ...extra } })
      .then((message) => view.apply(message, { live: true }), (error) => onSendError({ code: error.code, detail: error.message, client_id: entry.clientId, retry_after: error.retryAfter }));
  }
  // Otherwise it waits: after the next resume flushPending sends it again, same client_id.
}

export function flushPending() {
  for (const entry of pending.values()) transmit(entry);
}

// What is sent goes below the newest message: a window around an old one makes way first.
function backToLatest() {
  if (view.state.hasNewer) view.reloadLatest();
}

function sendText(body) {
  const entry = { clientId: clientId(), body, replyTo: currentReply() };
  clearReply();
  backToLatest();
  entry.node = renderPending(entry);
  pending.set(entry.clientId, entry);
  view.scrollToEnd();
  transmit(entry);
}

export function onAck(frame) {
  if (view.state.byId.has(frame.id)) settlePending(frame.client_id);
}

let cooldownTimer = null;
export function startCooldown(seconds) {
  cooldownUntil = Date.now() + seconds * 1000;
  const sendButton = document.getElementById("send-button");
  composer.classList.add("cooling");
  const tick = () => {
    const left = Math.ceil((cooldownUntil - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(cooldownTimer);
      composer.classList.remove("cooling");
      sendButton.disabled = false;
      view.setNote("");
      flushPending();
      return;
    }
    sendButton.disabled = true;
    view.setNote(tf(gettext("You are sending too fast. Wait %(seconds)s s."), { seconds: left }), "warning");
  };
  clearInterval(cooldownTimer);
  cooldownTimer = setInterval(tick, 250);
  tick();
}

// An `error` frame: for a send (it names the client_id), or for an edit or a reaction.
export function onSendError(frame) {
  if (frame.code === "rate_limited" && composer) {
    startCooldown(Number(frame.retry_after) || 2);
    return;
  }
  const entry = frame.client_id ? pending.get(frame.client_id) : null;
  if (entry) {
    pending.delete(entry.clientId);
    entry.node.classList.add("failed");
    entry.node.querySelector(".sending").textContent = gettext("Not sent");
    const dismiss = h("button", { type: "button", class: "action" }, gettext("Dismiss"));
    dismiss.addEventListener("click", () => entry.node.remove());
    entry.node.querySelector(".message-main").append(h("div", { class: "message-actions visible" }, dismiss));
  } else if (!frame.client_id) {
    editFailed();
  }
  view.setNote(frame.detail || gettext("Something went wrong."), "error");
}

// Images ----------------------------------------------------------------------------------

// Pictures the server re-encodes go as `image`; anything else as a `file` (a download).
const PICTURES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
const isPicture = (file) => PICTURES.has(file.type);

let attachment = null;
export function attach(file) {
  if (!file) return;
  // Refused here, before a byte is uploaded (the server checks Content-Length too).
  const limit = isPicture(file) ? view.maxUpload : view.maxFile;
  if (limit && file.size > limit) {
    const mb = Math.floor(limit / 1048576);
    view.setNote(tf(isPicture(file) ? gettext("Images are limited to %(mb)s MB.") : gettext("Files are limited to %(mb)s MB."), { mb }), "error");
    document.getElementById("image-input").value = "";
    return;
  }
  attachment = file;
  const preview = document.getElementById("attachment-preview");
  if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
  preview.hidden = !isPicture(file);
  if (isPicture(file)) preview.src = URL.createObjectURL(file);
  const name = file.name || gettext("Pasted image");
  document.getElementById("attachment-name").textContent = isPicture(file) ? name : `${name} (${formatSize(file.size)})`;
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
  const replyTo = currentReply();
  const form = new FormData();
  form.append(isPicture(file) ? "image" : "file", file, file.name || "pasted.png");
  form.append("body", caption);
  form.append("client_id", id);
  if (replyTo) form.append("reply_to", String(replyTo));
  backToLatest();
  view.setNote(isPicture(file) ? gettext("Uploading image…") : gettext("Uploading file…"));
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      view.apply(await api(`${view.apiBase}/messages/`, { method: "POST", form }), { live: true });
      view.setNote("");
      if (currentReply() === replyTo) clearReply();
      return true;
    } catch (error) {
      if (error.status === 0) {
        await new Promise((resolve) => setTimeout(resolve, 1000 * (attempt + 1)));
        continue; // the same client_id makes the retry safe
      }
      if (error.code === "rate_limited") startCooldown(error.retryAfter || 2);
      else if (error.code === "muted") view.showMuted(error.until);
      else if (error.code === "quota_exceeded") view.setNote(gettext("Your files take up all your space: delete some to send more."), "error");
      else view.setNote(error.message, "error");
      return false;
    }
  }
  view.setNote(gettext("Could not upload the image."), "error");
  return false;
}

// The form ----------------------------------------------------------------------------------

function autosize() {
  textarea.style.height = "auto";
  textarea.style.height = `${Math.min(textarea.scrollHeight, 160)}px`;
}

// Returns the send box, or null for visitors who may only read.
export function initComposer(roomView) {
  view = roomView;
  composer = document.getElementById("composer");
  if (!composer) return null;
  textarea = composer.elements.body;
  const fileInput = document.getElementById("image-input");
  document.getElementById("attach-button").addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => attach(fileInput.files[0]));
  document.getElementById("attachment-cancel").addEventListener("click", () => {
    clearAttachment();
    textarea.focus();
  });
  textarea.addEventListener("paste", (event) => {
    const items = event.clipboardData ? Array.from(event.clipboardData.files || []) : [];
    if (items.length) {
      event.preventDefault();
      attach(items[0]);
    }
  });
  // Drag and drop anywhere on the room.
  const room = document.getElementById("room");
  room.addEventListener("dragover", (event) => {
    if (event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files")) event.preventDefault();
  });
  room.addEventListener("drop", (event) => {
    const files = event.dataTransfer ? Array.from(event.dataTransfer.files || []) : [];
    if (!files.length) return;
    event.preventDefault();
    attach(files[0]);
  });

  let lastTyping = 0;
  // Overlong text is said before anything is cut (the box has no maxlength to cut a paste).
  const sendButton = document.getElementById("send-button");
  const checkLength = () => {
    const over = textarea.value.length - view.maxBody;
    textarea.setAttribute("aria-invalid", over > 0 ? "true" : "false");
    sendButton.disabled = over > 0;
    if (over > 0) {
      view.setNote(tf(gettext("%(over)s characters too long (at most %(max)s)."), { over, max: view.maxBody }), "error");
      composer.dataset.overlong = "true";
    } else if (composer.dataset.overlong) {
      delete composer.dataset.overlong;
      view.setNote("");
    }
  };
  textarea.addEventListener("input", () => {
    autosize();
    checkLength();
    if (Date.now() - lastTyping > 2000 && textarea.value.trim()) {
      lastTyping = Date.now();
      view.sendFrame({ type: "typing", room: view.slug });
    }
  });

  textarea.addEventListener("keydown", (event) => {
    if (event.isComposing) return;
    const plain = !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey;
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      composer.requestSubmit();
    } else if (event.key === "ArrowUp" && plain && !textarea.value && !attachment) {
      if (editLast()) event.preventDefault();
    } else if (event.key === "Escape" && currentReply()) {
      clearReply();
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
    if (!body || body.length > view.maxBody) return;
    textarea.value = "";
    autosize();
    sendText(body);
  });
  return textarea;
}
