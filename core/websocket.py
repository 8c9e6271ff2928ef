"""The WebSocket door's front gate: Origin check and authentication.

Browsers always send Origin, so a page on another site cannot open a socket with the
user's cookies (cross-site WebSocket hijacking). Clients that are not browsers send no
Origin and authenticate with `Authorization: Token <key>`. Tokens are read from that
header only, never from the query string, where they would end up in logs.
"""

from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def origin_allowed(origin: str) -> bool:
    trusted = {o.rstrip("/").lower() for o in settings.CSRF_TRUSTED_ORIGINS}
    if origin.rstrip("/").lower() in trusted:
        return True
    host = urlsplit(origin).hostname
    if host is None:
        return False
    allowed = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    return validate_host(host if ":" not in host else f"[{host}]", allowed)


class OriginValidator:
    """Refuse the handshake (HTTP 403) when a browser's Origin is not one of our hosts."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            origin = _header(scope, b"origin")
            if origin is not None and not origin_allowed(origin):
                await send({"type": "websocket.close", "code": 4403})
                return
            # The server's own send, before middleware wraps it: chat/wire.py writes
            # broadcast frames through it when it can.
            scope = {**scope, "parley.asgi_send": send}
        return await self.app(scope, receive, send)


@database_sync_to_async
def _user_for_token(key: str):
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


class TokenAuthMiddleware:
    """`Authorization: Token <key>` wins over the session cookie; a bad token is anonymous."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        authorization = _header(scope, b"authorization")
        if authorization and authorization.lower().startswith("token "):
            key = authorization[6:].strip()
            user = await _user_for_token(key)
            # The key stays in the scope for the hub to check the token still exists (chat/hub.py).
            scope = {**scope, "user": user or AnonymousUser(), "auth_method": "token", "auth_token": key}
        return await self.app(scope, receive, send)


def websocket_stack(app):
    return OriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(app)))
