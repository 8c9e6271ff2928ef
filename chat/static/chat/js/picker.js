// The emoji picker: every emoji (skin tones aside) with its name in English, 简体中文 and
// 繁體中文, from a list this site serves (vendor/emoji/emoji.json, built by
// scripts/build_emoji_data.py), searchable in all three languages, no network beyond it.
// Plain DOM styled by parley.css: the emoji-picker-element widget needs inline styles
// that the CSP (style-src 'self') refuses.
import { gettext, h } from "./common.js";

const GROUPS = [
  [0, "😀", () => gettext("Smileys & emotion")],
  [1, "👋", () => gettext("People & body")],
  [3, "🐱", () => gettext("Animals & nature")],
  [4, "🍎", () => gettext("Food & drink")],
  [5, "✈️", () => gettext("Travel & places")],
  [6, "⚽", () => gettext("Activities")],
  [7, "💡", () => gettext("Objects")],
  [8, "🔣", () => gettext("Symbols")],
  [9, "🏁", () => gettext("Flags")],
];
const QUICK = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];
const RECENT_KEY = "parley.recent-emoji";
const RESULTS_SHOWN = 160;
// Rows are [emoji, group, English, 简体中文, 繁體中文, search words].
const NAME_COLUMN = { "zh-hans": 3, "zh-hant": 4 }[document.documentElement.lang.toLowerCase()] || 2;

const dialog = document.getElementById("emoji-picker");
const search = document.getElementById("emoji-search");
const tabs = document.getElementById("emoji-tabs");
const body = document.getElementById("emoji-body");
const results = document.getElementById("emoji-results");

let rows = null;
const byEmoji = new Map();
let loading = null;
let onPick = null;

function load() {
  loading = loading || fetch(dialog.dataset.source, { credentials: "same-origin" })
    .then((response) => {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return response.json();
    })
    .then((data) => {
      rows = data.emoji.map((row) => ({ emoji: row[0], group: row[1], name: row[NAME_COLUMN], search: row.slice(2).join(" ").toLowerCase() }));
      for (const row of rows) byEmoji.set(row.emoji, row);
    })
    .catch((error) => {
      loading = null; // the next opening tries again
      throw error;
    });
  return loading;
}

function recent() {
  try {
    const saved = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
    return Array.isArray(saved) ? saved.filter((emoji) => typeof emoji === "string") : [];
  } catch {
    return [];
  }
}

function remember(emoji) {
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify([emoji, ...recent().filter((e) => e !== emoji)].slice(0, 16)));
  } catch {
    /* private mode: nothing remembered */
  }
}

function option(emoji) {
  const row = byEmoji.get(emoji);
  const name = row ? row.name : emoji;
  return h("button", { type: "button", class: "emoji-option", dataset: { emoji }, title: name, "aria-label": name }, emoji);
}

function section(id, title, emojis) {
  return h("section", { class: "picker-section", id, "aria-label": title }, h("h3", { class: "picker-group" }, title), h("div", { class: "picker-grid" }, emojis.map(option)));
}

function frequent() {
  return [...new Set([...recent(), ...QUICK])].slice(0, 16);
}

function build() {
  body.replaceChildren(
    section("emoji-group-frequent", gettext("Frequently used"), frequent()),
    ...GROUPS.map(([group, , title]) => section(`emoji-group-${group}`, title(), rows.filter((row) => row.group === group).map((row) => row.emoji))),
  );
  tabs.replaceChildren(...GROUPS.map(([group, glyph, title]) => {
    const tab = h("button", { type: "button", class: "picker-tab", title: title(), "aria-label": title() }, glyph);
    tab.addEventListener("click", () => {
      document.getElementById(`emoji-group-${group}`).scrollIntoView({ block: "start" });
    });
    return tab;
  }));
}

function showResults() {
  const query = search.value.trim().toLowerCase();
  body.hidden = Boolean(query);
  results.hidden = !query;
  if (!query || !rows) return;
  const terms = query.split(/\s+/);
  const found = rows.filter((row) => row.emoji === query || terms.every((term) => row.search.includes(term))).slice(0, RESULTS_SHOWN);
  results.replaceChildren(found.length
    ? h("div", { class: "picker-grid" }, found.map((row) => option(row.emoji)))
    : h("p", { class: "picker-note" }, gettext("No emoji found.")));
}

function pick(emoji) {
  const callback = onPick;
  remember(emoji);
  dialog.close();
  if (callback) callback(emoji);
}

if (dialog) {
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) {
      dialog.close();
      return;
    }
    const choice = event.target.closest(".emoji-option");
    if (choice) pick(choice.dataset.emoji);
  });
  dialog.addEventListener("close", () => (onPick = null));
  search.addEventListener("input", showResults);
  search.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.isComposing) return;
    event.preventDefault();
    const first = results.querySelector(".emoji-option");
    if (first) pick(first.dataset.emoji);
  });
}

// Opens the picker; `callback(emoji)` runs with the one chosen.
export async function openPicker(callback) {
  onPick = callback;
  search.value = "";
  showResults();
  dialog.showModal();
  if (matchMedia("(hover: hover)").matches) search.focus(); // no keyboard popping up on phones
  if (!rows) {
    body.replaceChildren(h("p", { class: "picker-note" }, gettext("Loading…")));
    try {
      await load();
    } catch {
      body.replaceChildren(h("p", { class: "picker-note" }, gettext("Could not load the emoji.")));
      return;
    }
    build();
    showResults();
    return;
  }
  body.querySelector("#emoji-group-frequent").replaceWith(section("emoji-group-frequent", gettext("Frequently used"), frequent()));
  body.scrollTop = 0;
}
