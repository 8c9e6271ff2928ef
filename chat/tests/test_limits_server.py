"""Cheap floods against real uvicorn workers (SPEC §6.4 "Limits"): the direct writes that
make a long replay trip the slow-client bound exist only under uvicorn, and socket caps
across processes need processes.

Runs in the PostgreSQL + Redis pass (make test-postgres). The protocol halves run through
the ASGI application in test_limits.py.
"""

import asyncio
import contextlib
import json
import os
import secrets
import socket
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat import limits, services
from chat.models import Message, Room
from testkit.servers import Uvicorn, stop_all
from testkit.testdb import db, worker_env

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

CHANGES = 500
# 4000 characters (PARLEY_MAX_BODY) of Chinese: 12 KB of UTF-8 per body, and a message
# frame carries the body twice (`body` and `message`), so the replay is some 12 MB.
LONG_BODY = ("天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏" * 200)[:4000]


@pytest.fixture
def worker(transactional_db):
    started = []

    def start(*flags: str, **env: str) -> Uvicorn:
        server = Uvicorn(f"worker{len(started)}", worker_env(**env), *flags)
        started.append(server)
        return server.start()

    yield start
    stop_all(started)
    for server in started:
        server.close()


def _long_history() -> str:
    """A public room `flood` with CHANGES long messages; olivia's token."""
    olivia = get_user_model().objects.create_user(username="olivia", password="correct horse battery")
    room = services.room_create(creator=olivia, slug="flood", name="Flood")
    Message.objects.bulk_create(
        Message(room=room, seq=n, rev=n, sender=olivia, body=LONG_BODY) for n in range(1, CHANGES + 1)
    )
    Room.objects.filter(pk=room.pk).update(last_seq=CHANGES, rev=CHANGES)
    return Token.objects.create(user=olivia).key


def _open(server, token=None, *, forwarded_for=None, **kwargs):
    headers = {"Authorization": f"Token {token}"} if token else {}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    return connect(server.url("/ws/chat/flood/"), additional_headers=headers, open_timeout=10, close_timeout=2,
                   max_size=2**22, **kwargs)


async def _until(ws, kind: str, timeout: float = 10) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame


# Replays -------------------------------------------------------------------------------------


async def test_a_long_replay_to_a_client_that_reads_completes_without_4408(worker):
    server = worker()
    token = await db(_long_history)()
    for attempt in range(5):
        async with _open(server, token) as ws:
            await _until(ws, "hello")
            await ws.send(json.dumps({"type": "resume", "rev": 0}))
            seqs, size = [], 0
            async with asyncio.timeout(60):
                while True:
                    text = await ws.recv()  # ConnectionClosed (4408) fails the test
                    size += len(text.encode())
                    frame = json.loads(text)
                    if frame["type"] == "resumed":
                        break
                    seqs.append(frame["seq"])
        assert seqs == list(range(1, CHANGES + 1)), attempt
        assert frame == {"type": "resumed", "room": "flood", "rev": CHANGES, "truncated": False}
        assert size > 10 * 2**20, size  # the replay really was far past the 4 MiB bound
    assert "stopped reading" not in server.output()


async def test_forty_resumes_from_an_anonymous_socket_cost_one_or_two_replays(worker):
    server = worker()
    await db(_long_history)()
    async with _open(server) as ws:
        await _until(ws, "hello")
        started = time.monotonic()
        for _ in range(40):
            await ws.send('{"type":"resume","rev":0}')
        kinds, size, closed = [], 0, None
        try:
            while True:
                text = await asyncio.wait_for(ws.recv(), timeout=3)
                finished = time.monotonic()
                size += len(text.encode())
                frame = json.loads(text)
                kinds.append(frame.get("code") or frame["type"])
        except TimeoutError:
            pass
        except ConnectionClosed as error:  # refused 20 times and still sending
            closed = error.rcvd.code if error.rcvd else None
    replays = kinds.count("resumed")
    messages = kinds.count("message")
    print(f"\n40 resumes of 25 bytes: {replays} replays, {size / 2**20:.1f} MiB back in {finished - started:.1f} s")
    # The 4429 close may cut the replay that is running when it comes: that one is begun,
    # not finished. Nothing else sends message frames.
    begun = -(-messages // CHANGES)
    assert messages == replays * CHANGES or (closed == 4429 and begun == replays + 1), (closed, messages, replays)
    assert kinds.count("rate_limited") == 40 - replays or closed == 4429, (closed, kinds[-45:])
    # While a replay runs, another resume is refused; after it, a full replay costs 50
    # tokens of the socket's 100 (refilled at 20/s): the first at once, the next when the
    # allowance has refilled, never one per frame.
    assert 1 <= begun <= 1 + (49 + 20 * (finished - started)) // 50, begun
    assert size < (begun + 0.1) * CHANGES * 2 * len(LONG_BODY.encode()), size


async def test_a_client_that_stops_reading_during_a_replay_is_still_closed_4408(worker):
    server = worker()
    token = await db(_long_history)()
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))
    # max_queue=1: the client stops pulling from the socket after the first frames.
    async with _open(server, token, sock=raw, max_queue=1) as sleeper:
        await _until(sleeper, "hello")
        await sleeper.send(json.dumps({"type": "resume", "rev": 0}))
        deadline = time.monotonic() + 30
        while "stopped reading" not in server.output():
            assert time.monotonic() < deadline, server.output()[-3000:]
            await asyncio.sleep(0.5)
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(30):
                while True:
                    await sleeper.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408, closed.value


# A flood of frames other than sends ----------------------------------------------------------


def _cpu_seconds(server) -> float:
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _blind_flood(port: int, token: str, seconds: float) -> tuple[float | None, bytes]:
    """Write `read` frames as fast as the socket takes them (a reader thread takes what
    comes back); how long until the server cut the connection (None: it never did)."""
    payload, mask = b'{"type":"read","seq":1}', b"\x01\x02\x03\x04"
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"GET /ws/chat/flood/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + f"Authorization: Token {token}\r\n\r\n".encode()
        )

        def read() -> None:
            with contextlib.suppress(OSError):
                while data := sock.recv(65536):
                    received.extend(data)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        started = time.monotonic()
        try:
            while time.monotonic() - started < seconds:
                sock.sendall(frame * 200)
        except OSError:
            return time.monotonic() - started, bytes(received)
        finally:
            reader.join(timeout=5)
    return None, bytes(received)


async def test_a_socket_flooding_reads_is_cut_off_4429_within_seconds(worker):
    server = worker(PARLEY_FRAME_BURST="10")  # over the limit at once, whatever the machine's speed
    token = await db(_long_history)()
    before = _cpu_seconds(server)
    cut_after, received = await asyncio.to_thread(_blind_flood, server.port, token, 20)
    await asyncio.sleep(1)
    used = _cpu_seconds(server) - before
    print(f"\nblind read flood: cut after {cut_after} s, {used:.1f} CPU-s in the server")
    # Not the polite close, after which uvicorn reads (and parses) the flood for 10 s more.
    assert cut_after is not None and cut_after < 6, cut_after
    assert "kept sending over its frame limit" in server.output()
    assert received.count(b'"rate_limited"') == limits.REFUSALS_BEFORE_CLOSE
    assert received.endswith(b"\x88\x02\x11\x4d"), received[-40:]  # the close frame, 4429
    settled = _cpu_seconds(server)
    await asyncio.sleep(2)
    assert _cpu_seconds(server) - settled < 0.5, "the server went on working for a socket it closed"


# Socket caps ---------------------------------------------------------------------------------


async def _close_code(stack: contextlib.AsyncExitStack, server, token=None, **kwargs) -> int | None:
    """Open a socket and keep it: None when it was greeted, else the code it was closed with."""
    ws = await stack.enter_async_context(_open(server, token, **kwargs))
    try:
        await _until(ws, "hello")
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    return None


async def test_sockets_per_address_count_the_address_a_trusted_proxy_gives(worker):
    server = worker("--proxy-headers", "--forwarded-allow-ips=127.0.0.1", PARLEY_MAX_SOCKETS_PER_IP="2")
    await db(_long_history)()
    async with contextlib.AsyncExitStack() as stack:
        opened = [await _close_code(stack, server, forwarded_for="203.0.113.5") for _ in range(3)]
        assert opened == [None, None, 4429]  # anonymous sockets count
        assert await _close_code(stack, server, forwarded_for="198.51.100.9") is None


async def test_socket_caps_hold_across_processes_and_a_killed_process_gives_its_sockets_back(worker):
    env = {
        "REDIS_URL": os.environ["REDIS_URL"],
        "PARLEY_REDIS_PREFIX": f"parley-limits-{secrets.token_hex(4)}",
        "PARLEY_MAX_SOCKETS_PER_USER": "4",
        "PARLEY_MAX_SOCKETS_PER_IP": "7",
        "PARLEY_SWEEP_SECONDS": "1",
    }
    a, b = worker(**env), worker(**env)
    ttl = 4.0  # four sweeps (chat/presence.ttl)
    token = await db(_long_history)()
    async with contextlib.AsyncExitStack() as stack:
        # Two of olivia's sockets and one anonymous socket on each process, one more on B.
        for server in (a, b):
            assert [await _close_code(stack, server, t) for t in (token, token, None)] == [None] * 3
        assert await _close_code(stack, a, token) == 4429  # her fifth, though A holds only two
        assert await _close_code(stack, b, None) is None  # the address's seventh
        assert await _close_code(stack, a, None) == 4429  # its eighth, though A holds only three
        b.kill()  # SIGKILL: B never says goodbye
        killed = time.monotonic()
        while await _close_code(stack, a, token) == 4429:
            assert time.monotonic() - killed < ttl + 3, "the dead process's sockets still count"
            await asyncio.sleep(0.25)
        back = time.monotonic() - killed
        # Past the TTL, A's own live sockets still count (its heartbeats keep them): she
        # has three there now, so one more and then no more.
        await asyncio.sleep(ttl + 1)
        assert await _close_code(stack, a, token) is None
        assert await _close_code(stack, a, token) == 4429
    print(f"\nsockets of the killed process stopped counting after {back:.1f} s (TTL {ttl:.0f} s)")
