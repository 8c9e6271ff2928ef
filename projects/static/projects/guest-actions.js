// Close a widget conversation or block its guest, from the owner's inbox (docs/website-widget.md).
(function () {
  "use strict";
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const t = (text) => (window.gettext ? window.gettext(text) : text);
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-guest-action]");
    if (!button) return;
    const box = button.closest(".guest-actions");
    const action = button.dataset.guestAction;
    if (action === "block" && !window.confirm(t("Block this guest? They can no longer write to you."))) return;
    const url = action === "close"
      ? "/api/rooms/" + encodeURIComponent(box.dataset.room) + "/close/"
      : "/api/widget/" + encodeURIComponent(box.dataset.project) + "/guests/" + encodeURIComponent(box.dataset.guestName) + "/block/";
    button.disabled = true;
    const response = await fetch(url, { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf } });
    if (response.ok) button.textContent = action === "close" ? t("Closed") : t("Blocked");
    else button.disabled = false;
  });
})();
