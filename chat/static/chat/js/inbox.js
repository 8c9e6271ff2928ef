// A project's inbox (projects/inbox.html), live: the shell's user stream says when a room
// of ours has news (`unread`, `room.added`); the list is then asked again from
// GET /api/projects/<slug>/chats/ (newest activity first) and dates are shown in the
// page's language.
import { api, avatar, formatDateTime, gettext, h } from "./common.js";

const list = document.getElementById("inbox");

function localizeDates(root) {
  for (const time of root.querySelectorAll("time[datetime]")) time.textContent = formatDateTime(time.getAttribute("datetime"));
}

// A website-widget guest's conversation (SPEC §6.6): marked, with the owner's Close and
// Block (projects/static/projects/guest-actions.js), as templates/projects/_guest_actions.html.
function guestActions(conversation) {
  const action = (name, done, label, doneLabel) =>
    h("button", { type: "button", class: "link-button", dataset: { guestAction: name }, disabled: done }, done ? gettext(doneLabel) : gettext(label));
  return h(
    "span",
    { class: "guest-actions", dataset: { project: list.dataset.project, room: conversation.room.slug, guestName: conversation.visitor.username } },
    action("close", conversation.closed, "Close", "Closed"),
    " ",
    action("block", conversation.blocked, "Block", "Blocked"),
  );
}

function row(conversation) {
  const count = conversation.unread_count || 0;
  const guest = Boolean(conversation.visitor.guest);
  return h(
    "li",
    { class: "inbox-row", dataset: { room: conversation.room.slug } },
    h(
      "a",
      { class: "room-link", href: `/rooms/${encodeURIComponent(conversation.room.slug)}/` },
      avatar(conversation.visitor, "sm"),
      h("span", { class: "room-name" }, conversation.visitor.display_name),
      guest ? h("span", { class: "guest-mark", dataset: { guest: "" } }, gettext("guest")) : null,
      h("time", { datetime: conversation.last_activity_at }, formatDateTime(conversation.last_activity_at)),
      h("span", { class: "badge", dataset: { count: String(count) }, hidden: count <= 0 }, count > 99 ? "99+" : String(count)),
    ),
    guest ? guestActions(conversation) : null,
  );
}

if (list) {
  localizeDates(list);
  let timer = null;
  let asked = 0;
  const refresh = async () => {
    const ticket = (asked += 1);
    try {
      const rows = await api(`/api/projects/${encodeURIComponent(list.dataset.project)}/chats/`);
      if (ticket !== asked) return;
      list.replaceChildren(...(rows.length ? rows.map(row) : [h("li", { class: "nav-empty" }, gettext("No conversations yet."))]));
    } catch {
      /* the next frame tries again */
    }
  };
  document.addEventListener("parley:activity", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 150);
  });
  // Back from a conversation by the browser's Back button: the page may be a stale copy.
  window.addEventListener("pageshow", (event) => event.persisted && refresh());
}
