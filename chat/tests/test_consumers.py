"""Protocol tests for the WebSocket doors (SPEC §3): every frame type, guarantees 1-6.

Sockets go through the real ASGI application (Origin check, session/token auth, router)
with WebsocketCommunicator. Personas: olivia owns the rooms, mia is a member, oscar is an
outsider. `lobby` is public (olivia + mia), `secret` is private (olivia + mia, invited).
"""

import asyncio
import json
from datetime import timedelta
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from chat import consumers, events, groupcommit, limits, services
from chat.models import Membership, Message, Room
from chat.tests.helpers import open_socket, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async
PROFILE_FIELDS = {"username", "display_name", "avatar"}
MESSAGE_FIELDS = {
    "type", "id", "room", "seq", "rev", "sender", "kind", "body", "image", "created_at",
    "recalled", "deleted", "client_id", "message", "user", "timestamp",
    "html", "edited_at", "reply_to", "reactions", "mentions", "mentions_all", "pinned", "file",
}


# Fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_leftover_socket_counts():
    limits.reset()
    yield
    limits.reset()


@pytest.fixture
def lobby(olivia, mia):
    room = services.room_create(creator=olivia, slug="lobby", name="Lobby")
    Membership.objects.create(room=room, user=mia)  # no "joined" message: the history starts empty
    return room


@pytest.fixture
def secret(olivia, mia):
    room = services.room_create(creator=olivia, slug="secret", name="Secret", kind=Room.Kind.PRIVATE)
    services.room_invite(by=olivia, room=room, username="mia")  # a system message: seq 1, rev 1
    room.refresh_from_db()
    return room


class Sockets:
    """Opens sockets and disconnects every one of them when the test ends, pass or fail."""

    def __init__(self):
        self.opened = []

    async def open(self, path: str, **kwargs):
        sock, accepted = await open_socket(path, **kwargs)
        self.opened.append(sock)
        return sock, accepted

    async def room(self, slug: str, **kwargs):
        sock, accepted = await self.open(f"/ws/chat/{slug}/", **kwargs)
        assert accepted
        hello = await sock.receive()
        assert hello["type"] == "hello", hello
        return sock, hello

    async def stream(self, **kwargs):
        """The user stream `/ws/`, read up to and including the initial unread counts."""
        sock, accepted = await self.open("/ws/", **kwargs)
        assert accepted
        hello = await sock.receive()
        assert hello["type"] == "hello", hello
        await pong(sock)  # the initial unread frames come before the pong
        return sock, hello

    async def close_all(self):
        for sock in self.opened:
            try:
                await sock.close()
            except Exception:  # the app already ended: the server closed this socket
                pass


@pytest.fixture
async def sockets():
    opened = Sockets()
    yield opened
    await opened.close_all()


async def until(sock, kind: str, timeout: float = 3) -> list[dict]:
    """Every frame read up to and including the first of `kind`."""
    frames = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = await sock.receive(timeout=max(0.05, deadline - loop.time()))
        frames.append(frame)
        if frame["type"] == kind:
            return frames


async def pong(sock) -> list[dict]:
    """Ping, and return what came before the pong: the socket is alive and caught up."""
    await sock.send({"type": "ping"})
    frames = await until(sock, "pong")
    return frames[:-1]


async def send(sock, body: str, client_id: str, **extra) -> dict:
    await sock.send({"type": "message.send", "body": body, "client_id": client_id, **extra})
    return await sock.receive_type("ack")


@db
def message_count() -> int:
    return Message.objects.count()


@db
def fetch(model, **lookup):
    return model.objects.get(**lookup)


def post(sender, room, body: str, client_id: str | None = None):
    return db(services.message_send)(sender=sender, room=room, body=body, client_id=client_id)


def unread(room: str, count: int, last_seq: int) -> dict:
    return {"type": "unread", "room": room, "count": count, "mentions": 0, "last_seq": last_seq}


# hello and authentication --------------------------------------------------------------


async def test_room_hello_describes_user_room_and_who_is_online(sockets, lobby, olivia, mia):
    await post(olivia, lobby, "first")
    _, hello = await sockets.room("lobby", user=mia)
    assert hello == {
        "type": "hello",
        "user": {"username": "mia", "display_name": "mia", "avatar": None},
        "room": {
            "slug": "lobby", "name": "Lobby", "topic": "", "kind": "public", "rev": 1, "last_seq": 1, "online": ["mia"],
        },
    }
    _, hello = await sockets.room("lobby", user=olivia)
    assert hello["room"]["online"] == ["mia", "olivia"]


async def test_user_stream_hello_then_unread_counts(sockets, lobby, olivia, mia):
    await post(olivia, lobby, "for mia")
    sock, accepted = await sockets.open("/ws/", user=mia)
    assert accepted
    assert await sock.receive() == {"type": "hello", "user": {"username": "mia", "display_name": "mia", "avatar": None}}
    assert await sock.receive() == unread("lobby", 1, 1)
    assert await pong(sock) == []


async def test_anonymous_reads_a_public_room_but_cannot_send(sockets, lobby, olivia):
    anon, hello = await sockets.room("lobby")
    assert hello["user"] is None and hello["room"]["slug"] == "lobby"
    await post(olivia, lobby, "hello world")
    assert (await anon.receive_type("message"))["body"] == "hello world"

    await anon.send({"type": "message.send", "body": "let me in", "client_id": "a1"})
    error = await anon.receive()
    assert error["type"] == "error" and error["code"] == "auth_required" and error["client_id"] == "a1"
    assert error["detail"]
    await anon.send({"message": "legacy too"})
    assert (await anon.receive())["code"] == "auth_required"
    await anon.send({"type": "typing"})
    assert (await anon.receive())["code"] == "auth_required"
    assert await pong(anon) == []
    assert await message_count() == 1


async def test_anonymous_is_closed_4401_when_anonymous_reading_is_off(sockets, lobby, settings):
    settings.PARLEY_ANONYMOUS_READ = False
    sock, _ = await sockets.open("/ws/chat/lobby/")
    assert await sock.closed_with() == 4401


async def test_anonymous_user_stream_is_closed_4401(sockets):
    sock, _ = await sockets.open("/ws/")
    assert await sock.closed_with() == 4401


async def test_token_header_authenticates_without_origin(sockets, lobby, mia):
    token = await db(Token.objects.create)(user=mia)
    sock, hello = await sockets.room("lobby", token=token.key, origin=None)
    assert hello["user"]["username"] == "mia"
    ack = await send(sock, "from a bot", "t1")
    assert (await fetch(Message, pk=ack["id"])).sender_id == mia.id
    stream, hello = await sockets.stream(token=token.key, origin=None)
    assert hello["user"]["username"] == "mia"


async def test_bad_token_is_anonymous(sockets, lobby):
    _, hello = await sockets.room("lobby", token="not-a-token", origin=None)
    assert hello["user"] is None
    stream, _ = await sockets.open("/ws/", token="not-a-token", origin=None)
    assert await stream.closed_with() == 4401


async def test_foreign_origin_is_refused(sockets, lobby, mia):
    _, accepted = await sockets.open("/ws/chat/lobby/", user=mia, origin=b"https://evil.example")
    assert not accepted
    _, accepted = await sockets.open("/ws/", user=mia, origin=b"null")
    assert not accepted
    _, accepted = await sockets.open("/ws/chat/lobby/", user=mia, origin=b"http://localhost:8000",
                                     host=b"localhost:8000")
    assert accepted
    _, accepted = await sockets.open("/ws/chat/lobby/", user=mia, origin=None)
    assert accepted


# message.send and ack ------------------------------------------------------------------


async def test_send_is_acked_to_the_sender_and_broadcast_to_members(sockets, lobby, olivia, mia):
    a, _ = await sockets.room("lobby", user=olivia)
    b, _ = await sockets.room("lobby", user=mia)
    assert await a.receive() == {"type": "presence", "room": "lobby", "online": ["mia", "olivia"]}
    anon, _ = await sockets.room("lobby")
    await a.send({"type": "message.send", "room": "lobby", "body": "  hi there ", "client_id": "c1"})
    got = [await a.receive(), await a.receive()]
    ack = next(f for f in got if f["type"] == "ack")
    mine = next(f for f in got if f["type"] == "message")
    stored = await fetch(Message, client_id="c1")
    assert ack == {"type": "ack", "client_id": "c1", "id": stored.id, "seq": 1, "rev": 1}

    theirs = await b.receive()
    assert theirs == mine == await anon.receive()
    assert set(theirs) == MESSAGE_FIELDS
    assert theirs["sender"] == {"username": "olivia", "display_name": "olivia", "avatar": None}
    assert theirs["body"] == theirs["message"] == "hi there"
    assert theirs["user"] == "olivia" and theirs["timestamp"] == theirs["created_at"]
    assert (theirs["id"], theirs["room"], theirs["seq"], theirs["rev"]) == (stored.id, "lobby", 1, 1)
    assert (theirs["kind"], theirs["client_id"], theirs["recalled"], theirs["deleted"]) == ("text", "c1", False, False)
    assert theirs["image"] is None


async def test_send_on_the_user_stream_names_the_room(sockets, lobby, olivia, mia):
    room_sock, _ = await sockets.room("lobby", user=mia)
    stream, _ = await sockets.stream(user=olivia)
    await stream.send({"type": "message.send", "room": "lobby", "body": "from the stream", "client_id": "s1"})
    ack = await stream.receive_type("ack")
    assert ack["seq"] == 1 and ack["client_id"] == "s1"
    assert (await room_sock.receive_type("message"))["body"] == "from the stream"
    await stream.send({"type": "message.send", "body": "where to?", "client_id": "s2"})
    assert (await stream.receive_type("error"))["code"] == "invalid"
    assert await message_count() == 1


async def test_legacy_message_frame_is_a_send(sockets, lobby, olivia, mia):
    a, _ = await sockets.room("lobby", user=olivia)
    b, _ = await sockets.room("lobby", user=mia)
    await a.send({"message": "old client"})
    frames = await until(a, "ack")
    assert frames[-1]["client_id"] is None and frames[-1]["seq"] == 1
    got = await b.receive_type("message")
    assert got["message"] == got["body"] == "old client" and got["user"] == "olivia"


async def test_duplicate_client_id_is_acked_with_the_original(sockets, lobby, olivia, mia):
    a, _ = await sockets.room("lobby", user=olivia)
    b, _ = await sockets.room("lobby", user=mia)
    first = await send(a, "hello", "retry-1")
    await b.receive_type("message")
    again = await send(a, "hello, edited", "retry-1")
    assert again == first
    assert await message_count() == 1
    assert (await fetch(Message, pk=first["id"])).body == "hello"
    assert await pong(b) == []  # no second broadcast
    assert await b.nothing(timeout=0.3)


async def test_concurrent_duplicates_store_one_row(sockets, lobby, olivia):
    a, _ = await sockets.room("lobby", user=olivia)
    b, _ = await sockets.room("lobby", user=olivia)
    frame = {"type": "message.send", "body": "twice", "client_id": "same"}
    await asyncio.gather(a.send(frame), b.send(frame))
    acks = await asyncio.gather(a.receive_type("ack"), b.receive_type("ack"))
    assert acks[0] == acks[1]
    assert await message_count() == 1


async def test_sends_in_a_row_are_committed_together_and_answered_in_order(
    sockets, lobby, olivia, monkeypatch, settings
):
    """A socket reads its next sends while the last waits for its group commit: they are
    stored together, and every frame is still answered in the order it came."""
    batches = []
    real_commit = groupcommit._commit

    def commit(*, sends):
        batches.append([kwargs["client_id"] for kwargs in sends])
        return real_commit(sends=sends)

    monkeypatch.setattr(groupcommit, "_commit", commit)
    a, _ = await sockets.room("lobby", user=olivia)
    for frame in [
        {"type": "message.send", "body": "one", "client_id": "c1"},
        {"type": "message.send", "body": "two", "client_id": "c2"},
        {"type": "message.send", "body": "x" * (settings.PARLEY_MAX_BODY + 1), "client_id": "c3"},
        {"type": "message.send", "room": "elsewhere", "body": "lost?", "client_id": "c4"},  # refused before queueing
        {"type": "message.send", "body": "three", "client_id": "c5"},
        {"type": "ping"},
    ]:
        await a.send(frame)

    answers = [frame for frame in await until(a, "pong") if frame["type"] != "message"]

    assert [(f["type"], f.get("client_id"), f.get("seq") or f.get("code")) for f in answers] == [
        ("ack", "c1", 1), ("ack", "c2", 2), ("error", "c3", "too_large"), ("error", "c4", "invalid"),
        ("ack", "c5", 3), ("pong", None, None),
    ]
    assert len(batches) < 4 and sum(batches, []) == ["c1", "c2", "c3", "c5"]
    assert await db(lambda: list(Message.objects.filter(room=lobby).values_list("seq", "body")))() == [
        (1, "one"), (2, "two"), (3, "three"),
    ]


# Bad frames (guarantee 4) ----------------------------------------------------------------

BAD_FRAMES = [
    pytest.param("this is not json", "invalid", None, id="not-json"),
    pytest.param("[1, 2, 3]", "invalid", None, id="json-array"),
    pytest.param('"a string"', "invalid", None, id="json-string"),
    pytest.param("null", "invalid", None, id="json-null"),
    pytest.param("[" * 50_000, "invalid", None, id="deeply-nested"),
    pytest.param({"type": "message.shout", "body": "hi", "client_id": "u1"}, "invalid", "u1", id="unknown-type"),
    pytest.param({"type": 7}, "invalid", None, id="type-not-a-string"),
    pytest.param({"type": "message.send", "body": 5, "client_id": "b1"}, "invalid", "b1", id="body-not-text"),
    pytest.param({"type": "message.send", "body": ["hi"], "client_id": "b2"}, "invalid", "b2", id="body-a-list"),
    pytest.param({"type": "message.send", "body": "hi", "client_id": 7}, "invalid", None, id="client-id-not-text"),
    pytest.param({"type": "message.send", "body": "hi", "client_id": "x" * 65}, "invalid", "x" * 65, id="client-id-long"),
    # Defect: an empty client_id was stored as "no client_id" instead of being refused.
    pytest.param({"type": "message.send", "body": "hi", "client_id": ""}, "invalid", "", id="client-id-empty"),
    pytest.param({"message": "hi", "client_id": ""}, "invalid", "", id="legacy-client-id-empty"),
    pytest.param({"type": "message.send", "body": "hi", "room": 3, "client_id": "b3"}, "invalid", "b3", id="room-not-text"),
    pytest.param({"type": "message.send", "body": "hi", "room": "elsewhere", "client_id": "b4"}, "invalid", "b4",
                 id="other-room"),
    pytest.param({"type": "message.send", "body": "   \n ", "client_id": "b5"}, "invalid", "b5", id="blank-body"),
    pytest.param({"type": "message.send", "client_id": "b6"}, "invalid", "b6", id="no-body"),
    pytest.param({"type": "message.send", "body": "x" * 4001, "client_id": "b7"}, "too_large", "b7", id="body-too-long"),
    pytest.param({"message": 12}, "invalid", None, id="legacy-not-text"),
    pytest.param({"type": "message.recall", "id": "1"}, "invalid", None, id="recall-id-text"),
    pytest.param({"type": "message.delete", "id": True}, "invalid", None, id="delete-id-bool"),
    pytest.param({"type": "message.delete", "id": 10**30}, "invalid", None, id="delete-id-huge"),
    pytest.param({"type": "message.recall", "id": 999}, "not_found", None, id="recall-missing"),
    pytest.param({"type": "resume", "rev": -1}, "invalid", None, id="resume-negative"),
    pytest.param({"type": "resume", "rev": 1.5}, "invalid", None, id="resume-float"),
    pytest.param({"type": "resume", "rev": 2**70}, "invalid", None, id="resume-huge"),
    pytest.param({"type": "read", "seq": "3"}, "invalid", None, id="read-seq-text"),
    pytest.param({"type": "typing", "room": {}}, "invalid", None, id="typing-room-object"),
]


@pytest.mark.parametrize(("frame", "code", "client_id"), BAD_FRAMES)
async def test_a_bad_frame_gets_an_error_and_the_socket_stays_usable(sockets, lobby, olivia, frame, code, client_id):
    sock, _ = await sockets.room("lobby", user=olivia)
    await sock.send(frame)
    error = await sock.receive()
    assert error["type"] == "error" and error["code"] == code, error
    assert isinstance(error["detail"], str) and error["detail"]
    assert error.get("client_id") == client_id
    assert await pong(sock) == []
    assert await message_count() == 0
    assert (await fetch(Room, pk=lobby.id)).rev == 0
    ack = await send(sock, "still works", "after")
    assert ack["seq"] == 1


async def test_a_frame_over_64_kb_is_closed_1009(sockets, lobby, olivia):
    sock, _ = await sockets.room("lobby", user=olivia)
    await sock.send({"type": "message.send", "body": "x" * 70_000, "client_id": "big"})
    assert await sock.closed_with() == 1009
    assert await message_count() == 0


async def test_a_frame_of_exactly_64_kb_is_answered(sockets, lobby, olivia):
    sock, _ = await sockets.room("lobby", user=olivia)
    frame = json.dumps({"type": "ping", "pad": ""})
    await sock.send(json.dumps({"type": "ping", "pad": "x" * (65_536 - len(frame))}))
    assert (await sock.receive())["type"] == "pong"


# message.recall and message.delete -------------------------------------------------------


async def test_recall_and_delete_reach_everyone(sockets, lobby, olivia, mia):
    a, _ = await sockets.room("lobby", user=olivia)
    b, _ = await sockets.room("lobby", user=mia)
    one = await send(a, "oops", "r1")
    two = await send(a, "regret", "r2")
    await until(b, "message")
    await until(b, "message")

    await b.send({"type": "message.recall", "id": one["id"]})
    assert (await b.receive())["code"] == "forbidden"  # only the sender may recall
    await b.send({"type": "message.delete", "id": two["id"]})
    assert (await b.receive())["code"] == "forbidden"  # a plain member may not delete others'

    await a.send({"type": "message.recall", "id": one["id"]})
    recalled = {"type": "message.recalled", "id": one["id"], "room": "lobby", "seq": 1, "rev": 3}
    assert await a.receive_type("message.recalled") == recalled
    assert await b.receive_type("message.recalled") == recalled

    await a.send({"type": "message.delete", "id": two["id"]})
    deleted = {"type": "message.deleted", "id": two["id"], "room": "lobby", "seq": 2, "rev": 4}
    assert await a.receive_type("message.deleted") == deleted
    assert await b.receive_type("message.deleted") == deleted

    one_row, two_row = await fetch(Message, pk=one["id"]), await fetch(Message, pk=two["id"])
    assert one_row.recalled and one_row.body == "" and two_row.deleted and two_row.body == ""
    await a.send({"type": "message.delete", "id": two["id"]})
    assert (await a.receive())["code"] == "not_found"  # gone is gone


async def test_the_room_owner_may_delete_a_members_message(sockets, lobby, olivia, mia):
    a, _ = await sockets.room("lobby", user=olivia)
    b, _ = await sockets.room("lobby", user=mia)
    ack = await send(b, "spam", "m1")
    await a.send({"type": "message.delete", "id": ack["id"]})
    assert (await b.receive_type("message.deleted"))["id"] == ack["id"]


async def test_recall_after_the_window_is_refused(sockets, lobby, olivia, mia):
    a, _ = await sockets.room("lobby", user=olivia)
    b, _ = await sockets.room("lobby", user=mia)
    ack = await send(a, "old news", "w1")
    await b.receive_type("message")
    await db(Message.objects.filter(pk=ack["id"]).update)(created_at=timezone.now() - timedelta(minutes=5))
    await a.send({"type": "message.recall", "id": ack["id"]})
    error = await a.receive_type("error")
    assert error["code"] == "recall_window_passed"
    assert await pong(b) == []
    row = await fetch(Message, pk=ack["id"])
    assert not row.recalled and row.body == "old news" and row.rev == 1


# resume (guarantee 3) ------------------------------------------------------------------


async def test_resume_delivers_exactly_the_missed_changes_in_rev_order(sockets, lobby, olivia, mia):
    b, _ = await sockets.room("lobby", user=mia)
    first = await post(olivia, lobby, "seen")
    last_rev = (await b.receive_type("message"))["rev"]
    await b.close()

    second, _ = await post(olivia, lobby, "missed, then recalled")
    third, _ = await post(olivia, lobby, "missed")
    await db(services.message_recall)(user=olivia, message_id=second.id)
    await db(services.message_delete)(user=olivia, message_id=first[0].id)

    b, hello = await sockets.room("lobby", user=mia)
    assert hello["room"]["rev"] == 5
    await b.send({"type": "resume", "room": "lobby", "rev": last_rev})
    frames = await until(b, "resumed")
    assert [(f["type"], f.get("seq"), f.get("rev")) for f in frames] == [
        ("message", 3, 3),
        ("message.recalled", 2, 4),
        ("message.deleted", 1, 5),
        ("resumed", None, 5),
    ]
    assert frames[0]["body"] == "missed" and frames[0]["id"] == third.id
    assert frames[-1] == {"type": "resumed", "room": "lobby", "rev": 5, "truncated": False}
    assert await pong(b) == []

    await b.send({"type": "resume", "rev": 5})  # nothing missed: just `resumed`
    assert await b.receive() == {"type": "resumed", "room": "lobby", "rev": 5, "truncated": False}


async def test_resume_past_the_cap_says_truncated(sockets, lobby, olivia, mia, settings):
    settings.PARLEY_RESUME_LIMIT = 5
    for n in range(7):
        await post(olivia, lobby, f"m{n}")
    b, _ = await sockets.room("lobby", user=mia)
    await b.send({"type": "resume", "rev": 0})
    frames = await until(b, "resumed")
    assert [f["seq"] for f in frames[:-1]] == [1, 2, 3, 4, 5]
    assert frames[-1] == {"type": "resumed", "room": "lobby", "rev": 7, "truncated": True}
    await b.send({"type": "resume", "rev": 2})  # exactly at the cap is complete
    frames = await until(b, "resumed")
    assert [f["seq"] for f in frames[:-1]] == [3, 4, 5, 6, 7] and frames[-1]["truncated"] is False


async def test_live_changes_during_a_resume_follow_it_without_gap_or_repeat(sockets, lobby, olivia, mia):
    await post(olivia, lobby, "one")
    b, _ = await sockets.room("lobby", user=mia)
    real_replay = consumers._replay

    async def replay_then_someone_posts(user, room_id, rev):
        result = await real_replay(user, room_id, rev)
        await post(olivia, lobby, "during the replay")
        await asyncio.sleep(0.1)  # the live event reaches the socket while it replays
        return result

    with mock.patch.object(consumers, "_replay", replay_then_someone_posts):
        await b.send({"type": "resume", "rev": 0})
        frames = await until(b, "resumed")
    assert [(f["type"], f.get("seq")) for f in frames] == [("message", 1), ("resumed", None)]
    assert frames[-1]["rev"] == 1
    live = await b.receive()
    assert (live["type"], live["seq"], live["body"]) == ("message", 2, "during the replay")
    assert await pong(b) == []


# read and unread -------------------------------------------------------------------------


async def test_unread_counts_follow_messages_and_reads_on_every_user_connection(sockets, lobby, olivia, mia):
    room_sock, _ = await sockets.room("lobby", user=olivia)
    s1, _ = await sockets.stream(user=olivia)
    s2, _ = await sockets.stream(user=olivia)
    mia_stream, _ = await sockets.stream(user=mia)

    await post(mia, lobby, "one")
    await post(mia, lobby, "two")
    for stream in (s1, s2):
        assert await stream.receive() == unread("lobby", 1, 1)
        assert await stream.receive() == unread("lobby", 2, 2)
    assert await pong(mia_stream) == []  # own messages never count

    await room_sock.send({"type": "read", "seq": 1})
    for stream in (s1, s2):
        assert await stream.receive() == unread("lobby", 1, 2)
    await s1.send({"type": "read", "room": "lobby", "seq": 2})
    for stream in (s1, s2):
        assert await stream.receive() == unread("lobby", 0, 2)

    await post(olivia, lobby, "mine")
    for stream in (s1, s2):
        assert await pong(stream) == []
    assert (await mia_stream.receive()) == unread("lobby", 1, 3)
    # The room socket carries the messages themselves, never unread counts.
    assert [(f["type"], f["seq"]) for f in await pong(room_sock)] == [("message", 1), ("message", 2), ("message", 3)]


async def test_read_in_a_room_one_does_not_belong_to(sockets, lobby, oscar):
    sock, _ = await sockets.room("lobby", user=oscar)
    await sock.send({"type": "read", "seq": 1})
    assert (await sock.receive())["code"] == "invalid"
    stream, _ = await sockets.stream(user=oscar)
    await stream.send({"type": "read", "room": "nowhere", "seq": 1})
    assert (await stream.receive())["code"] == "not_found"


# typing ----------------------------------------------------------------------------------


async def test_typing_reaches_the_others_only_and_is_not_stored(sockets, lobby, olivia, mia):
    a, _ = await sockets.room("lobby", user=olivia)
    b, _ = await sockets.room("lobby", user=mia)
    assert (await a.receive())["type"] == "presence"  # mia came online
    stream, _ = await sockets.stream(user=mia)
    await a.send({"type": "typing", "room": "lobby"})
    assert await b.receive() == {"type": "typing", "room": "lobby", "user": "olivia"}
    assert await pong(a) == []
    assert await pong(stream) == []
    assert await message_count() == 0
    assert (await fetch(Room, pk=lobby.id)).rev == 0


# room.added and announcements ------------------------------------------------------------


async def test_an_invitation_arrives_as_room_added_and_the_stream_follows_the_room(sockets, olivia, mia):
    room = await db(services.room_create)(creator=olivia, slug="plans", name="Plans", kind=Room.Kind.PRIVATE)
    stream, _ = await sockets.stream(user=mia)
    await db(services.room_invite)(by=olivia, room=room, username="mia")
    added = await stream.receive()
    assert added["type"] == "room.added"
    assert {k: added["room"][k] for k in ("slug", "name", "kind")} == {"slug": "plans", "name": "Plans", "kind": "private"}
    assert added["room"]["rev"] == 1
    assert added["room"]["online"] == []
    await asyncio.sleep(0.1)  # the stream joins the room in the background
    await post(olivia, room, "welcome")
    assert await stream.receive() == unread("plans", 1, 2)


async def test_announcements_reach_every_socket(sockets, lobby, olivia):
    room_sock, _ = await sockets.room("lobby", user=olivia)
    stream, _ = await sockets.stream(user=olivia)
    anon, _ = await sockets.room("lobby")
    frame = {"type": "announcement", "text": "Ordering open", "image": None}
    await events.apublish(events.EVERYONE, {"type": events.HUB_EVENT, "frame": events.dumps(frame)})
    for sock in (room_sock, stream, anon):
        assert await sock.receive() == frame


# Access (guarantee 5) and close codes (guarantee 6) ----------------------------------------


async def test_an_outsider_cannot_tell_a_private_room_from_a_missing_one(sockets, secret, oscar):
    private, _ = await sockets.open("/ws/chat/secret/", user=oscar)
    missing, _ = await sockets.open("/ws/chat/nowhere/", user=oscar)
    anonymous, _ = await sockets.open("/ws/chat/secret/")
    assert await private.closed_with() == await missing.closed_with() == await anonymous.closed_with() == 4404
    stream, _ = await sockets.stream(user=oscar)
    await stream.send({"type": "message.send", "room": "secret", "body": "let me in", "client_id": "o1"})
    error = await stream.receive()
    assert (error["code"], error["client_id"]) == ("not_found", "o1")
    assert await message_count() == 1  # the invitation's system message only


async def test_a_removed_member_is_closed_4403_and_hears_nothing_more(sockets, secret, olivia, mia):
    a, _ = await sockets.room("secret", user=olivia)
    b, _ = await sockets.room("secret", user=mia)
    mia_stream, _ = await sockets.stream(user=mia)
    await db(services.room_remove_member)(by=olivia, room=secret, username="mia")
    removal = await a.receive_type("message")
    assert removal["body"] == "mia was removed" and removal["kind"] == "system"

    outputs = []
    while True:
        output = await b.communicator.receive_output(timeout=3)
        outputs.append(output)
        if output["type"] == "websocket.close":
            break
    assert outputs == [{"type": "websocket.close", "code": 4403}]  # not even the removal notice

    await post(olivia, secret, "after mia left")
    await a.receive_type("message")
    # Her user stream only tells her client to drop the room from its list.
    assert await pong(mia_stream) == [{"type": "room.removed", "room": "secret"}]
    assert await mia_stream.nothing(timeout=0.7)  # a sweep passes: still nothing


async def test_access_lost_without_an_event_is_caught_by_the_sweep(sockets, secret, mia):
    b, _ = await sockets.room("secret", user=mia)
    await db(secret.memberships.filter(user=mia).delete)()  # e.g. an admin edit, no event
    assert await b.closed_with(timeout=3) == 4403


async def test_logout_closes_that_sessions_sockets_4401(sockets, lobby, mia):
    session = await session_cookie(mia)
    room_sock, _ = await sockets.room("lobby", user=mia, session_key=session)
    stream, _ = await sockets.stream(user=mia, session_key=session)
    other_device, _ = await sockets.room("lobby", user=mia)

    @db
    def log_out():
        client = Client()
        client.cookies["sessionid"] = session
        return client.post("/accounts/logout/").status_code

    assert await log_out() in (200, 302)
    assert await room_sock.closed_with() == 4401
    assert await stream.closed_with() == 4401
    assert await pong(other_device) == []
    await asyncio.sleep(0.7)  # a sweep passes; the other session is still live
    assert await pong(other_device) == []


async def test_an_expired_session_is_closed_4401_by_the_sweep(sockets, lobby, mia):
    from django.contrib.sessions.models import Session

    session = await session_cookie(mia)
    sock, _ = await sockets.room("lobby", user=mia, session_key=session)
    await db(Session.objects.filter(session_key=session).delete)()
    assert await sock.closed_with() == 4401


async def test_too_many_sockets_for_one_user_close_4429(sockets, lobby, mia, settings):
    settings.PARLEY_MAX_SOCKETS_PER_USER = 2
    first, _ = await sockets.room("lobby", user=mia)
    await sockets.stream(user=mia)
    third, _ = await sockets.open("/ws/chat/lobby/", user=mia)
    assert await third.closed_with() == 4429
    await first.close()
    _, hello = await sockets.room("lobby", user=mia)  # a slot freed up
    assert hello["user"]["username"] == "mia"


# The hub: order, gaps, races (guarantee 1) -----------------------------------------------


def dropping(revs: set[int]):
    """Patch events.publish so the room events with these revisions are lost in transit."""
    real_publish = events.publish

    def publish(group, event):
        if event.get("rev") in revs and group.startswith("chat.room."):
            return
        real_publish(group, event)

    return mock.patch.object(events, "publish", publish)


async def test_a_lost_event_is_filled_from_the_database_in_order(sockets, lobby, olivia, mia):
    b, _ = await sockets.room("lobby", user=mia)
    with dropping({2, 3}):
        for n in range(1, 5):
            await post(olivia, lobby, f"m{n}")
    frames = [await b.receive() for _ in range(4)]
    assert [(f["seq"], f["body"]) for f in frames] == [(1, "m1"), (2, "m2"), (3, "m3"), (4, "m4")]
    assert await pong(b) == []


async def test_a_lost_last_event_is_healed_by_the_sweep(sockets, lobby, olivia, mia):
    b, _ = await sockets.room("lobby", user=mia)
    stream, _ = await sockets.stream(user=olivia)
    with dropping({1}):
        message, _ = await post(mia, lobby, "nobody saw me")
    got = await b.receive(timeout=3)  # the sweep runs every 0.5 s in tests
    assert (got["type"], got["id"], got["body"]) == ("message", message.id, "nobody saw me")
    assert await stream.receive(timeout=3) == unread("lobby", 1, 1)


async def test_every_member_gets_every_message_in_seq_order(sockets, lobby, olivia, mia):
    a, _ = await sockets.room("lobby", user=olivia)
    b, _ = await sockets.room("lobby", user=mia)
    sends = [a.send({"type": "message.send", "body": f"a{n}", "client_id": f"a{n}"}) for n in range(5)]
    sends += [b.send({"type": "message.send", "body": f"b{n}", "client_id": f"b{n}"}) for n in range(5)]
    await asyncio.gather(*sends)
    for sock in (a, b):
        seqs = []
        while len(seqs) < 10:
            frame = await sock.receive()
            if frame["type"] == "message":
                seqs.append(frame["seq"])
        assert seqs == list(range(1, 11))


async def test_an_event_during_connect_is_neither_lost_nor_fatal_to_the_hub(sockets, lobby, olivia, mia, caplog):
    a, _ = await sockets.room("lobby", user=olivia)
    real_fresh_room = consumers._fresh_room
    posted = []

    async def fresh_room_after_a_post(user, room_id):
        if user.username == "mia" and not posted:
            posted.append(await post(olivia, lobby, "while mia connects"))
            await asyncio.sleep(0.1)  # the hub hands the event to mia's half-open socket
        return await real_fresh_room(user, room_id)

    with mock.patch.object(consumers, "_fresh_room", fresh_room_after_a_post):
        b, hello = await sockets.room("lobby", user=mia)
    assert hello["room"]["rev"] == 1  # the message is in the state hello describes...
    assert (await a.receive_type("message"))["seq"] == 1
    await post(olivia, lobby, "after")
    assert [(f["type"], f["seq"]) for f in [await b.receive()]] == [("message", 2)]  # ...and not sent again
    assert (await a.receive_type("message"))["seq"] == 2
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


# user.updated ----------------------------------------------------------------------------


async def test_a_new_display_name_or_avatar_reaches_the_rooms_of_that_user(sockets, lobby, olivia, mia, oscar):
    from accounts import services as accounts

    a, _ = await sockets.room("lobby", user=olivia)
    b, _ = await sockets.room("lobby", user=mia)
    assert (await a.receive())["type"] == "presence"  # mia came online
    await db(accounts.profile_update)(user=mia, display_name="Mia Zhang")
    assert await a.receive() == {
        "type": "user.updated", "user": {"username": "mia", "display_name": "Mia Zhang", "avatar": None},
    }
    assert await pong(b) == []  # not echoed to mia herself
    await db(accounts.profile_update)(user=oscar, display_name="Oscar Wu")  # in none of olivia's rooms
    assert await pong(a) == []
    assert await message_count() == 0  # a hint: never stored
