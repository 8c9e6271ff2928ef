// Blocking from the people directory and the profile page (SPEC §6.4): a Block/Unblock
// button per person (POST / DELETE /api/blocks/), and on the profile page the list of
// the people one blocks (GET /api/blocks/), each with Unblock.
import { api, gettext, h, refusal, tf } from "./common.js";

const note = document.getElementById("blocks-note");
const list = document.getElementById("blocks-list");

function say(text, kind = "") {
  if (!note) return;
  note.textContent = text;
  note.dataset.kind = kind;
}

function showEmpty() {
  if (list && !list.querySelector("[data-block]")) {
    list.replaceChildren(h("li", { class: "nav-empty" }, gettext("You have not blocked anyone.")));
  }
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-block]");
  if (!button) return;
  const username = button.dataset.block;
  const name = button.dataset.name || username;
  const blocking = button.getAttribute("aria-pressed") !== "true";
  button.disabled = true;
  try {
    await api("/api/blocks/", { method: blocking ? "POST" : "DELETE", json: { username } });
    if (list && list.contains(button)) {
      button.closest("li").remove();
      showEmpty();
    } else {
      button.setAttribute("aria-pressed", String(blocking));
      button.textContent = blocking ? gettext("Unblock") : gettext("Block");
    }
    say(tf(blocking ? gettext("You blocked %(name)s.") : gettext("You unblocked %(name)s."), { name }));
  } catch (error) {
    say(refusal(error), "error");
  } finally {
    button.disabled = false;
  }
});

async function loadBlocks() {
  let people;
  try {
    people = await api("/api/blocks/");
  } catch (error) {
    say(refusal(error), "error");
    return;
  }
  list.replaceChildren(...people.map((person) => {
    const name = person.display_name || person.username;
    return h("li", { class: "block-row", dataset: { username: person.username } },
      h("span", { class: "block-name" }, name, name !== person.username ? h("span", { class: "muted" }, ` @${person.username}`) : null),
      h("button", { type: "button", class: "button small", "aria-pressed": "true", dataset: { block: person.username, name } },
        gettext("Unblock")));
  }));
  showEmpty();
}

if (list) loadBlocks();
