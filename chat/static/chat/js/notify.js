// The room page's share of SPEC §6.2: the notification settings panel (#room-settings),
// mentions marked in bubbles, and opening the room at a message (#message-<id>-<seq>, the
// address notifications open).
import { api, gettext } from "./common.js";

// shell.js (loaded by every page under its own, hashed, address: importing it here would
// run a second copy) keeps the sidebar: it hears new settings as an event.
function applySettings(settings) {
  document.dispatchEvent(new CustomEvent("parley:room-settings", { detail: settings }));
}

const FOREVER = "2100-01-01T00:00:00+00:00";

function initSettingsPanel(view) {
  const panel = document.getElementById("room-settings");
  const toggle = document.getElementById("room-settings-toggle");
  if (!panel || !toggle) return;
  const form = document.getElementById("room-settings-form");
  const note = document.getElementById("room-settings-note");
  const url = `${view.apiBase}/settings/`;
  const show = (settings) => {
    for (const radio of form.elements.notify) radio.checked = radio.value === settings.notify;
    const muted = settings.muted_until && Date.parse(settings.muted_until) > Date.now();
    form.elements.mute.value = !muted ? "" : settings.muted_until.startsWith("2100-") ? "forever" : "kept";
    note.textContent = muted && !settings.muted_until.startsWith("2100-")
      ? `${gettext("Muted until")} ${new Date(settings.muted_until).toLocaleString()}`
      : "";
    panel.dataset.notify = settings.notify;
    applySettings(settings);
  };
  let loaded = false;
  toggle.addEventListener("click", async () => {
    const open = panel.hidden;
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open && !loaded) {
      try {
        show(await api(url));
        loaded = true;
      } catch (error) {
        note.textContent = error.message;
      }
    }
  });
  const save = async (json) => {
    try {
      show(await api(url, { method: "PUT", json }));
    } catch (error) {
      note.textContent = error.message;
    }
  };
  form.addEventListener("change", (event) => {
    if (event.target.name === "notify") save({ notify: event.target.value });
    if (event.target.name === "mute") {
      const value = event.target.value;
      if (value === "kept") return;
      const until = !value ? null : value === "forever" ? FOREVER : new Date(Date.now() + Number(value) * 1000).toISOString();
      save({ muted_until: until });
    }
  });
  form.addEventListener("submit", (event) => event.preventDefault());
}

// Mentions in a bubble: each @name the message mentions (and @all / @room when it
// mentions everyone) becomes a mark; one naming the reader stands out more.
function markMentions(li, message, me) {
  const names = new Set(message.mentions || []);
  if (!names.size && !message.mentions_all) return;
  const text = li.querySelector(".message-text");
  if (!text) return;
  if (message.mentions_all || names.has(me)) li.classList.add("mentions-me");
  // The server's rendering marks every @word (chat/formatting.py); those that mention someone stand out.
  for (const span of text.querySelectorAll(".mention[data-username]")) {
    const name = span.dataset.username;
    const everyone = ["all", "room"].includes(name.toLowerCase()) && message.mentions_all;
    if (names.has(name) || everyone) span.classList.add("mention-real");
    if (name === me || everyone) span.classList.add("mention-me");
  }
  const pattern = /(^|[^\w@.+-])@([\w.+-]+)/gu;
  const walker = document.createTreeWalker(text, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) {
    if (!walker.currentNode.parentElement.closest("code, pre, a, .mention")) nodes.push(walker.currentNode);
  }
  for (const node of nodes) {
    const value = node.nodeValue;
    let last = 0;
    const parts = [];
    for (const match of value.matchAll(pattern)) {
      const name = match[2].replace(/[.+-]+$/, "");
      const everyone = ["all", "room"].includes(name.toLowerCase()) && message.mentions_all;
      if (!names.has(name) && !everyone) continue;
      const start = match.index + match[1].length;
      parts.push(value.slice(last, start));
      const mark = document.createElement("span");
      mark.className = `mention mention-real${everyone || name === me ? " mention-me" : ""}`;
      mark.textContent = `@${name}`;
      parts.push(mark);
      last = start + 1 + name.length;
    }
    if (!parts.length) continue;
    parts.push(value.slice(last));
    node.replaceWith(...parts);
  }
}

export function initNotify(view, jumpTo) {
  initSettingsPanel(view);
  view.decorators.push((li, message) => markMentions(li, message, view.me));
  const openFromHash = () => {
    const match = /^#message-(\d+)-(\d+)$/.exec(window.location.hash);
    if (match) jumpTo(Number(match[1]), Number(match[2]));
  };
  window.addEventListener("hashchange", openFromHash);
  setTimeout(openFromHash); // after the first page is on screen
}

// @ autocomplete in the composer: GET /api/users/?q= (username, display name, pinyin),
// arrow keys to move, Enter or Tab to take, Escape to close.
export function initMentionAutocomplete(textarea) {
  if (!textarea) return;
  const form = textarea.form;
  const row = textarea.closest(".composer-row") || form;
  row.style.position = "relative";
  const listbox = document.createElement("ul");
  listbox.className = "mention-suggest";
  listbox.id = "mention-suggest";
  listbox.setAttribute("role", "listbox");
  listbox.setAttribute("aria-label", gettext("People to mention"));
  listbox.hidden = true;
  row.append(listbox);
  textarea.setAttribute("aria-controls", listbox.id);
  let people = [];
  let selected = 0;
  let asked = 0;
  let timer = null;

  const token = () => {
    const before = textarea.value.slice(0, textarea.selectionStart);
    const match = /(^|[^\w@.+-])@([^\s@]{1,30})$/u.exec(before);
    return match ? { query: match[2], start: before.length - match[2].length - 1 } : null;
  };
  const close = () => {
    listbox.hidden = true;
    people = [];
    textarea.removeAttribute("aria-activedescendant");
  };
  const paint = () => {
    listbox.replaceChildren(...people.map((person, index) => {
      const li = document.createElement("li");
      li.id = `mention-option-${index}`;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(index === selected));
      li.dataset.username = person.username;
      const name = document.createElement("span");
      name.className = "suggest-name";
      name.textContent = person.display_name;
      const username = document.createElement("span");
      username.className = "suggest-username";
      username.textContent = `@${person.username}`;
      li.append(name, username);
      li.addEventListener("mousedown", (event) => {
        event.preventDefault();
        take(index);
      });
      return li;
    }));
    listbox.hidden = !people.length;
    if (people.length) textarea.setAttribute("aria-activedescendant", `mention-option-${selected}`);
  };
  const take = (index) => {
    const at = token();
    const person = people[index];
    if (!at || !person) return close();
    const end = textarea.selectionStart;
    const insert = `@${person.username} `;
    textarea.value = textarea.value.slice(0, at.start) + insert + textarea.value.slice(end);
    const caret = at.start + insert.length;
    textarea.setSelectionRange(caret, caret);
    close();
    textarea.dispatchEvent(new Event("input"));
  };
  const lookUp = async () => {
    const at = token();
    const ticket = (asked += 1);
    if (!at) return close();
    try {
      const found = await api(`/api/users/?q=${encodeURIComponent(at.query)}`);
      if (ticket !== asked) return;
      people = found;
      selected = 0;
      paint();
    } catch {
      close();
    }
  };
  textarea.addEventListener("input", () => {
    clearTimeout(timer);
    if (!token()) return close();
    timer = setTimeout(lookUp, 150);
  });
  textarea.addEventListener("blur", () => setTimeout(close, 150));
  // On the form, capturing: before the composer's own keys (Enter sends).
  form.addEventListener("keydown", (event) => {
    if (event.target !== textarea || listbox.hidden || event.isComposing) return;
    const keys = {
      ArrowDown: () => { selected = (selected + 1) % people.length; paint(); },
      ArrowUp: () => { selected = (selected - 1 + people.length) % people.length; paint(); },
      Enter: () => take(selected),
      Tab: () => take(selected),
      Escape: close,
    };
    const action = keys[event.key];
    if (!action || event.shiftKey || event.ctrlKey || event.metaKey || event.altKey) return;
    event.preventDefault();
    event.stopPropagation();
    action();
  }, { capture: true });
}
