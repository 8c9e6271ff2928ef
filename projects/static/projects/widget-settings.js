// The owner's widget settings on the project page (GET/PUT /api/projects/<slug>/widget/).
(function () {
  "use strict";
  const section = document.getElementById("widget-settings");
  if (!section) return;
  const slug = section.dataset.project;
  const form = document.getElementById("widget-form");
  const status = document.getElementById("widget-status");
  const t = (text) => (window.gettext ? window.gettext(text) : text);
  const url = "/api/projects/" + encodeURIComponent(slug) + "/widget/";
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function fill(data) {
    form.enabled.checked = data.enabled;
    form.origins.value = data.origins.join("\n");
  }
  fetch(url, { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null)).then((data) => data && fill(data));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const origins = form.origins.value.split(/\s+/).map((o) => o.trim()).filter(Boolean);
    const response = await fetch(url, {
      method: "PUT",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ enabled: form.enabled.checked, origins }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      fill(body);
      status.textContent = t("Saved.");
    } else {
      status.textContent = body.detail || t("Could not save.");
    }
  });
  document.getElementById("widget-copy").addEventListener("click", async () => {
    const snippet = document.getElementById("widget-snippet");
    snippet.select();
    try {
      await navigator.clipboard.writeText(snippet.value);
    } catch (e) {
      document.execCommand("copy");
    }
    status.textContent = t("Copied.");
  });
})();
