"""core/websocket.py: a socket is accepted only from the page's own origin (scheme, host
and port) or a trusted one; look-alikes that share the host name are refused.

The two set-ups: `make run` (http://127.0.0.1:8000, default ALLOWED_HOSTS) and production
behind nginx (https://parley.example.com, PARLEY_HTTPS=true, nginx passes `Host: $host`).
"""

import pytest

from core.websocket import origin_allowed

pytestmark = pytest.mark.dbless


@pytest.fixture
def production(settings):
    settings.ALLOWED_HOSTS = ["parley.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = []
    settings.PARLEY_HTTPS = True


@pytest.fixture
def make_run(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
    settings.CSRF_TRUSTED_ORIGINS = []
    settings.PARLEY_HTTPS = False


@pytest.mark.parametrize("origin", [
    "http://parley.example.com:8081",  # the review's case: another port, plain http
    "http://parley.example.com",
    "https://parley.example.com:8443",
    "http://parley.example.com:443",
    "ws://parley.example.com",
    "https://parley.example.com.evil.example",
    "https://evil.example",
    "https://parley.example.com@evil.example",
    "https://parley.example.com/x",
])
@pytest.mark.parametrize("secure", [True, False], ids=["proxy-said-https", "plain-hop"])
def test_origin_with_our_host_but_another_scheme_or_port_is_refused(production, origin, secure):
    assert not origin_allowed(origin, host="parley.example.com", secure=secure)


@pytest.mark.parametrize("origin", ["https://parley.example.com", "https://PARLEY.example.com:443/"])
@pytest.mark.parametrize("host", ["parley.example.com", "parley.example.com:443"])
@pytest.mark.parametrize("secure", [True, False], ids=["proxy-said-https", "plain-hop"])
def test_production_page_behind_nginx_may_open_sockets(production, origin, host, secure):
    assert origin_allowed(origin, host=host, secure=secure)


@pytest.mark.parametrize(("origin", "host", "allowed"), [
    ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
    ("http://localhost:8000", "localhost:8000", True),
    ("http://[::1]:8000", "[::1]:8000", True),
    ("http://127.0.0.1:8081", "127.0.0.1:8000", False),  # another local service's page
    ("http://127.0.0.1", "127.0.0.1:8000", False),
    ("https://127.0.0.1:8000", "127.0.0.1:8000", False),
    ("http://localhost:8000", "127.0.0.1:8000", False),  # not the origin the socket is for
    ("http://127.0.0.1:8000", None, False),  # browsers always send Host
])
def test_make_run_accepts_its_own_page_only(make_run, origin, host, allowed):
    assert origin_allowed(origin, host=host, secure=False) is allowed


def test_request_scheme_decides_without_parley_https(make_run):
    """uvicorn with TLS, or --proxy-headers behind a proxy that says https: scope scheme wss."""
    assert origin_allowed("https://127.0.0.1:8443", host="127.0.0.1:8443", secure=True)
    assert not origin_allowed("http://127.0.0.1:8443", host="127.0.0.1:8443", secure=True)


def test_host_outside_allowed_hosts_is_refused_even_when_origin_matches(production):
    """DNS rebinding: evil.example resolves to us, so Host and Origin agree, but are not ours."""
    assert not origin_allowed("https://evil.example", host="evil.example", secure=True)


def test_wildcard_allowed_hosts_still_requires_the_page_origin(settings, production):
    settings.ALLOWED_HOSTS = ["*"]
    assert origin_allowed("https://parley.example.com", host="parley.example.com", secure=True)
    assert not origin_allowed("https://evil.example", host="parley.example.com", secure=True)


def test_trusted_origins_match_scheme_host_and_port(settings, production):
    settings.CSRF_TRUSTED_ORIGINS = ["https://parley.example.com:8443", "https://*.example.org"]
    for origin in ("https://parley.example.com:8443", "https://chat.example.org", "https://example.org:443"):
        assert origin_allowed(origin, host="internal:8000", secure=False), origin
    for origin in ("http://parley.example.com:8443", "https://parley.example.com:8444",
                   "http://chat.example.org", "https://chat.example.org:8443", "https://evilexample.org"):
        assert not origin_allowed(origin, host="internal:8000", secure=False), origin
