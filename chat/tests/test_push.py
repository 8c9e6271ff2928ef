"""Web Push (SPEC §6.2) end to end with no internet: a local HTTP push endpoint started
here receives what the push worker step sends, decrypts it with the subscription's
private key (RFC 8291 aes128gcm) and checks room, sender and excerpt; a 410 from it
removes the subscription; PARLEY_PUSH_PREVIEW=false sends no text; an open socket
anywhere (UserPresence) means no push; failures are retried and shown.

Personas: olivia owns `lobby` (public); mia is a member.
"""

import asyncio
import base64
import json
import os
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import pytest
from channels.db import database_sync_to_async
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone

from chat import pushworker, services
from chat.hub import get_hub
from chat.models import PushDelivery, PushSubscription, UserPresence
from chat.services.push import presence_write, push_due
from chat.tests.helpers import open_room, open_socket


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_point(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


class PushService:
    """A push service on 127.0.0.1: records each POST, answers with `status`."""

    def __init__(self):
        self.received: list[dict] = []
        self.status = 201
        self.stall = threading.Event()  # set: hold each answer until it is cleared
        self.stall.clear()
        self.released = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {name.lower(): value for name, value in self.headers.items()}
                service.received.append({"path": self.path, "headers": headers, "body": body})
                if service.stall.is_set():
                    service.released.wait(30)
                self.send_response(service.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def endpoint(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/push/{name}"

    def close(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


class Browser:
    """What a browser keeps for a subscription: the ECDH key pair and the auth secret."""

    def __init__(self):
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    def keys(self) -> dict:
        return {"p256dh": b64url(public_point(self.private)), "auth": b64url(self.auth)}

    def read(self, push: dict) -> dict:
        """Decrypt as a browser does (RFC 8291, http_ece directly: not the sending code)."""
        headers = push["headers"]
        assert headers["content-encoding"] == "aes128gcm" and headers["authorization"].startswith("vapid t=")
        assert headers["urgency"] == "high" and int(headers["ttl"]) > 0
        return json.loads(http_ece.decrypt(push["body"], private_key=self.private, auth_secret=self.auth, version="aes128gcm"))


@pytest.fixture
def service(settings):
    settings.PARLEY_PUSH_ALLOW_INSECURE = True
    service = PushService()
    yield service
    service.close()


def subscribe(api, user, endpoint: str, browser: Browser):
    return api(user).post("/api/push/subscriptions/", {"endpoint": endpoint, "keys": browser.keys()}, format="json")


@pytest.mark.django_db
def test_the_key_is_a_p256_point_made_once(api, mia, olivia):
    key = api(mia).get("/api/push/key/").json()["key"]
    raw = b64url_decode(key)
    assert len(raw) == 65 and raw[0] == 4
    assert api(olivia).get("/api/push/key/").json()["key"] == key
    assert api(None).get("/api/push/key/").status_code in (401, 403)


@pytest.mark.django_db
def test_the_configured_key_is_used(api, mia, settings):
    private = ec.generate_private_key(ec.SECP256R1())
    settings.PARLEY_VAPID_PRIVATE_KEY = b64url(private.private_numbers().private_value.to_bytes(32, "big"))
    assert api(mia).get("/api/push/key/").json()["key"] == b64url(public_point(private))
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    settings.PARLEY_VAPID_PRIVATE_KEY = pem.decode()
    assert api(mia).get("/api/push/key/").json()["key"] == b64url(public_point(private))


@pytest.mark.django_db
def test_subscriptions_must_be_https_and_public_unless_allowed(api, mia, settings):
    browser = Browser()
    for endpoint in ("http://push.example.com/x", "https://127.0.0.1/x", "https://10.1.2.3/x", "https://[::1]/x", "ftp://x.example/y"):
        response = subscribe(api, mia, endpoint, browser)
        assert (response.status_code, response.json()["code"]) == (400, "invalid"), endpoint
    bad_keys = {"p256dh": "AAAA", "auth": browser.keys()["auth"]}
    response = api(mia).post("/api/push/subscriptions/", {"endpoint": "https://127.0.0.1/x", "keys": bad_keys}, format="json")
    assert response.status_code == 400
    assert not PushSubscription.objects.exists()
    settings.PARLEY_PUSH_ALLOW_INSECURE = True
    assert subscribe(api, mia, "http://127.0.0.1:9/x", browser).status_code == 201
    assert [s["endpoint"] for s in api(mia).get("/api/push/subscriptions/").json()] == ["http://127.0.0.1:9/x"]
    assert api(mia).delete("/api/push/subscriptions/", {"endpoint": "http://127.0.0.1:9/x"}, format="json").status_code == 204
    assert api(mia).get("/api/push/subscriptions/").json() == []


@pytest.mark.django_db
def test_a_mention_is_pushed_encrypted_with_room_sender_and_excerpt(api, lobby, olivia, mia, service):
    browser = Browser()
    assert subscribe(api, mia, service.endpoint("mia"), browser).status_code == 201
    services.message_send(sender=olivia, room=lobby, body="nothing for mia")  # lobby tells mia of mentions only
    message, _ = services.message_send(sender=olivia, room=lobby, body="@mia the build is red")
    assert push_due() == 1
    assert len(service.received) == 1
    payload = browser.read(service.received[0])
    assert payload["id"] == message.id and payload["room"] == "lobby" and payload["sender"] == "olivia"
    assert payload["excerpt"] == "@mia the build is red"
    assert payload["url"] == f"/rooms/lobby/#message-{message.id}-{message.seq}"
    listed = api(mia).get("/api/push/subscriptions/").json()
    assert listed[0]["last_success_at"] and listed[0]["last_error"] is None
    assert not PushDelivery.objects.exists()


@pytest.mark.django_db
def test_without_preview_the_push_carries_no_text(api, lobby, olivia, mia, service, settings):
    settings.PARLEY_PUSH_PREVIEW = False
    browser = Browser()
    subscribe(api, mia, service.endpoint("mia"), browser)
    services.message_send(sender=olivia, room=lobby, body="@mia secret plans")
    push_due()
    payload = browser.read(service.received[0])
    assert "excerpt" not in payload and "secret" not in json.dumps(payload)
    assert payload["room"] == "lobby"


@pytest.mark.django_db
def test_a_410_removes_the_subscription(api, lobby, olivia, mia, service):
    subscribe(api, mia, service.endpoint("gone"), Browser())
    service.status = 410
    services.message_send(sender=olivia, room=lobby, body="@mia hello?")
    push_due()
    assert len(service.received) == 1
    assert not PushSubscription.objects.exists() and not PushDelivery.objects.exists()


@pytest.mark.django_db
def test_failures_are_retried_with_backoff_and_shown(api, lobby, olivia, mia, service):
    browser = Browser()
    subscribe(api, mia, service.endpoint("flaky"), browser)
    service.status = 503
    message, _ = services.message_send(sender=olivia, room=lobby, body="@mia retry me")
    push_due()
    delivery = PushDelivery.objects.get()
    assert delivery.attempts == 1 and delivery.next_attempt_at > timezone.now()
    assert api(mia).get("/api/push/subscriptions/").json()[0]["last_error"] == "HTTP 503"
    assert push_due() == 0  # not due yet
    service.status = 201
    PushDelivery.objects.update(next_attempt_at=timezone.now())
    assert push_due() == 1
    assert [browser.read(p)["id"] for p in service.received] == [message.id, message.id]  # the same id: dropped by the service worker
    assert not PushDelivery.objects.exists()


@pytest.mark.django_db
def test_settings_and_presence_decide_who_is_pushed(api, lobby, olivia, mia, service):
    subscribe(api, mia, service.endpoint("mia"), Browser())
    api(mia).put("/api/rooms/lobby/settings/", {"notify": "none"}, format="json")
    services.message_send(sender=olivia, room=lobby, body="@mia muted by settings")
    api(mia).put("/api/rooms/lobby/settings/", {"notify": "all"}, format="json")
    services.message_send(sender=olivia, room=lobby, body="everything now")
    presence_write(process="elsewhere", here=[mia.id])  # mia has a socket open somewhere: her page tells her
    services.message_send(sender=olivia, room=lobby, body="while online")
    assert PushDelivery.objects.count() == 2
    assert push_due() == 2
    assert service.received == []
    # A row not renewed for PARLEY_PUSH_AWAY_SECONDS is a dead process's: no longer counted.
    UserPresence.objects.update(last_seen=timezone.now() - timedelta(seconds=60))
    services.message_send(sender=olivia, room=lobby, body="away now")
    push_due()
    assert len(service.received) == 1
    # The sender is never pushed about their own message.
    subscribe(api, olivia, service.endpoint("olivia"), Browser())
    services.message_send(sender=olivia, room=lobby, body="mine")
    assert {d.subscription.endpoint for d in PushDelivery.objects.select_related("subscription")} == {service.endpoint("mia")}


@pytest.mark.django_db(transaction=True)
async def test_a_user_is_pushed_to_as_soon_as_their_last_socket_closes(api, lobby, olivia, mia, service):
    """With the push worker polling as it does (every IDLE_SECONDS): no push while mia has
    a socket open; once her last one closes she counts as away at once, and the next
    message reaches her push service within seconds, not after PARLEY_PUSH_AWAY_SECONDS.
    (The worker's steps run on the test's database thread: SQLite's shared in-memory test
    database locks tables against a second thread.)"""
    db = database_sync_to_async
    browser = Browser()
    assert (await db(subscribe)(api, mia, service.endpoint("mia"), browser)).status_code == 201
    await db(lambda: api(mia).put("/api/rooms/lobby/settings/", {"notify": "all"}, format="json"))()
    rows = db(lambda: list(UserPresence.objects.filter(user=mia).values_list("process", flat=True)))
    stream, accepted = await open_socket("/ws/", user=mia)
    assert accepted
    room, _ = await open_room("lobby", user=mia)
    hub = get_hub()
    await hub.users_changed(set())  # the writes the connects asked for are done
    assert await rows() == [hub.process]

    async def work():
        while True:
            if not await db(push_due)():
                await asyncio.sleep(pushworker.IDLE_SECONDS)

    worker = asyncio.ensure_future(work())
    try:
        await db(services.message_send)(sender=olivia, room=lobby, body="while mia reads")
        await until(db(lambda: not PushDelivery.objects.exists()))  # handled: dropped, her page tells her
        assert service.received == []

        await room.close()
        await hub.users_changed(set())
        assert await rows() == [hub.process]  # the user stream is still open
        await stream.close()
        await hub.users_changed(set())
        assert await rows() == []  # away now, not PARLEY_PUSH_AWAY_SECONDS from now

        started = time.monotonic()
        message, _ = await db(services.message_send)(sender=olivia, room=lobby, body="are you there?")
        await until(lambda: service.received, timeout=5)
        elapsed = time.monotonic() - started
    finally:
        worker.cancel()
    assert [browser.read(p)["id"] for p in service.received] == [message.id]
    assert elapsed < 5


async def until(predicate, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
