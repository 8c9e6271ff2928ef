"""ASGI entry point: HTTP goes to Django, WebSockets through the Origin check and auth."""

import gc
import os
import sys

from django.core.asgi import get_asgi_application

# Database calls run in a worker thread that needs the GIL back after each query. With
# the default 5 ms switch interval, a busy event loop makes every query wait up to that
# long; 0.5 ms keeps the database thread moving while sockets are being written.
sys.setswitchinterval(0.0005)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from chat.routing import websocket_urlpatterns  # noqa: E402
from core.websocket import WebSocketGate  # noqa: E402

# Picked here rather than by Channels' ProtocolTypeRouter: one coroutine frame less that
# every open socket keeps for its whole life.
protocols = {"http": django_asgi_app, "websocket": WebSocketGate(websocket_urlpatterns)}

# What is loaded by now (Django, the apps, their libraries: ~290,000 objects the cyclic
# collector tracks) lives as long as the process. Each oldest-generation collection
# walked all of it, pausing every socket of the process for 80-130 ms; frozen, it is
# left out, and those pauses fell to 15-30 ms (benchmark/README.md, issue 19).
gc.freeze()


async def application(scope, receive, send):
    """The router, plus the lifespan: with PARLEY_PUSH_WORKER_EMBEDDED the push worker
    (chat/pushworker.py) runs inside this process from startup to shutdown."""
    if scope["type"] != "lifespan":
        return await protocols[scope["type"]](scope, receive, send)
    from django.conf import settings

    from chat import pushworker

    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            if settings.PARLEY_PUSH_WORKER_EMBEDDED:
                pushworker.start_embedded()
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            pushworker.stop_embedded()
            await send({"type": "lifespan.shutdown.complete"})
            return
