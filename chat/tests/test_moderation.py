"""Recall, delete and the send rate limit through both doors (SPEC §2, §3, §4).

Personas: olivia owns `lobby` (public) and `secret` (private), mia is a member of both,
oscar of neither, stan is staff and a member of neither.
"""

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from chat import services
from chat.models import Message
from chat.tests.test_consumers import (  # noqa: F401 (fixtures)
    no_leftover_socket_counts,
    pong,
    send,
    sockets,
)
from chat.tests.test_images import browser, media_files, post_image, stored_path
from core.tests import pictures

db = database_sync_to_async


def say(user, room, body="hello") -> Message:
    return services.message_send(sender=user, room=room, body=body)[0]


def age(message: Message, seconds: int) -> None:
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))


# Recall and delete over REST ------------------------------------------------------------

RECALL_CASES = [
    # (who, room, seconds old, status, code)
    ("mia", "secret", 0, 200, None),  # the sender, within the window
    ("mia", "secret", 31, 403, "recall_window_passed"),  # the sender, too late
    ("olivia", "secret", 0, 403, "forbidden"),  # the room owner: not hers to recall
    ("stan", "secret", 0, 403, "forbidden"),  # staff delete, they do not recall
    ("oscar", "secret", 0, 404, "not_found"),  # an outsider learns nothing
    ("stan", "lobby", 0, 403, "forbidden"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("who, room, seconds, status, code", RECALL_CASES)
def test_who_may_recall_over_rest(request, api, mia, olivia, oscar, stan, lobby, secret, settings,
                                  who, room, seconds, status, code):
    settings.PARLEY_RECALL_SECONDS = 30
    message = say(mia, request.getfixturevalue(room), "words")
    age(message, seconds)

    response = api(request.getfixturevalue(who)).post(f"/api/messages/{message.id}/recall/")

    assert response.status_code == status, response.content
    message.refresh_from_db()
    if code is None:
        assert message.recalled and message.body == ""
    else:
        assert response.json()["code"] == code
        assert not message.recalled and message.body == "words" and message.rev == message.seq


DELETE_CASES = [
    ("mia", "secret", 3600, 204, None),  # the sender, any time
    ("olivia", "secret", 3600, 204, None),  # the room owner
    ("stan", "secret", 3600, 204, None),  # staff, even in a private room they are not in
    ("oscar", "secret", 0, 404, "not_found"),
    ("oscar", "lobby", 0, 403, "forbidden"),  # may read the public room, may not delete in it
]


@pytest.mark.django_db
@pytest.mark.parametrize("who, room, seconds, status, code", DELETE_CASES)
def test_who_may_delete_over_rest(request, api, mia, olivia, oscar, stan, lobby, secret,
                                  who, room, seconds, status, code):
    message = say(mia, request.getfixturevalue(room), "words")
    age(message, seconds)

    response = api(request.getfixturevalue(who)).delete(f"/api/messages/{message.id}/")

    assert response.status_code == status, response.content
    message.refresh_from_db()
    if code is None:
        assert message.deleted and message.body == "" and message.deleted_at is not None
    else:
        assert response.json()["code"] == code and not message.deleted and message.body == "words"


@pytest.mark.django_db
def test_a_recalled_image_is_gone_from_disk_and_database(api, mia, olivia, secret, django_capture_on_commit_callbacks):
    data = post_image(api(mia), "secret", pictures.small_png(), "a.png", body="look at this").json()
    path = stored_path(data["image"])

    with django_capture_on_commit_callbacks(execute=True):
        assert api(mia).post(f"/api/messages/{data['id']}/recall/").status_code == 200

    assert not path.exists() and media_files() == []
    row = Message.objects.get(pk=data["id"])
    assert (row.body, row.image.name or None, row.recalled) == ("", None, True)
    assert not Message.objects.filter(body__contains="look at this").exists()
    assert browser(olivia).get(data["image"]).status_code == 404


# Recall and delete over the WebSocket -----------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_staff_delete_from_the_user_stream_reaches_members(sockets, secret, olivia, mia, stan):  # noqa: F811
    member, _ = await sockets.room("secret", user=olivia)
    moderator, _ = await sockets.stream(user=stan)
    ack = await send(member, "spam", "s1")

    await moderator.send({"type": "message.recall", "id": ack["id"]})
    assert (await moderator.receive_type("error"))["code"] == "forbidden"
    await moderator.send({"type": "message.delete", "id": ack["id"]})

    deleted = await member.receive_type("message.deleted")
    assert deleted["id"] == ack["id"] and deleted["room"] == "secret"
    row = await db(Message.objects.get)(pk=ack["id"])
    assert row.deleted and row.body == ""


@pytest.mark.django_db(transaction=True)
async def test_over_the_socket_a_sender_deletes_late_but_cannot_recall_late(sockets, lobby, olivia, mia):  # noqa: F811
    sender, _ = await sockets.room("lobby", user=mia)
    watcher, _ = await sockets.room("lobby", user=olivia)
    ack = await send(sender, "old", "o1")
    await watcher.receive_type("message")
    await db(Message.objects.filter(pk=ack["id"]).update)(created_at=timezone.now() - timedelta(hours=1))

    await sender.send({"type": "message.recall", "id": ack["id"]})
    assert (await sender.receive_type("error"))["code"] == "recall_window_passed"
    await sender.send({"type": "message.delete", "id": ack["id"]})
    assert (await watcher.receive_type("message.deleted"))["id"] == ack["id"]


@pytest.mark.django_db(transaction=True)
async def test_an_outsider_cannot_touch_a_private_message_over_the_socket(sockets, secret, lobby, mia, oscar):  # noqa: F811
    message = await db(say)(mia, secret, "private")
    outsider, _ = await sockets.room("lobby", user=oscar)
    for kind in ("message.recall", "message.delete"):
        await outsider.send({"type": kind, "id": message.id})
        assert (await outsider.receive_type("error"))["code"] == "not_found"
    row = await db(Message.objects.get)(pk=message.id)
    assert not row.deleted and not row.recalled and row.body == "private"


@pytest.mark.django_db(transaction=True)
async def test_an_image_sent_over_rest_is_broadcast_live(sockets, lobby, olivia, mia, api):  # noqa: F811
    watcher, _ = await sockets.room("lobby", user=olivia)

    response = await db(post_image)(api(mia), "lobby", pictures.small_png(), "a.png", body="hi")

    frame = await watcher.receive_type("message")
    assert frame["kind"] == "image" and frame["id"] == response.json()["id"]
    assert frame["image"] == response.json()["image"] and frame["body"] == "hi"


# Rate limit --------------------------------------------------------------------------


@pytest.fixture
def tight_rate(settings):
    """A burst of 2, then one message per 0.4 s."""
    settings.PARLEY_RATE_BURST, settings.PARLEY_RATE_INTERVAL = 2, 0.4


@pytest.mark.django_db
def test_rest_rate_limit_answers_429_and_stores_nothing(api, mia, lobby, tight_rate, db_state):
    client = api(mia)
    for n in range(2):
        assert client.post("/api/rooms/lobby/messages/", {"body": f"m{n}"}, format="json").status_code == 201
    before = db_state()

    response = client.post("/api/rooms/lobby/messages/", {"body": "one too many", "client_id": "x"}, format="json")

    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited" and response.json()["retry_after"] >= 1
    assert int(response["Retry-After"]) >= 1
    assert db_state() == before
    # The allowance comes back with time.
    import time

    time.sleep(0.45)
    assert client.post("/api/rooms/lobby/messages/", {"body": "later"}, format="json").status_code == 201


@pytest.mark.django_db
def test_rate_limit_is_per_user(api, mia, olivia, lobby, tight_rate):
    for n in range(2):
        api(mia).post("/api/rooms/lobby/messages/", {"body": f"m{n}"}, format="json")
    assert api(mia).post("/api/rooms/lobby/messages/", {"body": "x"}, format="json").status_code == 429
    assert api(olivia).post("/api/rooms/lobby/messages/", {"body": "y"}, format="json").status_code == 201


@pytest.mark.django_db(transaction=True)
async def test_socket_rate_limit_answers_an_error_and_stays_usable(sockets, lobby, olivia, mia, tight_rate):  # noqa: F811
    sender, _ = await sockets.room("lobby", user=mia)
    watcher, _ = await sockets.room("lobby", user=olivia)
    await send(sender, "one", "r1")
    await send(sender, "two", "r2")

    await sender.send({"type": "message.send", "body": "three", "client_id": "r3"})
    error = await sender.receive_type("error")

    assert error["code"] == "rate_limited" and error["client_id"] == "r3" and error["retry_after"] >= 1
    assert await db(Message.objects.filter(body="three").exists)() is False
    assert await pong(sender) is not None  # still connected
    assert [f["body"] for f in await _messages(watcher)] == ["one", "two"]
    # A retry of a message that made it is acked with it, even while limited.
    await sender.send({"type": "message.send", "body": "two again", "client_id": "r2"})
    assert (await sender.receive_type("ack"))["seq"] == 2
    await asyncio.sleep(0.45)
    assert (await send(sender, "four", "r4"))["seq"] == 3


async def _messages(sock) -> list[dict]:
    frames = []
    while not await sock.nothing(0.3):
        frame = await sock.receive()
        if frame["type"] == "message":
            frames.append(frame)
    return frames
