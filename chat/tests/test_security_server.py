"""Attacks that only a real ASGI server can answer: a client that stops reading while the
room floods, compression (deflate bombs), oversized frames and bodies, and a forged
X-Forwarded-For. One uvicorn worker with the `make run` flags on the test database and the
in-memory channel layer (one process needs no Redis).

Runs in the PostgreSQL + Redis pass (make test-postgres).
"""

import asyncio
import contextlib
import http.client
import json
import socket

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat import services
from chat.models import Message
from testkit.servers import Uvicorn, http_get, running
from testkit.testdb import db, worker_env

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

BIG_BODY = 60_000  # characters per message in the flood: few sends fill buffers


@pytest.fixture
def worker(transactional_db):
    started = []

    def start(*flags: str, **env: str) -> Uvicorn:
        server = Uvicorn(f"worker{len(started)}", worker_env(**env), *flags)
        started.append(server)
        return server.start()

    with running(started):
        yield start


def _people(*names: str) -> dict[str, str]:
    User = get_user_model()
    users = {name: User.objects.create_user(username=name, password="correct horse battery") for name in names}
    services.room_create(creator=users[names[0]], slug="flood", name="Flood")
    return {name: Token.objects.create(user=user).key for name, user in users.items()}


def _open(server, token, path="/ws/chat/flood/", **kwargs):
    return connect(server.url(path), additional_headers={"Authorization": f"Token {token}"}, open_timeout=10,
                   close_timeout=2, **kwargs)


async def _until(ws, kind: str, timeout: float = 10) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame


# A client that stops reading ---------------------------------------------------------------


async def test_a_client_that_stops_reading_is_closed_4408_and_memory_stays_bounded(worker):
    server = worker(PARLEY_MAX_BODY=str(BIG_BODY))
    tokens = await db(_people)("olivia", "sleepy", "awake")
    # The sleeper: a tiny receive buffer, and a client that stops pulling frames off the
    # socket after the first one (max_queue=1 pauses reading at the transport).
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))
    sleeper = await _open(server, tokens["sleepy"], sock=raw, max_queue=1, max_size=2**24)
    async with _open(server, tokens["olivia"], max_size=2**24) as sender, _open(server, tokens["awake"]) as awake:
        await _until(sender, "hello")
        await _until(awake, "hello")
        baseline = server.rss()
        body = "z" * BIG_BODY
        sent = acked = 0
        peak = baseline
        got_awake = 0

        async def drain_awake():
            nonlocal got_awake
            while True:
                frame = json.loads(await awake.recv())
                got_awake += frame["type"] == "message"

        reader = asyncio.ensure_future(drain_awake())
        closed_for_slowness = False
        try:
            # Flood: 4 MiB of backlog is ~70 of these frames; keep going well past it.
            for n in range(400):
                await sender.send(json.dumps({"type": "message.send", "body": body, "client_id": f"f{n}"}))
                sent += 1
                await _until(sender, "ack")
                acked += 1
                if n % 20 == 0:
                    peak = max(peak, server.rss())
                if "stopped reading" in server.output():
                    closed_for_slowness = True
                    if n >= 150:
                        break
            await asyncio.sleep(0.5)
            peak = max(peak, server.rss())
        finally:
            reader.cancel()
        print(f"\nflood: sent {sent}, acked {acked} ({sent * BIG_BODY / 2**20:.0f} MiB of bodies); "
              f"RSS {baseline / 2**20:.0f} -> peak {peak / 2**20:.0f} MiB; the awake reader got {got_awake}")
        assert closed_for_slowness, server.output()[-3000:]
        assert acked == sent
        assert got_awake >= sent - 5, "the flood must not starve a client that reads"
        # Bounded: the sleeper costs at most its 4 MiB backlog (plus allocator slack), not
        # the ~sent x 60 KB the flood was.
        assert peak - baseline < 48 * 2**20, (baseline, peak)
    # The sleeper wakes up: what was buffered, then the close with 4408.
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(20):
            while True:
                await sleeper.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408, closed.value


# Compression: no permessage-deflate, so no deflate bombs -----------------------------------


async def test_the_server_does_not_negotiate_compression(worker):
    server = worker()
    tokens = await db(_people)("olivia")
    async with _open(server, tokens["olivia"], compression="deflate") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers, ws.response.headers
        await _until(ws, "hello")
    # The same with a raw handshake that insists on the extension.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(
            b"GET /ws/chat/flood/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-webkit-deflate-frame\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += raw.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"sec-websocket-extensions" not in head.lower(), head


# Size limits at the server ----------------------------------------------------------------


async def test_oversized_frames_close_1009_at_the_server(worker):
    server = worker()
    tokens = await db(_people)("olivia")
    for frame in ("x" * 70_000, ["y" * 30_000, "y" * 30_000, "y" * 30_000]):  # one frame; a fragmented message
        async with _open(server, tokens["olivia"]) as ws:
            await _until(ws, "hello")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.send(frame)
                async with asyncio.timeout(10):
                    while True:
                        await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value
    assert await db(Message.objects.count)() == 0
    assert "Traceback" not in server.output()


async def test_oversized_http_bodies_are_refused_413(worker):
    # Files may not be larger than a request may be (config/settings.py refuses to start).
    server = worker(PARLEY_UPLOAD_MAX_BYTES="1048576", PARLEY_FILE_MAX_BYTES="1048576")
    tokens = await db(_people)("olivia")
    headers = {"Authorization": f"Token {tokens['olivia']}"}

    def post(body: bytes, content_type: str):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.putrequest("POST", "/api/rooms/flood/messages/")
            for key, value in {**headers, "Content-Type": content_type,
                               "Content-Length": str(len(body))}.items():
                conn.putheader(key, value)
            conn.endheaders()
            with contextlib.suppress(OSError):
                conn.send(body)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    status, body = await asyncio.to_thread(post, b'{"body": "' + b"x" * 3_000_000 + b'"}', "application/json")
    assert status == 413 and json.loads(body)["code"] == "too_large", (status, body[:200])
    # An image upload over PARLEY_UPLOAD_MAX_BYTES (1 MiB here). (Django's ASGI handler reads
    # a body before the view runs; nginx's client_max_body_size stops giant ones earlier,
    # deploy/tests/test_nginx.py.)
    upload = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
              b"Content-Type: image/png\r\n\r\n" + b"x" * 3_000_000 + b"\r\n--b--\r\n")
    status, body = await asyncio.to_thread(post, upload, "multipart/form-data; boundary=b")
    assert status == 413 and json.loads(body)["code"] == "too_large", (status, body[:200])
    assert await db(Message.objects.count)() == 0


# X-Forwarded-For only from the configured proxy ------------------------------------------


def _fail_login(port: int, forwarded_for: str) -> int:
    status, _, _ = http_get(
        port, "/api/auth/token/", method="POST", body=json.dumps({"username": "olivia", "password": "wrong"}),
        headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
    )
    return status


async def test_x_forwarded_for_is_trusted_only_from_the_configured_proxy(worker):
    await db(_people)("olivia")
    untrusting = worker("--proxy-headers", "--forwarded-allow-ips=10.9.9.9")
    statuses = [await asyncio.to_thread(_fail_login, untrusting.port, f"203.0.113.{n}") for n in range(6)]
    # Every attempt counted against the real address (127.0.0.1): the fifth locks it out,
    # although each claimed to come from elsewhere.
    assert statuses == [400, 400, 400, 400, 429, 429], statuses
    addresses = await db(lambda: sorted(set(AccessAttempt.objects.values_list("ip_address", flat=True))))()
    assert addresses == ["127.0.0.1"], addresses

    # The control: a worker that trusts 127.0.0.1 as its proxy takes the header's address.
    trusting = worker("--proxy-headers", "--forwarded-allow-ips=127.0.0.1")
    assert await asyncio.to_thread(_fail_login, trusting.port, "198.51.100.7") == 400
    addresses = await db(lambda: sorted(set(AccessAttempt.objects.values_list("ip_address", flat=True))))()
    assert addresses == ["127.0.0.1", "198.51.100.7"], addresses
