// Editing your own messages in place (Enter saves, Esc cancels, Up arrow in the empty send
// box edits your last one) and the versions behind "(edited)".
import { api, formatDateTime, gettext, h, linkify, tf } from "./common.js";
import { canEdit } from "./messages.js";

let view = null;
let editor = null; // {id, form, textarea}: the open editor, put back into each new render
const saving = new Map(); // id → {body, timer}: sent, its message.edited not seen yet
// A frame lost with its socket gets no answer: after this long the edit goes by REST
// (the same body twice changes nothing, so both arriving is harmless).
const SOCKET_ANSWER_MS = 6000;

export function initEdits(roomView) {
  view = roomView;
  view.decorators.push(decorate);
  const dialog = document.getElementById("versions");
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
}

function composerBox() {
  return document.getElementById("message-body");
}

function autosize(textarea) {
  textarea.style.height = "auto";
  textarea.style.height = `${Math.min(textarea.scrollHeight, 240)}px`;
}

// After each render of a message: the saved text shown until the server confirms it, and
// the open editor moved into the new bubble with its focus and selection.
function decorate(node, message) {
  const entry = saving.get(message.id);
  const bubble = node.querySelector(".bubble");
  if (!bubble) return;
  const put = (element) => {
    const text = bubble.querySelector(".message-text");
    if (text) text.replaceWith(element);
    else bubble.insertBefore(element, bubble.querySelector(".message-meta"));
  };
  if (entry) {
    node.classList.add("saving");
    put(h("p", { class: "message-text" }, linkify(entry.body)));
  }
  if (editor && editor.id === message.id) {
    const { textarea } = editor;
    const focused = document.activeElement === textarea;
    const { selectionStart, selectionEnd } = textarea;
    node.classList.add("editing");
    put(editor.form);
    if (focused) {
      queueMicrotask(() => {
        textarea.focus();
        textarea.setSelectionRange(selectionStart, selectionEnd);
      });
    }
  }
}

export function startEdit(id) {
  const message = view.state.byId.get(id);
  if (!message || !canEdit(message, view)) return false;
  closeEditor();
  const textarea = h("textarea", { class: "edit-box", rows: "1", maxlength: view.maxBody, "aria-label": gettext("Edit message") });
  textarea.value = saving.has(id) ? saving.get(id).body : message.body;
  const cancel = h("button", { type: "button", class: "button small" }, gettext("Cancel"));
  const save = h("button", { type: "submit", class: "button small primary" }, gettext("Save"));
  const form = h("form", { class: "edit-form" }, textarea, h("div", { class: "edit-tools" }, h("span", { class: "edit-hint" }, gettext("Enter to save, Esc to cancel")), cancel, save));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    saveEdit();
  });
  cancel.addEventListener("click", () => closeEditor(true));
  textarea.addEventListener("input", () => autosize(textarea));
  textarea.addEventListener("keydown", (event) => {
    if (event.isComposing) return;
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      saveEdit();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeEditor(true);
    }
  });
  editor = { id, form, textarea };
  view.redraw(id);
  const node = view.state.nodes.get(id);
  if (node) node.scrollIntoView({ block: "nearest" });
  textarea.focus();
  textarea.setSelectionRange(textarea.value.length, textarea.value.length);
  autosize(textarea);
  return true;
}

// Up arrow in the empty send box: your newest message that may still be edited.
export function editLast() {
  for (let node = view.list.lastElementChild; node; node = node.previousElementSibling) {
    const message = view.state.byId.get(Number(node.dataset.id));
    if (message && canEdit(message, view)) return startEdit(message.id);
  }
  return false;
}

function closeEditor(refocus = false) {
  if (!editor) return;
  const { id } = editor;
  editor = null;
  view.redraw(id);
  if (refocus && composerBox()) composerBox().focus();
}

function saveEdit() {
  const { id, textarea } = editor;
  const message = view.state.byId.get(id);
  const body = textarea.value.trim();
  if (!message || body === message.body) {
    closeEditor(true);
    return;
  }
  if (!body && !message.image) {
    view.setNote(gettext("A message cannot be empty: delete it instead."), "error");
    return;
  }
  editor = null;
  const entry = { body, timer: null };
  saving.set(id, entry);
  view.redraw(id);
  if (composerBox()) composerBox().focus();
  // A socket frame needs a body; an image's caption emptied goes by REST.
  if (view.live() && body) {
    view.sendFrame({ type: "message.edit", id, body });
    entry.timer = setTimeout(() => patch(id, entry), SOCKET_ANSWER_MS);
  } else {
    patch(id, entry);
  }
}

async function patch(id, entry) {
  if (saving.get(id) !== entry) return;
  try {
    const message = await api(`/api/messages/${id}/`, { method: "PATCH", json: { body: entry.body } });
    if (saving.get(id) === entry) saving.delete(id);
    view.apply(message);
    view.redraw(id); // when the socket's message.edited came first, apply changed nothing
  } catch (error) {
    failed(id, entry, error.message);
  }
}

// The edit was refused: the message as it was, and the editor again with what was typed.
function failed(id, entry, detail) {
  clearTimeout(entry.timer);
  if (saving.get(id) !== entry) return;
  saving.delete(id);
  view.redraw(id);
  if (detail) view.setNote(detail, "error");
  if (!editor && startEdit(id)) editor.textarea.value = entry.body;
}

// An error frame that names no send: an edit sent over the socket was refused.
export function editFailed() {
  for (const [id, entry] of [...saving]) if (entry.timer) failed(id, entry, "");
}

// A newer version of a message arrived (called before it is drawn).
export function editsChanged(message) {
  const entry = saving.get(message.id);
  if (entry && (message.body === entry.body || message.recalled || message.deleted)) {
    clearTimeout(entry.timer);
    saving.delete(message.id);
  }
  if (editor && editor.id === message.id && (message.recalled || message.deleted)) {
    editor = null;
    view.setNote(gettext("The message you were editing was recalled or deleted."), "warning");
  }
}

// "(edited)": every body the message has had, oldest first.
export async function showVersions(id) {
  const dialog = document.getElementById("versions");
  const list = document.getElementById("versions-list");
  list.replaceChildren(h("li", { class: "versions-note" }, gettext("Loading…")));
  if (!dialog.open) dialog.showModal();
  let versions;
  try {
    versions = await api(`/api/messages/${id}/history/`);
  } catch {
    list.replaceChildren(h("li", { class: "versions-note" }, gettext("Could not load the versions.")));
    return;
  }
  if (!versions.length) {
    list.replaceChildren(h("li", { class: "versions-note" }, gettext("This message has no versions to show.")));
    return;
  }
  const label = (index) => {
    if (index === 0) return gettext("Original");
    if (index === versions.length - 1) return gettext("Current");
    return tf(gettext("Edit %(number)s"), { number: index });
  };
  list.replaceChildren(...versions.map((version, index) => h(
    "li",
    { class: "version" },
    h("div", { class: "version-head" }, h("strong", {}, label(index)), h("time", { datetime: version.edited_at }, formatDateTime(version.edited_at))),
    h("p", { class: "version-body" }, version.body),
  )));
}
