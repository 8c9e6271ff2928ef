"""Cheap floods (SPEC §6.4 "Limits"), through the real ASGI application: frames other than
sends are limited per socket before they do any work, one replay runs at a time per
socket, and sockets are capped per client address, anonymous ones included.

Real-server halves (chunked replays under uvicorn, caps across processes):
test_limits_server.py.
"""

import asyncio
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator

from chat import consumers, limits
from chat.tests.helpers import HOST, ORIGIN, Socket, open_room, session_cookie
from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_socket_counts():
    limits.reset()
    yield
    limits.reset()


@pytest.fixture
async def opened():
    socks = []
    yield socks
    for sock in socks:
        try:
            await sock.close()
        except Exception:  # the server already closed it
            pass


async def answers(sock, count: int) -> list[dict]:
    return [await sock.receive() for _ in range(count)]


# Frames other than sends --------------------------------------------------------------------


async def test_a_read_flood_is_refused_before_any_database_work_and_then_closed_4429(
    lobby, mia, settings, opened
):
    settings.PARLEY_FRAME_BURST = 5
    settings.PARLEY_FRAME_RATE = 0.5
    sock, _ = await open_room("lobby", user=mia)
    opened.append(sock)
    real_fresh_room = consumers._fresh_room
    reads = 0

    async def counting(user, room_id):
        nonlocal reads
        reads += 1
        return await real_fresh_room(user, room_id)

    with mock.patch.object(consumers, "_fresh_room", counting):
        for _ in range(5):
            await sock.send({"type": "read", "seq": 0})
        await sock.send({"type": "ping"})
        refused = await sock.receive()
        assert refused["type"] == "error" and refused["code"] == "rate_limited", refused
        assert refused["retry_after"] >= 1
        # Keeps going regardless: each frame refused at no cost, then the socket is closed.
        for _ in range(limits.REFUSALS_BEFORE_CLOSE + 5):
            await sock.send({"type": "read", "seq": 0})
        assert await sock.closed_with() == 4429
    assert reads == 5, "refused reads must not touch the database"


async def test_reconnecting_after_a_close_for_flooding_does_not_buy_a_fresh_burst(lobby, mia, olivia, settings, opened):
    settings.PARLEY_FRAME_BURST = 50
    settings.PARLEY_FRAME_RATE = 0.5
    flooder, _ = await open_room("lobby", user=mia)
    opened.append(flooder)
    for _ in range(50 + limits.REFUSALS_BEFORE_CLOSE + 1):
        await flooder.send({"type": "ping"})
    assert await flooder.closed_with() == 4429
    again, _ = await open_room("lobby", user=mia)
    opened.append(again)
    await again.send({"type": "ping"})
    assert (await again.receive())["code"] == "rate_limited"
    other, _ = await open_room("lobby", user=olivia)  # nobody else pays for it
    opened.append(other)
    for _ in range(3):
        await other.send({"type": "ping"})
    assert [f["type"] for f in await answers(other, 3)] == ["pong"] * 3


async def test_frames_come_back_as_the_allowance_refills_and_sends_do_not_use_it(lobby, mia, settings, opened):
    settings.PARLEY_FRAME_BURST = 2
    settings.PARLEY_FRAME_RATE = 20.0
    sock, _ = await open_room("lobby", user=mia)
    opened.append(sock)
    for n in range(4):  # sends are limited per user (PARLEY_RATE_BURST), not here
        await sock.send({"type": "message.send", "body": f"hi {n}", "client_id": f"c{n}"})
    assert [f["type"] for f in await answers(sock, 8)].count("ack") == 4
    await sock.send({"type": "ping"})
    await sock.send({"type": "ping"})
    await sock.send({"type": "ping"})
    assert [f["type"] for f in await answers(sock, 3)] == ["pong", "pong", "error"]
    await asyncio.sleep(0.2)  # 4 tokens back at 20/s, capped at the burst of 2
    await sock.send({"type": "ping"})
    assert (await sock.receive())["type"] == "pong"


async def test_junk_frames_count_against_the_allowance_too(lobby, settings, opened):
    settings.PARLEY_FRAME_BURST = 3
    settings.PARLEY_FRAME_RATE = 0.5
    sock, _ = await open_room("lobby")
    opened.append(sock)
    for raw in ("not json", "[1]", '{"type": "nope"}', "{"):
        await sock.send(raw)
    got = await answers(sock, 4)
    assert [f["code"] for f in got] == ["invalid", "invalid", "invalid", "rate_limited"], got


# One replay at a time -------------------------------------------------------------------------


async def test_a_resume_while_a_replay_is_being_written_is_refused_rate_limited(lobby, olivia, mia, opened):
    await database_sync_to_async(_post_many)(lobby, olivia, 3)
    sock, _ = await open_room("lobby", user=mia)
    opened.append(sock)
    client_caught_up = asyncio.Event()
    real_reader_caught_up = limits.reader_caught_up

    async def slow_client(socket):
        await client_caught_up.wait()  # the first chunk waits for a client that is behind
        return await real_reader_caught_up(socket)

    with mock.patch.object(limits, "reader_caught_up", slow_client):
        await sock.send({"type": "resume", "rev": 0})
        await sock.send({"type": "resume", "rev": 0})
        refused = await sock.receive()
        assert (refused["type"], refused["code"]) == ("error", "rate_limited"), refused
        await sock.send({"type": "ping"})  # the socket still answers meanwhile
        assert (await sock.receive())["type"] == "pong"
        client_caught_up.set()
        got = await answers(sock, 4)
    assert [f["type"] for f in got] == ["message", "message", "message", "resumed"], got
    await sock.send({"type": "resume", "rev": 2})  # the replay is over: a new one runs
    got = await answers(sock, 2)
    assert [(f["type"], f.get("seq")) for f in got] == [("message", 3), ("resumed", None)]


async def test_the_same_long_replay_again_and_again_waits_for_the_allowance(lobby, olivia, settings, opened):
    settings.PARLEY_FRAME_RATE = 0.5  # slow refill: the second full replay is far off
    await database_sync_to_async(_history)(lobby, olivia, 500)
    sock, _ = await open_room("lobby")  # anonymous: reading costs nothing but the frames
    opened.append(sock)
    await sock.send({"type": "resume", "rev": 0})
    got = await answers(sock, 501)
    assert got[-1]["type"] == "resumed" and len({f["seq"] for f in got[:-1]}) == 500
    await sock.send({"type": "resume", "rev": 0})  # the same 500 changes again
    refused = await sock.receive()
    assert (refused["type"], refused["code"]) == ("error", "rate_limited"), refused
    assert refused["retry_after"] > 1
    await sock.send({"type": "resume", "rev": 499})  # a short replay is cheap
    got = await answers(sock, 2)
    assert [(f["type"], f.get("seq")) for f in got] == [("message", 500), ("resumed", None)]


def _history(room, user, count: int) -> None:
    from chat.models import Message, Room

    Message.objects.bulk_create(
        Message(room=room, seq=n, rev=n, sender=user, body=f"message {n}") for n in range(1, count + 1)
    )
    Room.objects.filter(pk=room.pk).update(last_seq=count, rev=count)


def _post_many(room, user, count: int) -> None:
    from chat import services

    for n in range(count):
        services.message_send(sender=user, room=room, body=f"message {n}", client_id=f"m{n}")


# Sockets per client address -------------------------------------------------------------------


async def _open_from(address: str, *, user=None):
    headers = [(b"host", HOST), (b"origin", ORIGIN)]
    if user is not None:
        headers.append((b"cookie", f"sessionid={await session_cookie(user)}".encode()))
    communicator = WebsocketCommunicator(application, "/ws/chat/lobby/", headers=headers)
    communicator.scope["client"] = [address, 50000]
    accepted, _ = await communicator.connect(timeout=5)
    return Socket(communicator), accepted


async def test_anonymous_sockets_are_capped_per_client_address_4429(lobby, settings, opened):
    settings.PARLEY_MAX_SOCKETS_PER_IP = 3
    for _ in range(3):
        sock, accepted = await _open_from("203.0.113.7")
        opened.append(sock)
        assert accepted and (await sock.receive())["type"] == "hello"
    with mock.patch.object(consumers, "_connect_state") as connect_state:
        over, accepted = await _open_from("203.0.113.7")
        opened.append(over)
        assert accepted and await over.closed_with() == 4429
    assert not connect_state.called, "a socket over the cap costs no database work"
    other, _ = await _open_from("198.51.100.2")  # another address has its own allowance
    opened.append(other)
    assert (await other.receive())["type"] == "hello"
    await opened[0].close()
    again, _ = await _open_from("203.0.113.7")  # a slot freed up
    opened.append(again)
    assert (await again.receive())["type"] == "hello"


async def test_logged_in_sockets_count_for_their_address_too(lobby, mia, olivia, settings, opened):
    settings.PARLEY_MAX_SOCKETS_PER_IP = 2
    for user in (mia, None):
        sock, _ = await _open_from("203.0.113.8", user=user)
        opened.append(sock)
        assert (await sock.receive())["type"] == "hello"
    over, accepted = await _open_from("203.0.113.8", user=olivia)  # her first socket, but the address is full
    opened.append(over)
    assert accepted and await over.closed_with() == 4429
