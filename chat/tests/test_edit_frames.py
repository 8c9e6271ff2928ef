"""The `message.edit`, `reaction.add` and `reaction.remove` frames, replies over the socket,
and how edits and reactions travel: live, through a filled gap, through `resume`, and
never as unread.

Personas: olivia owns `lobby` (public), mia is a member, oscar is an outsider.
"""

import pytest

from chat import limits, selectors, services
from chat.models import Message
from chat.serializers import message_to_dict
from chat.tests.test_consumers import Sockets, dropping, pong, until
from testkit.testdb import db  # closes its thread's connection: PostgreSQL can drop the test database

pytestmark = pytest.mark.django_db(transaction=True)


def post(sender, room, body: str):
    return db(services.message_send)(sender=sender, room=room, body=body)


@pytest.fixture
async def sockets():
    limits.reset()
    opened = Sockets()
    yield opened
    await opened.close_all()
    limits.reset()


async def test_edit_frame_reaches_everyone_in_the_room(sockets, lobby, olivia, mia):
    a, _ = await sockets.room("lobby", user=olivia)
    b, _ = await sockets.room("lobby", user=mia)
    message, _ = await post(mia, lobby, "teh plan")
    for sock in (a, b):
        await sock.receive_type("message")

    await b.send({"type": "message.edit", "id": message.id, "body": "the **plan**"})

    for sock in (a, b):
        frame = await sock.receive_type("message.edited")
        assert {k: frame[k] for k in ("id", "room", "seq", "rev", "body", "html")} == {
            "id": message.id, "room": "lobby", "seq": 1, "rev": 2, "body": "the **plan**",
            "html": "<p>the <strong>plan</strong></p>",
        }
        assert frame["edited_at"]
        assert await pong(sock) == []


async def test_refused_edits_answer_with_an_error_and_change_nothing(sockets, lobby, olivia, mia):
    a, _ = await sockets.room("lobby", user=olivia)
    b, _ = await sockets.room("lobby", user=mia)
    message, _ = await post(mia, lobby, "mine")
    recalled, _ = await post(mia, lobby, "oops")
    await db(services.message_recall)(user=mia, message_id=recalled.id)
    # With the Redis layer the room's frames may come after a pong: wait for the last one.
    await until(a, "message.recalled")
    await until(b, "message.recalled")

    cases = [
        (a, {"id": message.id, "body": "theirs"}, "forbidden"),
        (b, {"id": recalled.id, "body": "back"}, "invalid"),
        (b, {"id": message.id}, "invalid"),
        (b, {"id": str(message.id), "body": "x"}, "invalid"),
        (b, {"id": message.id, "body": ""}, "invalid"),
        (b, {"id": message.id, "body": "x" * 4001}, "too_large"),
    ]
    for sock, fields, code in cases:
        await sock.send({"type": "message.edit", **fields})
        error = await sock.receive_type("error")  # a presence frame may come first
        assert error["code"] == code, fields
    assert await pong(a) == [] and await pong(b) == []


async def test_reaction_frames_add_and_remove_for_everyone(sockets, lobby, olivia, mia):
    a, _ = await sockets.room("lobby", user=olivia)
    b, _ = await sockets.room("lobby", user=mia)
    message, _ = await post(mia, lobby, "lunch?")
    for sock in (a, b):
        await sock.receive_type("message")

    await a.send({"type": "reaction.add", "id": message.id, "emoji": "👍"})
    added = [await sock.receive_type("message.reactions") for sock in (a, b)]
    await a.send({"type": "reaction.add", "id": message.id, "emoji": "👍"})  # again: nothing
    await a.send({"type": "reaction.remove", "id": message.id, "emoji": "👍"})
    removed = [await sock.receive_type("message.reactions") for sock in (a, b)]

    assert added[0] == added[1] == {
        "type": "message.reactions", "id": message.id, "room": "lobby", "seq": 1, "rev": 2,
        "reactions": [{"emoji": "👍", "count": 1, "users": ["olivia"]}],
    }
    assert removed[0]["reactions"] == [] and removed[0]["rev"] == 3
    assert await pong(a) == [] and await pong(b) == []

    for fields in ({"id": message.id, "emoji": "no"}, {"id": message.id}, {"emoji": "👍"}):
        await a.send({"type": "reaction.add", **fields})
        error = await a.receive()
        assert (error["type"], error["code"]) == ("error", "invalid")


async def test_a_reply_over_the_socket_carries_its_quote(sockets, lobby, olivia, mia):
    a, _ = await sockets.room("lobby", user=olivia)
    original, _ = await post(mia, lobby, "question")
    await a.receive_type("message")

    await a.send({"type": "message.send", "body": "answer", "client_id": "r1", "reply_to": original.id})
    got = {f["type"]: f for f in [await a.receive(), await a.receive()]}  # the ack and the message, either first
    ack, frame = got["ack"], got["message"]

    assert frame["id"] == ack["id"] and frame["reply_to"]["id"] == original.id
    assert frame["reply_to"]["excerpt"] == "question"
    await a.send({"type": "message.send", "body": "x", "client_id": "r2", "reply_to": "nope"})
    error = await a.receive_type("error")
    assert (error["code"], error["client_id"]) == ("invalid", "r2")


async def test_the_user_stream_takes_the_same_frames(sockets, lobby, olivia, mia):
    room, _ = await sockets.room("lobby", user=olivia)
    stream, _ = await sockets.stream(user=mia)
    message, _ = await post(mia, lobby, "draft")
    await room.receive_type("message")

    await stream.send({"type": "message.edit", "id": message.id, "body": "final"})
    await stream.send({"type": "reaction.add", "id": message.id, "emoji": "🎉"})

    assert (await room.receive_type("message.edited"))["body"] == "final"
    assert (await room.receive_type("message.reactions"))["reactions"][0]["emoji"] == "🎉"


# Unread ---------------------------------------------------------------------------------------


async def test_edits_and_reactions_never_count_as_unread(sockets, lobby, olivia, mia):
    mine, _ = await post(mia, lobby, "mine")
    theirs, _ = await post(olivia, lobby, "theirs")  # unread for mia: 1
    stream, _ = await sockets.stream(user=mia)

    await db(services.message_edit)(user=olivia, message_id=theirs.id, body="theirs, edited")
    await db(services.reaction_add)(user=olivia, message_id=theirs.id, emoji="👍")
    await db(services.reaction_add)(user=olivia, message_id=mine.id, emoji="👍")
    # An edit of your own older message is no new message of yours: it moves no read
    # marker and clears no count.
    await db(services.message_edit)(user=mia, message_id=mine.id, body="mine, edited")
    assert [f for f in await pong(stream) if f["type"] == "unread"] == []

    await post(olivia, lobby, "new")
    assert (await stream.receive_type("unread"))["count"] == 2


async def test_a_lost_edit_comes_back_as_the_message_and_counts_nothing(sockets, lobby, olivia, mia):
    """The hub fills the gap from the database: the edited message arrives as a `message`
    frame with its current state (clients replace it by id), and the user stream's count
    is not raised by an old message that merely changed."""
    theirs, _ = await post(olivia, lobby, "theirs")
    room, _ = await sockets.room("lobby", user=mia)
    stream, _ = await sockets.stream(user=mia)

    with dropping({2}):
        await db(services.message_edit)(user=olivia, message_id=theirs.id, body="changed")
    await post(olivia, lobby, "new")  # rev 3 shows the hub its gap

    filled = await room.receive()
    assert (filled["type"], filled["id"], filled["rev"]) == ("message", theirs.id, 2)
    assert filled["body"] == "changed" and filled["edited_at"] is not None
    assert (await room.receive())["body"] == "new"
    counts = [f["count"] for f in await until(stream, "unread") if f["type"] == "unread"]
    counts += [f["count"] for f in await pong(stream) if f["type"] == "unread"]
    assert counts == [2]


# Resume ---------------------------------------------------------------------------------------


def apply(state: dict[int, dict], frame: dict) -> None:
    """A client's view of the room: messages by id, upserted from `message` frames,
    changed by the others; quotes of replies follow their originals."""
    kind = frame["type"]
    if kind == "message":
        state[frame["id"]] = {k: v for k, v in frame.items() if k != "type"}
    elif kind == "message.edited":
        state[frame["id"]].update(body=frame["body"], message=frame["body"], html=frame["html"],
                                  edited_at=frame["edited_at"], rev=frame["rev"])
    elif kind == "message.reactions":
        state[frame["id"]].update(reactions=frame["reactions"], rev=frame["rev"])
    elif kind == "message.recalled":
        state[frame["id"]].update(recalled=True, body="", message="", image=None, html="", edited_at=None,
                                  reply_to=None, reactions=[], rev=frame["rev"])
    elif kind == "message.deleted":
        state.pop(frame["id"], None)
    else:
        return
    for message in state.values():
        quote = message.get("reply_to")
        if quote and quote["id"] == frame["id"]:
            if kind in ("message.recalled", "message.deleted"):
                quote.update(excerpt=None, recalled=kind == "message.recalled", deleted=kind == "message.deleted")
            elif kind in ("message", "message.edited"):
                quote["excerpt"] = frame["body"][:100]


async def test_resume_brings_edits_reactions_and_replies_once_as_current_state(sockets, lobby, olivia, mia):
    original, _ = await post(mia, lobby, "first draft")
    sock, hello = await sockets.room("lobby", user=olivia)
    state = {original.id: await db(lambda: message_to_dict(Message.objects.get(pk=original.id)))()}
    rev = hello["room"]["rev"]
    await sock.close()

    await db(services.message_edit)(user=mia, message_id=original.id, body="second draft")
    await db(services.reaction_add)(user=olivia, message_id=original.id, emoji="👀")
    await db(services.message_send)(sender=olivia, room=lobby, body="looks good", reply_to=original.id)
    await db(services.message_edit)(user=mia, message_id=original.id, body="final draft")

    sock, _ = await sockets.room("lobby", user=olivia)
    await sock.send({"type": "resume", "rev": rev})
    frames = (await until(sock, "resumed"))[:-1]

    assert [f["type"] for f in frames] == ["message", "message"]
    assert [f["rev"] for f in frames] == sorted(f["rev"] for f in frames)
    assert len({f["id"] for f in frames}) == 2
    for frame in frames:
        apply(state, frame)
    history = await db(lambda: [message_to_dict(m) for m in selectors.message_history(room=lobby)])()
    assert sorted(state.values(), key=lambda m: m["seq"]) == history
    assert history[0]["body"] == "final draft" and history[0]["reactions"][0]["users"] == ["olivia"]
    assert history[1]["reply_to"]["excerpt"] == "final draft"
