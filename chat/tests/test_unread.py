"""Unread counts (SPEC §2): other people's live, non-system messages after your read
marker — through a whole read/unread/delete cycle, over REST and the `/ws/` `unread`
frames; and the polling fallback (`?after_seq=N`) against what a socket delivered.

Personas: olivia owns `lobby` (public) and `secret` (private); mia is a member of both.
"""

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from rest_framework.test import APIClient

from chat import selectors, services
from chat.models import Membership, Message, Room
from chat.tests.helpers import open_room, open_socket

db = database_sync_to_async


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


async def rest(method: str, user, path: str, data=None):
    def call():
        response = getattr(client_for(user), method)(path, data, format="json")
        return response.status_code, response.json() if response.content else None

    return await db(call)()


async def frames_until_pong(sock) -> list[dict]:
    await sock.send({"type": "ping"})
    frames = []
    while True:
        frame = await sock.receive()
        if frame["type"] == "pong":
            return frames
        frames.append(frame)


async def unread_frames(sock, expected: int) -> list[tuple[str, int]]:
    """The next `expected` `unread` frames, then proof that no other one follows soon
    (events may travel through Redis, so a pong alone does not show they have all come)."""
    got = []
    while len(got) < expected:
        frame = await sock.receive(timeout=5)
        if frame["type"] == "unread":
            got.append((frame["room"], frame["count"]))
    await asyncio.sleep(0.2)
    extra = [f for f in await frames_until_pong(sock) if f["type"] == "unread"]
    assert not extra, extra
    return got


async def room_frames(sock, expected: int) -> list[dict]:
    """The next `expected` message frames of a room socket (new, recalled, deleted)."""
    got = []
    while len(got) < expected:
        frame = await sock.receive(timeout=5)
        if frame["type"].startswith("message"):
            got.append(frame)
    return got


@pytest.mark.django_db(transaction=True)
async def test_read_unread_delete_cycle_over_rest_and_the_user_stream(olivia, mia, make_user):
    await db(make_user)("max")
    lobby = await db(services.room_create)(creator=olivia, slug="lobby", name="Lobby")
    await db(services.room_join)(user=mia, room=lobby)
    secret = await db(services.room_create)(creator=olivia, slug="secret", name="Secret", kind=Room.Kind.PRIVATE)
    await db(services.room_invite)(by=olivia, room=secret, username="mia")  # a system message: never counts

    stream, accepted = await open_socket("/ws/", user=mia)
    assert accepted
    try:
        assert (await stream.receive())["type"] == "hello"
        # Nothing unread yet: no `unread` frame at all (a room without one has none).
        assert await unread_frames(stream, 0) == []

        async def counts():
            status, body = await rest("get", mia, "/api/unread/")
            assert status == 200
            return body

        # olivia writes three: mia's count climbs with each.
        ids = []
        for n in range(3):
            status, message = await rest("post", olivia, "/api/rooms/lobby/messages/", {"body": f"m{n}"})
            assert status == 201
            ids.append(message["id"])
        assert await unread_frames(stream, 3) == [("lobby", 1), ("lobby", 2), ("lobby", 3)]
        assert await counts() == {"lobby": 3, "secret": 0}

        # A deletion and a recall take theirs away; a system message adds nothing.
        assert (await rest("delete", olivia, f"/api/messages/{ids[1]}/"))[0] == 204
        assert (await rest("post", olivia, f"/api/messages/{ids[2]}/recall/"))[0] == 200
        await db(services.room_invite)(by=olivia, room=secret, username="max")
        assert await unread_frames(stream, 2) == [("lobby", 2), ("lobby", 1)]
        assert await counts() == {"lobby": 1, "secret": 0}

        # mia's own message does not count, and moves her marker past everything before it.
        status, own = await rest("post", mia, "/api/rooms/lobby/messages/", {"body": "mine"})
        assert status == 201
        assert await unread_frames(stream, 1) == [("lobby", 0)]
        assert await counts() == {"lobby": 0, "secret": 0}

        # Two more from olivia; mia reads the first over REST, the second over the socket.
        sent = [(await rest("post", olivia, "/api/rooms/lobby/messages/", {"body": b}))[1] for b in ("x", "y")]
        assert await unread_frames(stream, 2) == [("lobby", 1), ("lobby", 2)]
        status, read = await rest("post", mia, "/api/rooms/lobby/read/", {"seq": sent[0]["seq"]})
        assert (status, read) == (200, {"room": "lobby", "unread_count": 1})
        assert await unread_frames(stream, 1) == [("lobby", 1)]
        await stream.send({"type": "read", "room": "lobby", "seq": sent[1]["seq"]})
        assert await unread_frames(stream, 1) == [("lobby", 0)]
        # The marker never goes backwards.
        status, read = await rest("post", mia, "/api/rooms/lobby/read/", {"seq": 1})
        assert read["unread_count"] == 0
        assert await counts() == {"lobby": 0, "secret": 0}
        rows = {r["slug"]: r["unread_count"] for r in (await rest("get", mia, "/api/rooms/"))[1]}
        assert rows == {"lobby": 0, "secret": 0}
        assert await db(lambda: Membership.objects.get(user=mia, room=lobby).last_read_seq)() == sent[1]["seq"]
    finally:
        await stream.close()


@pytest.mark.django_db
def test_unread_counts_are_one_grouped_query(olivia, mia, django_assert_num_queries):
    for n in range(5):
        room = services.room_create(creator=olivia, slug=f"room{n}", name=f"Room {n}")
        services.room_join(user=mia, room=room)
        for i in range(n):
            services.message_send(sender=olivia, room=room, body=f"{i}")
    with django_assert_num_queries(1):
        counts = selectors.unread_counts(user=mia)
    assert counts == {f"room{n}": n for n in range(5)}
    with django_assert_num_queries(2):  # memberships with counts, then the public rooms
        rows = selectors.room_list_for_user(user=mia)
    assert [unread for _, _, unread in rows] == [0, 1, 2, 3, 4]


@pytest.mark.postgres
@pytest.mark.django_db
def test_unread_query_uses_the_room_seq_index(olivia, mia):
    room = services.room_create(creator=olivia, slug="busy", name="Busy")
    services.room_join(user=mia, room=room)
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a tiny table: make the planner show its index choice
        sql, params = selectors.memberships_with_unread(user=mia).query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SET enable_seqscan = on")
    # Messages are reached through a room index (room_id, or the (room, seq) unique
    # constraint), never by scanning the table.
    assert "Seq Scan on chat_message" not in plan, plan
    assert any("Index" in line and "chat_message" in line for line in plan.splitlines()), plan


# Polling fallback ---------------------------------------------------------------------------


def _apply(state: dict[int, dict], frame: dict) -> None:
    """What a client does with a room frame: keep messages by id, blank recalled ones
    (content, rendering, edit time, quote and reactions go), drop deleted ones."""
    if frame["type"] == "message":
        state[frame["id"]] = {k: v for k, v in frame.items() if k != "type"}
    elif frame["type"] == "message.recalled":
        state[frame["id"]].update(
            recalled=True, body="", message="", image=None, html="", edited_at=None, reply_to=None, reactions=[],
            rev=frame["rev"],
        )
    elif frame["type"] == "message.deleted":
        state.pop(frame["id"], None)


@pytest.mark.django_db(transaction=True)
async def test_polling_after_seq_returns_what_a_socket_delivered(olivia, mia):
    lobby = await db(services.room_create)(creator=olivia, slug="lobby", name="Lobby")
    await db(services.room_join)(user=mia, room=lobby)  # "mia joined", seq 1: not among the frames below
    sock, hello = await open_room("lobby", user=mia)
    try:
        posted = []
        for n in range(5):
            status, message = await rest("post", olivia, "/api/rooms/lobby/messages/", {"body": f"p{n}", "client_id": f"c{n}"})
            assert status == 201
            posted.append(message)
        frames = await room_frames(sock, 5)
        assert [f["seq"] for f in frames] == [m["seq"] for m in posted]

        # Before anything changed: the poll is the socket's message frames, field for field.
        for after in (posted[0]["seq"] - 1, posted[1]["seq"]):
            status, polled = await rest("get", mia, f"/api/rooms/lobby/messages/?after_seq={after}")
            assert status == 200
            # `blocked` is the reader's own (REST only): mia blocked nobody.
            assert all(m.pop("blocked") is False for m in polled)
            assert polled == [{k: v for k, v in f.items() if k != "type"} for f in frames if f["seq"] > after]

        # After a recall and a deletion, the poll equals the socket client's view.
        assert (await rest("post", olivia, f"/api/messages/{posted[2]['id']}/recall/"))[0] == 200
        assert (await rest("delete", olivia, f"/api/messages/{posted[3]['id']}/"))[0] == 204
        frames += await room_frames(sock, 2)
        state: dict[int, dict] = {}
        for frame in frames:
            _apply(state, frame)
        for after in (posted[0]["seq"] - 1, posted[1]["seq"]):
            status, polled = await rest("get", mia, f"/api/rooms/lobby/messages/?after_seq={after}")
            expected = sorted((m for m in state.values() if m["seq"] > after), key=lambda m: m["seq"])
            assert [{k: v for k, v in m.items() if k != "blocked"} for m in polled] == expected
    finally:
        await sock.close()


@pytest.mark.django_db
def test_the_live_unread_rule_and_the_sql_count_are_the_same_rule(olivia, mia):
    """The user stream counts with selectors.message_counts_as_unread what the database
    counts with `_unread_messages`: over every mix of sender, kind, state and marker."""
    import random

    from chat import events
    from chat.services.changes import lock_room, system_message

    rng = random.Random(12)
    room = services.room_create(creator=olivia, slug="mixed", name="Mixed")
    services.room_join(user=mia, room=room)
    for n in range(60):
        sender = rng.choice([olivia, mia])
        if rng.random() < 0.15:
            message = system_message(lock_room(room.id), f"note {n}")
        else:
            message, _ = services.message_send(sender=sender, room=room, body=f"m{n}")
        roll = rng.random()
        if roll < 0.15 and message.sender_id:
            services.message_delete(user=message.sender, message_id=message.id)
        elif roll < 0.3 and message.sender_id:
            services.message_recall(user=message.sender, message_id=message.id)
    metas = [events.room_change(m)["meta"] for m in Message.objects.filter(room=room)]
    for marker in (0, 7, 30, 59, 200):
        Membership.objects.filter(room=room, user=mia).update(last_read_seq=marker)
        live = sum(selectors.message_counts_as_unread(meta, user_id=mia.id, last_read_seq=marker) for meta in metas)
        assert live == selectors.unread_count(user=mia, room=room), marker
