// The page inside the website widget's iframe (SPEC §6.6). A guest's credential lives in
// this origin's localStorage (no third-party cookie needed); REST calls carry it as
// `Authorization: Token`, the guest socket sends it as its first frame.
(function () {
  "use strict";
  const root = document.getElementById("widget");
  const project = root.dataset.project;
  const strings = JSON.parse(document.getElementById("widget-strings").textContent);
  const storeKey = "parley-widget:" + project;
  const $ = (id) => document.getElementById(id);
  const list = $("messages");
  let guest = load();
  let socket = null;
  let rev = 0;
  let retry = 0;
  let counter = 0;

  function load() {
    try {
      return JSON.parse(localStorage.getItem(storeKey) || "null");
    } catch (e) {
      return null;
    }
  }
  function save(value) {
    try {
      if (value) localStorage.setItem(storeKey, JSON.stringify(value));
      else localStorage.removeItem(storeKey);
    } catch (e) { /* storage refused: this tab keeps the guest in memory */ }
  }

  function showError(text) {
    $("widget-error").textContent = text || "";
    $("widget-error").hidden = !text;
  }
  function notice(text) {
    $("widget-notice").textContent = text || "";
    $("widget-notice").hidden = !text;
  }

  async function api(path, options) {
    const headers = Object.assign({ Accept: "application/json" }, (options && options.headers) || {});
    if (guest) headers.Authorization = "Token " + guest.token;
    const response = await fetch(path, Object.assign({}, options, { headers, credentials: "omit" }));
    let body = null;
    try { body = await response.json(); } catch (e) { /* no JSON body */ }
    return { status: response.status, body };
  }

  function forget() {
    guest = null;
    save(null);
    if (socket) socket.close();
    socket = null;
    list.replaceChildren();
    $("widget-chat").hidden = true;
    $("widget-start").hidden = false;
  }

  async function start(event) {
    event.preventDefault();
    showError("");
    const form = event.target;
    const data = { display_name: form.display_name.value.trim() };
    if (form.email && form.email.value.trim()) data.email = form.email.value.trim();
    form.querySelector("button").disabled = true;
    const answer = await api("/api/widget/" + encodeURIComponent(project) + "/guests/", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(data),
    });
    form.querySelector("button").disabled = false;
    if (answer.status !== 201) {
      showError(answer.status === 429 ? strings.busy : (answer.body && answer.body.detail) || strings.failed);
      return;
    }
    guest = answer.body;
    save(guest);
    open();
  }

  async function open() {
    $("widget-start").hidden = true;
    $("widget-chat").hidden = false;
    const answer = await api("/api/rooms/" + encodeURIComponent(guest.room) + "/messages/?limit=100");
    if (answer.status === 401 || answer.status === 403 || answer.status === 404) {
      forget();
      showError(strings.blocked);
      return;
    }
    if (answer.status !== 200) {
      showError(strings.failed);
      return;
    }
    answer.body.forEach(show);
    connect();
  }

  function connect() {
    if (!guest) return;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + "/ws/widget/" + encodeURIComponent(guest.room) + "/");
    socket = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: guest.token }));
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "hello") {
        retry = 0;
        notice("");
        if (rev && frame.room.rev > rev) ws.send(JSON.stringify({ type: "resume", rev }));
      } else if (frame.type === "message") {
        show(frame);
      } else if (frame.type === "message.recalled" || frame.type === "message.deleted") {
        const item = list.querySelector('[data-id="' + frame.id + '"]');
        if (item) item.remove();
      } else if (frame.type === "error") {
        if (frame.code === "forbidden") notice(strings.closed);
        else if (frame.code === "rate_limited") notice(strings.busy);
        else showError(frame.detail || strings.failed);
      }
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      if (event.code === 4401 || event.code === 4404) {
        forget();
        showError(strings.blocked);
        return;
      }
      notice(strings.offline);
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 500 * 2 ** retry);
    };
  }

  function show(message) {
    if (message.rev && message.rev > rev) rev = message.rev;
    const existing = list.querySelector('[data-id="' + message.id + '"]');
    if (message.deleted || message.recalled) {
      if (existing) existing.remove();
      return;
    }
    if (existing) return;
    const item = document.createElement("li");
    item.dataset.id = message.id;
    item.dataset.seq = message.seq;
    const mine = guest && message.sender && message.sender.username === guest.user.username;
    item.className = message.kind === "system" ? "system" : mine ? "mine" : "theirs";
    if (message.kind !== "system") {
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = mine ? strings.you : message.sender ? message.sender.display_name : "";
      item.append(who);
    }
    if (message.body) {
      const body = document.createElement("p");
      body.textContent = message.body;
      item.append(body);
    }
    if (message.image) {
      const img = document.createElement("img");
      img.alt = "";
      item.append(img);
      loadImage(img, message.image);
    }
    if (message.kind === "system" && /closed/.test(message.body || "")) notice(strings.closed);
    // In seq order, whatever order they arrive in.
    const after = [...list.children].find((li) => Number(li.dataset.seq) > message.seq);
    list.insertBefore(item, after || null);
    list.scrollTop = list.scrollHeight;
  }

  // Images are served behind the access check: fetch with the token, show as a blob.
  async function loadImage(img, url) {
    const response = await fetch(url, { headers: { Authorization: "Token " + guest.token }, credentials: "omit" });
    if (response.ok) img.src = URL.createObjectURL(await response.blob());
  }

  function send(event) {
    event.preventDefault();
    const input = $("widget-body");
    const body = input.value.trim();
    if (!body || !socket || socket.readyState !== WebSocket.OPEN) return;
    counter += 1;
    socket.send(JSON.stringify({ type: "message.send", body, client_id: "w" + Date.now() + "-" + counter }));
    input.value = "";
  }

  async function sendImage() {
    const input = $("widget-image");
    const file = input.files && input.files[0];
    if (!file) return;
    const form = new FormData();
    form.append("image", file);
    counter += 1;
    form.append("client_id", "w" + Date.now() + "-" + counter);
    const answer = await api("/api/rooms/" + encodeURIComponent(guest.room) + "/messages/", { method: "POST", body: form });
    input.value = "";
    if (answer.status === 201 || answer.status === 200) show(answer.body);
    else if (answer.status === 403) notice(strings.closed);
    else showError((answer.body && answer.body.detail) || strings.failed);
  }

  $("widget-start").addEventListener("submit", start);
  $("widget-send").addEventListener("submit", send);
  $("widget-body").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) send(event);
  });
  $("widget-image").addEventListener("change", sendImage);
  if (guest) open();
  else $("widget-start").hidden = false;
})();
