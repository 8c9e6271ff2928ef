"""The WebSocket door's front gate: Origin check and authentication.

Browsers always send Origin, so a page on another site cannot open a socket with the
user's cookies (cross-site WebSocket hijacking). A socket is accepted from the origins
Django's CSRF check accepts a form post from: the page's own origin (the scheme it was
served over, and the Host the browser connected to, which must be one of ALLOWED_HOSTS)
or one of CSRF_TRUSTED_ORIGINS. Clients that are not browsers send no Origin and
authenticate with `Authorization: Token <key>`. Tokens are read from that header only,
never from the query string, where they would end up in logs.
"""

from importlib import import_module
from urllib.parse import urlsplit

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import parse_cookie
from django.http.request import split_domain_port, validate_host

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def parse_origin(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the scheme's default port filled in; None if malformed.

    Hosts are lower-case, IPv6 ones in brackets as in a Host header.
    """
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    # An Origin is scheme://host[:port], nothing more: "http://ok@evil" or a path is forged.
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc or parts.path not in ("", "/"):
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def _trusted(origin: tuple[str, str, int]) -> bool:
    scheme, host, port = origin
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        # "https://*.example.com" trusts example.com and its subdomains, as Django's CSRF check does.
        wildcard = "://*." in entry
        trusted = parse_origin(entry.replace("://*.", "://", 1))
        if trusted is None or (trusted[0], trusted[2]) != (scheme, port):
            continue
        if trusted[1] == host or (wildcard and host.endswith(f".{trusted[1]}")):
            return True
    return False


def origin_allowed(origin: str, *, host: str | None, secure: bool) -> bool:
    """May a page at `origin` open a socket that came in for `host` (the Host header)?

    `secure`: the socket came in over TLS (wss, or a proxy said so). With PARLEY_HTTPS
    the site is HTTPS-only, so pages are https whatever the hop from the proxy was.
    """
    parsed = parse_origin(origin)
    if parsed is None:
        return False
    if _trusted(parsed):
        return True
    domain, port = split_domain_port(host or "")
    allowed = settings.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    if not domain or not validate_host(domain, allowed):
        return False
    scheme = "https" if secure or settings.PARLEY_HTTPS else "http"
    return parsed == (scheme, domain, int(port) if port else _DEFAULT_PORTS[scheme])


@database_sync_to_async
def _user_for_token(key: str):
    from rest_framework.authtoken.models import Token

    from accounts.suspensions import is_suspended

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active or is_suspended(token.user):
        return None
    return token.user


class WebSocketGate:
    """Every socket's way in: the Origin check (HTTP 403), then the route, then who it is.

    `Authorization: Token <key>` wins over the session cookie (which is then not read at
    all); a bad token is anonymous. The consumer gets one scope of its own, without the
    handshake's headers (read here, not needed after) and without the session object
    (only its key, the socket's credential, is kept). This does what Channels' Cookie-,
    Session- and AuthMiddleware and URLRouter did, in one frame: each of those copied the
    scope and kept a coroutine frame alive for the socket's whole life, ~7 KiB of every
    idle socket (benchmark/README.md, "Idle sockets").
    """

    def __init__(self, routes):
        # URLRouter checks and compiles the patterns; only its route list is used.
        self.routes = URLRouter(routes).routes

    def route(self, scope) -> tuple:
        """(consumer application, url_route), as URLRouter resolves them."""
        path, root = scope["path"], scope.get("root_path", "")
        if not path.startswith(root):
            raise ValueError(f"No route found for path {path!r}.")
        path = path[len(root) :].lstrip("/")
        for route in self.routes:
            match = route.pattern.match(path)
            if match:
                _, args, kwargs = match
                return route.callback, {"args": args, "kwargs": {**kwargs, **route.default_args}}
        raise ValueError(f"No route found for path {path!r}.")

    async def __call__(self, scope, receive, send):
        origin = _header(scope, b"origin")
        secure = scope.get("scheme") == "wss"
        if origin is not None and not origin_allowed(origin, host=_header(scope, b"host"), secure=secure):
            await send({"type": "websocket.close", "code": 4403})
            return
        consumer, url_route = self.route(scope)
        inner = {key: value for key, value in scope.items() if key != "headers"}
        inner["url_route"] = url_route
        # The server's own send: chat/wire.py writes broadcast frames through it when it can.
        inner["parley.asgi_send"] = send
        inner.update(await _who(scope))
        return await consumer(inner, receive, send)


async def _who(scope) -> dict:
    """The scope's user, and the credential the socket logged in with (chat/consumers.py)."""
    authorization = _header(scope, b"authorization")
    if authorization and authorization.lower().startswith("token "):
        key = authorization[6:].strip()
        user = await _user_for_token(key)
        # The key stays in the scope for the hub to check the token still exists (chat/hub.py).
        return {"user": user or AnonymousUser(), "auth_method": "token", "auth_token": key}
    session = _session_store(_cookies(scope).get(settings.SESSION_COOKIE_NAME))
    # Channels' rule: the backend is listed and the auth hash verified, else the session
    # is flushed (and has no key after).
    user = await get_user({"session": session})
    return {"user": user, "session_key": session.session_key}


def _session_store(key: str | None):
    return import_module(settings.SESSION_ENGINE).SessionStore(key)


def _cookies(scope) -> dict[str, str]:
    cookie = _header(scope, b"cookie")
    return parse_cookie(cookie) if cookie else {}
