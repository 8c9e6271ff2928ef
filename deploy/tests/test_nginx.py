"""deploy/nginx.conf in front of two real workers on PostgreSQL + Redis (SPEC §1 "scaled").

nginx runs this repository's deploy/nginx.conf (only ports, paths and the certificate
swapped; testkit.nginx) as a foreground process, TLS included; the workers run
with the production flags and PARLEY_HTTPS=true. Checked for real:

1. Clients on both workers exchange messages through nginx; one worker is SIGKILLed
   mid-run; its clients reconnect through nginx (to the survivor), `resume` from their last
   rev, resend what was not acked with the same client_id; everyone ends with every
   message exactly once, in seq order.
2. A worker stopped with SIGTERM closes its sockets at once with 1012 (service restart)
   and exits; its client reconnects through nginx to the other worker.
3. A private room's picture through nginx: 404 for an outsider and for anonymous, 200 (the
   file, sent by nginx after Django's X-Accel-Redirect) for a member; the internal
   location is not reachable from outside; /static/ comes from disk; HTTP redirects to
   HTTPS; an upload over client_max_body_size is refused by nginx.

Runs only in the PostgreSQL + Redis pass (make test-postgres); needs nginx and openssl
(.ci/run installs them).
"""

import asyncio
import contextlib
import io
import json
import os
import secrets
import signal
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat import services
from chat.models import Membership, Message, Room
from conftest import REQUIRE_SERVICES
from testkit.nginx import Nginx, nginx_binary
from testkit.servers import Uvicorn, http_get, running, running_workers
from testkit.testdb import db, far_ids, worker_env

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SLUG = "frontdoor"


@pytest.fixture
def stack(transactional_db, tmp_path):
    """nginx + two workers on the test database and Redis; logs printed (pytest shows them
    for failing tests) and everything stopped however the test ends."""
    if nginx_binary() is None:
        message = "nginx is not installed (apt-get install nginx-light; .ci/run does)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    static, media = tmp_path / "static", Path(tempfile.mkdtemp(prefix="parley-media-"))
    static.mkdir()
    env = worker_env(
        REDIS_URL=os.environ["REDIS_URL"],
        SECRET_KEY=secrets.token_urlsafe(50),
        PARLEY_HTTPS="true",
        MEDIA_ROOT=str(media),
        STATIC_ROOT=str(static),
        PARLEY_MEDIA_ACCEL_PREFIX="/protected-media/",
        LOG_FORMAT="json",
    )
    # As deploy/parley@.service runs them: nginx on this host is the trusted proxy.
    with running_workers(env, "--forwarded-allow-ips=127.0.0.1", names=("A", "B"), graceful=10) as workers:
        nginx = Nginx(workers, static=static, media=media)
        with running([nginx]):
            yield {"workers": workers, "nginx": nginx, "static": static, "media": media}


@db
def _make_users(usernames: list[str], *, room_kind=Room.Kind.PUBLIC, members=None) -> dict[str, str]:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    far_ids()
    User = get_user_model()
    users = {name: User.objects.create_user(username=name, password="correct horse battery") for name in usernames}
    room = services.room_create(creator=users[usernames[0]], slug=SLUG, name="Front door", kind=room_kind)
    for name in members or ():
        services.room_invite(by=users[usernames[0]], room=room, username=name)
    if room_kind == Room.Kind.PUBLIC:
        # Members already, without the "joined" messages that sending or joining would
        # post: the seqs checked below are the clients' messages only.
        for user in list(users.values())[1:]:
            Membership.objects.create(room=room, user=user)
    return {name: Token.objects.create(user=user).key for name, user in users.items()}


@db
def _stored() -> list[tuple[int, int, str]]:
    return list(Message.objects.filter(room__slug=SLUG).order_by("seq").values_list("id", "seq", "client_id"))


async def _open(nginx: Nginx, token: str):
    ws = await connect(
        nginx.ws_url(f"/ws/chat/{SLUG}/"),
        ssl=nginx.tls,
        additional_headers={"Authorization": f"Token {token}"},
        open_timeout=10,
        close_timeout=3,
    )
    upstream = ws.response.headers.get("X-Upstream", "")
    return ws, upstream.split(",")[-1].strip()  # after a failed try: "dead, live"


async def _hello(ws, timeout: float = 10) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] == "hello":
            return frame


# 1. SIGKILL a worker mid-run -----------------------------------------------------------

PER_SENDER = 40
SENDERS = ("alice", "bob")
READERS = ("carol", "dave")
TOTAL = PER_SENDER * len(SENDERS)
KILL_AFTER_ACKS = 25
RUN_TIMEOUT = 60


class Client:
    """One user's view of the room across reconnects, kept the way the protocol says:
    the highest rev seen, messages by id (repeats dropped), and every connection's frames."""

    def __init__(self, name: str, token: str, nginx: Nginx):
        self.name, self.token, self.nginx = name, token, nginx
        self.rev = 0
        self.messages: dict[int, dict] = {}
        self.repeats = 0
        self.connections: list[dict] = []  # {"upstream", "frames": [message seqs], "resumed": rev | None, "closed"}
        self.acked: dict[str, dict] = {}
        self.unacked: list[str] = []
        self.ws = None

    async def connect(self, deadline: float) -> None:
        """Connect through nginx (retrying while nginx finds a live worker), resume if needed."""
        while True:
            try:
                self.ws, upstream = await _open(self.nginx, self.token)
                hello = await _hello(self.ws)
                break
            except (OSError, ConnectionClosed, TimeoutError) as error:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name} could not reconnect: {error!r}") from error
                await asyncio.sleep(0.2)
        self.connections.append({"upstream": upstream, "frames": [], "resumed": None, "closed": None})
        if self.connections[:-1]:
            assert hello["room"]["rev"] >= self.rev
            await self.ws.send(json.dumps({"type": "resume", "room": SLUG, "rev": self.rev}))
            # A send that was in flight when the worker died: safe to repeat with its client_id.
            for client_id in list(self.unacked):
                await self.ws.send(json.dumps({"type": "message.send", "body": client_id, "client_id": client_id}))

    def take(self, frame: dict) -> None:
        kind = frame["type"]
        if kind == "message":
            self.connections[-1]["frames"].append(frame["seq"])
            if frame["id"] in self.messages:
                self.repeats += 1
            self.messages[frame["id"]] = frame
            self.rev = max(self.rev, frame["rev"])
        elif kind == "resumed":
            assert frame["truncated"] is False, frame
            self.connections[-1]["resumed"] = len(self.connections[-1]["frames"])
            self.rev = max(self.rev, frame["rev"])
        elif kind == "ack":
            self.acked[frame["client_id"]] = frame
            if frame["client_id"] in self.unacked:
                self.unacked.remove(frame["client_id"])
        elif kind == "error":
            raise AssertionError(f"{self.name} got {frame}")

    def complete(self) -> bool:
        return len(self.messages) >= TOTAL and (not self.connections[-1:] or self.connections[-1]["resumed"] is not None
                                                or len(self.connections) == 1)


async def test_clients_survive_a_killed_worker_through_nginx(stack):
    nginx: Nginx = stack["nginx"]
    workers: list[Uvicorn] = stack["workers"]
    tokens = await _make_users([*SENDERS, *READERS])
    deadline = time.monotonic() + RUN_TIMEOUT
    clients = {name: Client(name, tokens[name], nginx) for name in (*SENDERS, *READERS)}
    for client in clients.values():  # least_conn: they alternate between the two workers
        await client.connect(deadline)
    placed = {name: c.connections[0]["upstream"] for name, c in clients.items()}
    assert set(placed.values()) == {w.address for w in workers}, placed
    victim = next(w for w in workers if w.address == placed["alice"])
    survivor = next(w for w in workers if w is not victim)
    killed = asyncio.Event()
    acks = 0

    async def run(client: Client) -> None:
        nonlocal acks
        sending = client.name in SENDERS
        sent = 0
        while True:
            try:
                while not client.complete():
                    if sending and sent < PER_SENDER and not client.unacked:
                        client_id = f"{client.name}-{sent}-{uuid.uuid4().hex[:6]}"
                        client.unacked.append(client_id)
                        sent += 1
                        await client.ws.send(json.dumps({"type": "message.send", "body": client_id, "client_id": client_id}))
                    frame = json.loads(await asyncio.wait_for(client.ws.recv(), max(0.1, deadline - time.monotonic())))
                    client.take(frame)
                    if frame["type"] == "ack":
                        acks += 1
                        if acks == KILL_AFTER_ACKS:
                            victim.signal(signal.SIGKILL)
                            killed.set()
                return
            except ConnectionClosed as closed:
                client.connections[-1]["closed"] = closed.rcvd.code if closed.rcvd else None
                assert killed.is_set(), f"{client.name} lost its socket before any worker died: {closed!r}"
                await client.connect(deadline)

    await asyncio.wait_for(asyncio.gather(*(run(c) for c in clients.values())), RUN_TIMEOUT + 5)
    for client in clients.values():
        with contextlib.suppress(Exception):
            await client.ws.close()
    assert victim.process.wait(timeout=5) == -signal.SIGKILL

    stored = await _stored()
    assert [seq for _, seq, _ in stored] == list(range(1, TOTAL + 1))
    assert len({client_id for _, _, client_id in stored}) == TOTAL  # a repeated send stored nothing new
    id_of_seq = {seq: message_id for message_id, seq, _ in stored}
    report = {}
    for name, client in clients.items():
        # Every message exactly once (repeats dropped by id, as the protocol says) ...
        assert sorted(m["seq"] for m in client.messages.values()) == list(range(1, TOTAL + 1)), name
        assert all(id_of_seq[m["seq"]] == m["id"] for m in client.messages.values()), name
        # ... and in seq order: each connection's live frames, and the replay after it.
        for conn in client.connections:
            frames = conn["frames"]
            tail = frames[conn["resumed"]:] if conn["resumed"] is not None else frames
            assert tail == sorted(set(tail)), (name, conn)
        if placed[name] == victim.address:
            # Dropped with the worker (no close frame), back through nginx on the survivor.
            assert len(client.connections) == 2 and client.connections[0]["closed"] in (None, 1006), client.connections
            assert client.connections[1]["upstream"] == survivor.address
        else:
            assert len(client.connections) == 1, f"{name} on the surviving worker was disconnected"
        report[name] = (placed[name], len(client.connections), client.repeats)
    print(f"\nclients (first worker, connections, repeats dropped): {report}")
    assert "Traceback" not in survivor.output(), survivor.output()


# 2. SIGTERM: a clean 1012 at once ------------------------------------------------------


async def test_stopped_worker_closes_sockets_with_1012_and_clients_move(stack):
    nginx: Nginx = stack["nginx"]
    workers: list[Uvicorn] = stack["workers"]
    tokens = await _make_users(["erin", "frank"])
    first, first_at = await _open(nginx, tokens["erin"])
    second, second_at = await _open(nginx, tokens["frank"])
    try:
        await _hello(first)
        await _hello(second)
        assert {first_at, second_at} == {w.address for w in workers}
        stopping = next(w for w in workers if w.address == first_at)
        started = time.monotonic()
        stopping.signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(first.recv(), 5)
        closed_after = time.monotonic() - started
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012, closed.value
        assert closed_after < 2, closed_after
        # uvicorn re-raises the signal once it has shut down cleanly: "killed by SIGTERM",
        # which systemd and Docker count as a clean stop.
        assert stopping.process.wait(timeout=12) in (0, -signal.SIGTERM)
        exited_after = time.monotonic() - started
        print(f"\nSIGTERM: socket closed with 1012 after {closed_after:.2f}s, worker exited after {exited_after:.2f}s")

        again, again_at = await _open(nginx, tokens["erin"])
        async with again:
            assert again_at != first_at
            assert (await _hello(again))["room"]["slug"] == SLUG
        await second.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(second.recv(), 5))["type"] in ("pong", "presence")
    finally:
        for ws in (first, second):
            with contextlib.suppress(Exception):
                await ws.close()


# 3. Media, static files, redirects, limits -----------------------------------------------


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 90)).save(buffer, "PNG")
    return buffer.getvalue()


def _multipart(fields: dict[str, str], file_field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode() + content + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


async def test_private_picture_only_for_members_through_nginx(stack):
    nginx: Nginx = stack["nginx"]
    tokens = await _make_users(["olivia", "mia", "oscar"], room_kind=Room.Kind.PRIVATE, members=["mia"])

    def auth(name):
        return {"Authorization": f"Token {tokens[name]}"}

    body, content_type = _multipart({"body": "the plan", "client_id": "pic-1"}, "image", "plan.png", _png())
    status, _, answer = await asyncio.to_thread(
        nginx.get, f"/api/rooms/{SLUG}/messages/", method="POST", body=body,
        headers={**auth("olivia"), "Content-Type": content_type},
    )
    assert status == 201, answer
    url = json.loads(answer)["image"]
    assert url.startswith("/media/messages/"), url
    on_disk = (stack["media"] / url.removeprefix("/media/")).read_bytes()

    status, headers, content = await asyncio.to_thread(nginx.get, url, headers=auth("mia"))
    assert status == 200 and content == on_disk
    assert headers["Content-Type"].startswith("image/")
    assert headers["X-Accel-Redirect"] is None  # consumed by nginx, never shown to the client
    assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    for who in ("oscar", None):
        status, _, content = await asyncio.to_thread(nginx.get, url, headers=auth(who) if who else {})
        assert status == 404 and content != on_disk, who
    # The internal location cannot be asked for directly, not even by a member.
    status, _, _ = await asyncio.to_thread(nginx.get, url.replace("/media/", "/protected-media/"), headers=auth("mia"))
    assert status == 404

    # /static/ straight from disk (no worker involved).
    (stack["static"] / "probe.txt").write_text("static ok")
    status, headers, content = await asyncio.to_thread(nginx.get, "/static/probe.txt")
    assert (status, content) == (200, b"static ok") and not headers["X-Upstream"]
    # Plain HTTP is redirected to HTTPS by nginx.
    status, headers, _ = await asyncio.to_thread(http_get, nginx.http_port, "/rooms/")
    assert status == 301 and headers["Location"].startswith("https://")
    # An upload over client_max_body_size (11m) stops at nginx.
    too_big, content_type = _multipart({}, "image", "huge.png", b"\0" * (12 * 1024 * 1024))
    status, _, _ = await asyncio.to_thread(
        nginx.get, f"/api/rooms/{SLUG}/messages/", method="POST", body=too_big,
        headers={**auth("olivia"), "Content-Type": content_type},
    )
    assert status == 413
    # Django behind nginx sees HTTPS (X-Forwarded-Proto from the trusted proxy): no redirect.
    status, _, _ = await asyncio.to_thread(nginx.get, "/healthz")
    assert status == 200
