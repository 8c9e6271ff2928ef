// The room's incoming webhooks (SPEC §6.5): list, create, revoke over REST. Only loaded
// for the room's owner and admins (templates/chat/integrations.html).
import { api, gettext, h } from "./common.js";

const root = document.getElementById("integrations");
const slug = root.dataset.room;
const list = document.getElementById("webhook-list");
const note = document.getElementById("webhook-note");
const base = `/api/rooms/${encodeURIComponent(slug)}/webhooks/`;

function row(hook) {
  const url = h("input", { class: "webhook-url", readonly: "", value: hook.url, "aria-label": gettext("Webhook URL") });
  url.addEventListener("focus", () => url.select());
  const revoke = h("button", { type: "button", class: "button small", "data-action": "revoke" }, gettext("Revoke"));
  revoke.addEventListener("click", async () => {
    if (!window.confirm(gettext("Revoke this webhook? Tools using its URL will get 404."))) return;
    try {
      await api(`${base}${hook.id}/`, { method: "DELETE" });
      item.remove();
    } catch (error) {
      note.textContent = error.message;
    }
  });
  const item = h("li", { class: "webhook", "data-id": String(hook.id) }, h("strong", {}, hook.name), url, revoke);
  return item;
}

async function load() {
  try {
    const hooks = await api(base);
    list.replaceChildren(...hooks.map(row));
  } catch (error) {
    note.textContent = error.message;
  }
}

document.getElementById("webhook-create").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("webhook-name");
  note.textContent = "";
  try {
    const hook = await api(base, { method: "POST", json: { name: input.value } });
    list.append(row(hook));
    input.value = "";
    document.getElementById("webhook-example").textContent =
      `curl -X POST -H 'Content-Type: application/json' \\\n  -d '{"text": "Build #42 passed"}' ${hook.url}`;
  } catch (error) {
    note.textContent = error.message;
  }
});

load();
