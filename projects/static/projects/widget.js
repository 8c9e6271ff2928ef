/* Parley website widget (SPEC §6.6), served as /widget.js. Embed with
 *   <script src="https://PARLEY_HOST/widget.js" data-project="SLUG" async></script>
 * Adds one chat button to the page; the chat itself is the iframe PARLEY_HOST/widget/SLUG/.
 * Everything lives in a shadow root with `all: initial`: the host page's CSS does not
 * reach the button, and this file's CSS does not reach the host page. No framework. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) return;
  var project = script.getAttribute("data-project") || "";
  if (!/^[A-Za-z0-9_-]{1,50}$/.test(project) || document.querySelector("[data-parley-widget]")) return;
  var base = new URL(script.src).origin;

  function language(code) {
    code = (code || "").toLowerCase().replace("_", "-");
    if (code.indexOf("zh") === 0) return /hant|-tw|-hk|-mo/.test(code) ? "zh-hant" : "zh-hans";
    return code.indexOf("en") === 0 ? "en" : "";
  }
  var lang = language(document.documentElement.lang) || language(navigator.language) || "en";
  var labels = {
    "en": { open: "Chat with us", close: "Close the chat", title: "Chat" },
    "zh-hans": { open: "和我们聊天", close: "关闭聊天", title: "聊天" },
    "zh-hant": { open: "和我們聊天", close: "關閉聊天", title: "聊天" }
  }[lang];

  var host = document.createElement("div");
  host.setAttribute("data-parley-widget", project);
  var root = host.attachShadow({ mode: "open" });
  var style = document.createElement("style");
  style.textContent =
    ":host{all:initial;position:fixed;right:16px;bottom:16px;z-index:2147483000}" +
    "button{all:initial;box-sizing:border-box;display:flex;align-items:center;justify-content:center;" +
    "width:56px;height:56px;border-radius:50%;background:#4f46e5;color:#fff;cursor:pointer;" +
    "box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    "button:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}" +
    "svg{width:28px;height:28px;fill:currentColor}" +
    ".panel{position:absolute;right:0;bottom:68px;width:min(380px,calc(100vw - 32px));" +
    "height:min(600px,calc(100vh - 100px));border-radius:12px;overflow:hidden;background:#fff;" +
    "box-shadow:0 8px 30px rgba(0,0,0,.3)}" +
    ".panel[hidden]{display:none}" +
    "iframe{border:0;width:100%;height:100%;display:block}";
  var panel = document.createElement("div");
  panel.className = "panel";
  panel.id = "parley-panel";
  panel.hidden = true;
  var button = document.createElement("button");
  button.type = "button";
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", "parley-panel");
  button.setAttribute("aria-label", labels.open);
  button.title = labels.open;
  // Built node by node: a host page may enforce Trusted Types, which refuses innerHTML.
  var svgNs = "http://www.w3.org/2000/svg";
  var icon = document.createElementNS(svgNs, "svg");
  icon.setAttribute("viewBox", "0 0 24 24");
  icon.setAttribute("aria-hidden", "true");
  icon.setAttribute("focusable", "false");
  var bubble = document.createElementNS(svgNs, "path");
  bubble.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
  icon.appendChild(bubble);
  button.appendChild(icon);
  var frame = null;

  function toggle(open) {
    if (open && !frame) {
      frame = document.createElement("iframe");
      frame.name = "parley-widget";
      frame.title = labels.title;
      frame.src = base + "/widget/" + encodeURIComponent(project) + "/?lang=" + lang;
      frame.setAttribute("allow", "clipboard-write");
      panel.appendChild(frame);
    }
    panel.hidden = !open;
    button.setAttribute("aria-expanded", open ? "true" : "false");
    button.setAttribute("aria-label", open ? labels.close : labels.open);
    button.title = open ? labels.close : labels.open;
    if (open && frame) frame.focus();
  }
  button.addEventListener("click", function () { toggle(panel.hidden); });
  root.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !panel.hidden) { toggle(false); button.focus(); }
  });
  root.appendChild(style);
  root.appendChild(panel);
  root.appendChild(button);
  (document.body || document.documentElement).appendChild(host);
})();
