// Message bubbles: one <li> per message object (SPEC §5, §6.1, §6.7), built from text
// nodes, plus the server's sanitized `html` through insertServerHtml, the one place that
// turns HTML into nodes.
import { avatar, formatDateTime, formatTime, gettext, h, linkify, tf } from "./common.js";

// chat/formatting.py's allow-list: what the server may send, nothing more is kept.
const TAGS = new Set(["P", "BR", "STRONG", "EM", "S", "CODE", "PRE", "BLOCKQUOTE", "UL", "OL", "LI", "A", "SPAN"]);
const ATTRIBUTES = { A: ["href", "title", "rel"], OL: ["start"], CODE: ["class"], SPAN: ["class", "data-username"] };
const SAFE_HREF = /^(?:https?:|mailto:)/i;
const SERVER_REL = "noopener noreferrer nofollow";

function keepAllowed(parent) {
  for (const node of [...parent.childNodes]) {
    if (node.nodeType === Node.TEXT_NODE) continue;
    if (node.nodeType !== Node.ELEMENT_NODE) {
      node.remove(); // comments, processing instructions
    } else if (!TAGS.has(node.tagName)) {
      node.replaceWith(node.textContent);
    } else {
      const allowed = ATTRIBUTES[node.tagName] || [];
      for (const attribute of [...node.attributes]) {
        if (!allowed.includes(attribute.name)) node.removeAttribute(attribute.name);
      }
      if (node.tagName === "A") {
        if (!SAFE_HREF.test(node.getAttribute("href") || "")) node.removeAttribute("href");
        node.target = "_blank";
        node.rel = node.rel || SERVER_REL;
      }
      keepAllowed(node);
    }
  }
}

// `html` is rendered and sanitized by the server (chat/formatting.py). It is parsed in an
// inert document (no script runs, nothing loads), filtered once more with the same
// allow-list, and its links open in a new tab.
export function insertServerHtml(element, html) {
  const parsed = new DOMParser().parseFromString(html, "text/html");
  keepAllowed(parsed.body);
  element.replaceChildren(...parsed.body.childNodes);
}

const SVG = "http://www.w3.org/2000/svg";

// A 24×24 stroke icon from path data (actions are icons so five fit at 360 px).
export function icon(...paths) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "18");
  svg.setAttribute("height", "18");
  svg.setAttribute("aria-hidden", "true");
  for (const d of paths) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

export const ICONS = {
  reply: ["M10 8V4L3 11l7 7v-4c5 0 8.5 1.5 11 5-1-5-4-10-11-11z"],
  react: ["M12 21a9 9 0 1 1 9-9", "M8 14.5c1 1.3 2.3 2 4 2s3-.7 4-2", "M9 9.5h.01M15 9.5h.01", "M19 15v6M16 18h6"],
  edit: ["M4 20h4L19 9l-4-4L4 16v4z", "M13.5 6.5l4 4"],
  pin: ["M9 4h6l-1 6 4 4H6l4-4-1-6z", "M12 14v7"],
  report: ["M5 21V4h11l-2 4 2 4H5"],
};

// Someone who deleted their account is "deleted user" in the reader's language.
export function personName(sender) {
  if (!sender) return "";
  if (sender.deleted) return gettext("deleted user");
  return sender.display_name || sender.username;
}

// Who may pin (SPEC §6.4): a room's owner/admins and staff; either person of a conversation.
function canPin(message, view) {
  if (!view.me || message.kind === "system" || message.recalled) return false;
  return view.canModerate || view.isStaff || view.kind === "dm" || view.kind === "project";
}

export function formatSize(bytes) {
  const units = ["B", "KB", "MB", "GB"];
  let size = Number(bytes) || 0;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${unit ? size.toFixed(size < 10 ? 1 : 0) : size} ${units[unit]}`;
}

// A file message's attachment: a download link with its name, size and type.
function renderFile(file) {
  return h(
    "a",
    { class: "file-card", href: file.url, download: file.name, rel: "noopener" },
    h("span", { class: "file-name" }, file.name),
    h("span", { class: "file-info" }, `${formatSize(file.size)} · ${file.type}`),
  );
}

export function senderName(message) {
  return personName(message.sender);
}

export function isMine(message, me) {
  return Boolean(me && message.sender && message.sender.username === me);
}

export function canEdit(message, view) {
  return isMine(message, view.me) && !message.recalled && !message.deleted && message.kind !== "system" &&
    (!view.editMs || Date.now() - Date.parse(message.created_at) < view.editMs);
}

function canRecall(message, view) {
  return isMine(message, view.me) && !message.recalled && message.kind !== "system" && Date.now() - Date.parse(message.created_at) < view.recallMs;
}

function canDelete(message, view) {
  return message.kind !== "system" && (isMine(message, view.me) || view.canModerate || view.isStaff);
}

// The first 100 characters of a body, as the server's `reply_to.excerpt` has them.
export function excerpt(body) {
  return Array.from(body || "").slice(0, 100).join("");
}

// The quoted original above a reply: a button that jumps to it, or a note once it is gone.
export function renderQuote(quote) {
  const name = personName(quote.sender);
  let text = quote.excerpt;
  if (quote.deleted) text = gettext("Message deleted");
  else if (quote.recalled) text = gettext("Message recalled");
  else if (!text) text = gettext("Image");
  const parts = [h("span", { class: "reply-sender" }, name), h("span", { class: "reply-excerpt" }, text)];
  const cls = `reply-quote${quote.deleted || quote.recalled ? " gone" : ""}`;
  if (quote.deleted) return h("div", { class: cls }, ...parts);
  return h("button", { type: "button", class: cls, dataset: { replyTo: quote.id, replySeq: quote.seq }, title: gettext("Show the original message") }, ...parts);
}

export function messageText(message) {
  if (message.html) {
    const node = h("div", { class: "message-text rich" });
    insertServerHtml(node, message.html);
    return node;
  }
  return message.body ? h("p", { class: "message-text" }, linkify(message.body)) : null;
}

function whoReacted(reaction, view) {
  const names = reaction.users.map((username) => view.nameOf(username));
  const more = reaction.count - reaction.users.length;
  const list = more > 0 ? tf(gettext("%(names)s and %(count)s more"), { names: names.join(", "), count: more }) : names.join(", ");
  return tf(gettext("%(names)s reacted with %(emoji)s"), { names: list, emoji: reaction.emoji });
}

function renderReactions(message, view) {
  const bar = h("div", { class: "reactions" });
  for (const reaction of message.reactions) {
    const mine = Boolean(view.me && reaction.users.includes(view.me));
    bar.append(h(
      "button",
      { type: "button", class: "reaction", "aria-pressed": String(mine), title: whoReacted(reaction, view), dataset: { emoji: reaction.emoji }, disabled: !view.me },
      h("span", { class: "reaction-emoji" }, reaction.emoji),
      h("span", { class: "reaction-count" }, String(reaction.count)),
    ));
  }
  if (view.me) bar.append(h("button", { type: "button", class: "reaction reaction-add", "aria-label": gettext("Add a reaction"), title: gettext("Add a reaction") }, icon(...ICONS.react)));
  return bar;
}

function actionButton(action, label, glyph) {
  const attrs = { type: "button", class: `action ${action}`, dataset: { action } };
  if (!glyph) return h("button", attrs, label);
  return h("button", { ...attrs, class: `${attrs.class} icon-action`, "aria-label": label, title: label }, icon(...glyph));
}

// view: {me, canModerate, isStaff, recallMs, editMs, nameOf, openLightbox, onImageLoad, decorators}
export function renderMessage(message, view) {
  const li = h("li", {
    class: `message kind-${message.kind}`,
    dataset: { seq: message.seq, id: message.id, sender: message.sender ? message.sender.username : "" },
  });
  if (message.kind === "system") {
    li.classList.add("system");
    li.append(h("span", { class: "system-text" }, systemText(message, view)));
    return li;
  }
  const mine = isMine(message, view.me);
  li.classList.add(mine ? "mine" : "theirs");
  if (message.recalled) li.classList.add("recalled");
  if (message.edited_at) li.dataset.edited = message.edited_at;
  const time = h("time", { datetime: message.created_at, title: formatDateTime(message.created_at) }, formatTime(message.created_at));
  const bubble = h("div", { class: "bubble" });
  if (message.reply_to) bubble.append(renderQuote(message.reply_to));
  if (message.pinned) li.dataset.pinned = "true";
  const blocked = !mine && (message.blocked || (message.sender && view.blocked && view.blocked.has(message.sender.username)));
  if (blocked && !view.revealed.has(message.id)) {
    // Someone the reader blocked: collapsed, shown only on request.
    li.classList.add("blocked");
    const reveal = h("button", { type: "button", class: "blocked-reveal" }, gettext("Show"));
    reveal.addEventListener("click", () => view.reveal(message.id));
    bubble.append(h("p", { class: "blocked-text" }, gettext("Message from a user you blocked"), " ", reveal));
  } else if (message.recalled) {
    bubble.append(h("p", { class: "recalled-text" }, mine ? gettext("You recalled a message") : tf(gettext("%(name)s recalled a message"), { name: senderName(message) })));
  } else {
    if (message.image) {
      const image = h("img", { class: "message-image", src: message.image, alt: gettext("Image"), loading: "lazy" });
      const open = h("button", { type: "button", class: "image-button", "aria-label": gettext("Enlarge image") }, image);
      open.addEventListener("click", () => view.openLightbox(message.image));
      image.addEventListener("load", () => view.onImageLoad());
      bubble.append(open);
    }
    if (message.file) bubble.append(renderFile(message.file));
    const text = messageText(message);
    if (text) bubble.append(text);
  }
  const meta = h("span", { class: "message-meta" });
  if (message.edited_at && !message.recalled) {
    meta.append(h("button", { type: "button", class: "edited-marker", title: tf(gettext("Edited %(time)s: show the versions"), { time: formatDateTime(message.edited_at) }) }, gettext("(edited)")), " ");
  }
  meta.append(time);
  bubble.append(meta);
  const main = h("div", { class: "message-main" });
  if (!mine) main.append(h("div", { class: "message-name" }, senderName(message)));
  main.append(bubble);
  if (!message.recalled && message.reactions && message.reactions.length) main.append(renderReactions(message, view));
  const actions = h("div", { class: "message-actions" });
  if (view.me && !message.recalled) {
    actions.append(actionButton("reply", gettext("Reply"), ICONS.reply), actionButton("react", gettext("React"), ICONS.react));
  }
  if (canEdit(message, view)) actions.append(actionButton("edit", gettext("Edit"), ICONS.edit));
  if (canPin(message, view)) {
    const pin = actionButton("pin", message.pinned ? gettext("Unpin") : gettext("Pin"), ICONS.pin);
    pin.setAttribute("aria-pressed", String(Boolean(message.pinned)));
    actions.append(pin);
  }
  if (view.me && !mine && !message.recalled) actions.append(actionButton("report", gettext("Report"), ICONS.report));
  if (canRecall(message, view)) {
    const recall = actionButton("recall", gettext("Recall"));
    actions.append(recall);
    const left = view.recallMs - (Date.now() - Date.parse(message.created_at));
    setTimeout(() => recall.remove(), Math.max(0, left));
  }
  if (canDelete(message, view) && !message.recalled) actions.append(actionButton("delete", gettext("Delete")));
  if (!mine) li.append(h("div", { class: "message-avatar" }, avatar(message.sender)));
  li.append(main);
  if (actions.childElementCount) li.append(actions);
  for (const decorate of view.decorators) decorate(li, message);
  return li;
}

// A system message in the reader's language, from its `system` event (the English body
// is the fallback), people by their display names where the page knows them.
export function systemText(message, view) {
  const event = message.system;
  if (!event) return message.body;
  const name = (username) => (username ? view.nameOf(username) : "");
  const values = { user: name(event.user), by: name(event.by), name: event.name || "" };
  switch (event.event) {
    case "joined":
      return tf(gettext("%(user)s joined"), values);
    case "left":
      return tf(gettext("%(user)s left"), values);
    case "added":
      return tf(gettext("%(by)s added %(user)s"), values);
    case "removed":
      return tf(gettext("%(user)s was removed"), values);
    case "closed":
      return tf(gettext("%(by)s closed the conversation"), values);
    case "admin":
      return tf(gettext("%(by)s made %(user)s an admin"), values);
    case "member":
      return tf(gettext("%(by)s made %(user)s a member"), values);
    case "banned":
      return tf(gettext("%(user)s was banned"), values);
    case "topic":
      return event.topic
        ? tf(gettext("%(by)s set the topic to “%(topic)s”"), { ...values, topic: event.topic })
        : tf(gettext("%(by)s cleared the topic"), values);
    case "changed": {
      const parts = [];
      if (event.name !== undefined) parts.push(tf(gettext("%(by)s renamed the room to “%(name)s”"), values));
      if (event.kind === "private") parts.push(tf(gettext("%(by)s made the room private"), values));
      if (event.kind === "public") parts.push(tf(gettext("%(by)s made the room public"), values));
      return parts.length ? parts.join(" · ") : message.body;
    }
    default:
      return message.body;
  }
}
