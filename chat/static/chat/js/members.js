// The room panel's moderation buttons (SPEC §6.4): a timed mute, a ban and lifting it,
// making and unmaking admins, each one call to the REST endpoints of
// chat/api_moderation.py and chat/api.py; the lists change in place and say what happened.
import { api, formatDateTime, gettext, h, refusal, tf } from "./common.js";

const list = document.getElementById("members");
const banned = document.getElementById("banned-list");
const root = document.getElementById("room");
const status = document.getElementById("members-status");

function say(text, kind = "") {
  if (!status) return;
  status.textContent = text;
  status.dataset.kind = kind;
}

function showMuted(member, until) {
  const line = member.querySelector(".member-muted");
  const unmute = member.querySelector('[data-member-action="unmute"]');
  const select = member.querySelector('[data-member-action="mute"]');
  if (line) {
    line.hidden = !until;
    const time = line.querySelector("time");
    if (until && time) {
      time.dateTime = until;
      time.textContent = formatDateTime(until);
    }
  }
  if (unmute) unmute.hidden = !until;
  if (select) select.value = "";
}

function showBanned(username, name, until) {
  if (!banned) return;
  const old = banned.querySelector(`.ban[data-username="${CSS.escape(username)}"]`);
  const label = until
    ? [banned.dataset.labelUntil, " ", h("time", { datetime: until }, formatDateTime(until))]
    : [banned.dataset.labelForever];
  const row = h("li", { class: "ban", dataset: { username, name } },
    h("span", { class: "member-name" }, name),
    h("span", { class: "ban-until" }, ...label),
    h("button", { type: "button", class: "button small", dataset: { memberAction: "unban" } }, banned.dataset.labelUnban));
  if (old) old.replaceWith(row);
  else banned.append(row);
  banned.closest("section").hidden = false;
}

function showRole(member, role) {
  const label = member.querySelector(".role");
  if (label) {
    label.className = `role role-${role}`;
    label.textContent = role === "admin" ? list.dataset.labelAdmin : list.dataset.labelMember;
  }
  for (const button of member.querySelectorAll('[data-member-action="role"]')) button.hidden = button.dataset.role === role;
}

async function act(control) {
  const member = control.closest(".member, .ban");
  const username = member.dataset.username;
  const name = member.dataset.name || username;
  const base = `/api/rooms/${encodeURIComponent(root.dataset.room)}`;
  const action = control.dataset.memberAction;
  control.disabled = true;
  try {
    if (action === "mute") {
      const minutes = Number(control.value);
      if (!minutes) return;
      const mute = await api(`${base}/mutes/`, { method: "POST", json: { username, minutes } });
      showMuted(member, mute.until);
      say(tf(gettext("%(name)s is muted until %(time)s."), { name, time: formatDateTime(mute.until) }));
    } else if (action === "unmute") {
      await api(`${base}/mutes/${encodeURIComponent(username)}/`, { method: "DELETE" });
      showMuted(member, null);
      say(tf(gettext("%(name)s may write again."), { name }));
    } else if (action === "ban") {
      if (!window.confirm(tf(gettext("Ban %(name)s from this room? They cannot read it or come back until you lift the ban."), { name }))) return;
      const ban = await api(`${base}/bans/`, { method: "POST", json: { username } });
      member.remove();
      showBanned(username, name, ban.until);
      say(tf(gettext("%(name)s was banned."), { name }));
    } else if (action === "unban") {
      await api(`${base}/bans/${encodeURIComponent(username)}/`, { method: "DELETE" });
      member.remove();
      if (!banned.children.length) banned.closest("section").hidden = true;
      say(tf(gettext("%(name)s may come back."), { name }));
    } else if (action === "role") {
      const role = control.dataset.role;
      await api(`${base}/members/${encodeURIComponent(username)}/`, { method: "PUT", json: { role } });
      showRole(member, role);
      say(tf(role === "admin" ? gettext("%(name)s is now an admin.") : gettext("%(name)s is no longer an admin."), { name }));
    }
  } catch (error) {
    say(refusal(error), "error");
    if (action === "mute") control.value = "";
  } finally {
    control.disabled = false;
  }
}

if (banned) {
  for (const time of banned.querySelectorAll("time[datetime]")) time.textContent = formatDateTime(time.getAttribute("datetime"));
  banned.addEventListener("click", (event) => {
    const button = event.target.closest('button[data-member-action="unban"]');
    if (button) act(button);
  });
}

if (list) {
  for (const time of list.querySelectorAll(".member-muted time[datetime]")) time.textContent = formatDateTime(time.getAttribute("datetime"));
  list.addEventListener("change", (event) => {
    const select = event.target.closest('select[data-member-action="mute"]');
    if (select) act(select);
  });
  list.addEventListener("click", (event) => {
    const button = event.target.closest('button[data-member-action]');
    if (button) act(button);
  });
}
