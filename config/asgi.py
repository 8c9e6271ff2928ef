"""ASGI entry point: HTTP goes to Django, WebSockets through the Origin check and auth."""

import os
import sys

from django.core.asgi import get_asgi_application

# Database calls run in a worker thread that needs the GIL back after each query. With
# the default 5 ms switch interval, a busy event loop makes every query wait up to that
# long; 0.5 ms keeps the database thread moving while sockets are being written.
sys.setswitchinterval(0.0005)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402
from core.websocket import websocket_stack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_stack(URLRouter(websocket_urlpatterns)),
    }
)
