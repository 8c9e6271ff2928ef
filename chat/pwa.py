"""The installable app (SPEC §6.2): the web app manifest and the service worker at the
site's root (a worker controls only the pages under its own path)."""

import hashlib
import json
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from django.templatetags.static import static
from django.views.decorators.http import require_GET

THEME = "#4f46e5"
BACKGROUND = "#ffffff"
ICON_SIZES = (192, 512)
# The app shell: what every page loads. Pages themselves (they hold messages) and API
# answers are never cached.
SHELL = (
    "chat/parley.css",
    "chat/favicon.svg",
    "chat/lock.svg",
    *(f"chat/js/{name}" for name in (
        "common.js", "composer.js", "edits.js", "messages.js", "notify.js", "picker.js", "reactions.js",
        "push.js", "replies.js", "room.js", "shell.js", "timeline.js",
    )),
    *(f"chat/icons/icon-{size}.png" for size in ICON_SIZES),
)
WORKER = Path(__file__).resolve().parent / "sw.js"


@require_GET
def manifest(request):
    data = {
        "name": "Parley",
        "short_name": "Parley",
        "description": "Self-hosted realtime chat",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "theme_color": THEME,
        "background_color": BACKGROUND,
        "icons": [
            {"src": static(f"chat/icons/icon-{size}.png"), "sizes": f"{size}x{size}", "type": "image/png", "purpose": "any maskable"}
            for size in ICON_SIZES
        ],
    }
    response = HttpResponse(json.dumps(data), content_type="application/manifest+json")
    response["Cache-Control"] = "no-cache"
    return response


@require_GET
def service_worker(request):
    """chat/sw.js with the shell's (hashed) static addresses and a version that changes
    with them, so a new release replaces the old cache."""
    shell = [static(name) for name in SHELL]
    version = hashlib.sha256("\n".join(shell).encode()).hexdigest()[:12] if not settings.DEBUG else "dev"
    head = f"const SHELL = {json.dumps(shell)};\nconst VERSION = {json.dumps(str(version))};\nconst STATIC_URL = {json.dumps(settings.STATIC_URL)};\n"
    response = HttpResponse(head + WORKER.read_text(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["Service-Worker-Allowed"] = "/"
    return response
