"""Mentions (SPEC §6.2): who a message mentions, @all for owners/admins/staff only, the
mention counts beside the unread counts (REST rows, `/ws/` `unread` frames),
GET /api/mentions/, and an edit deciding mentions again.

Personas: olivia owns `lobby` (public) and `secret` (private); mia is a member of both;
oscar of neither; stan is staff.
"""

import asyncio

import pytest
from channels.db import database_sync_to_async

from chat import services
from chat.models import Mention, PushDelivery
from chat.services.mentions import names_in
from chat.services.push import push_subscribe
from chat.tests.helpers import open_socket
from chat.tests.test_push import Browser

db = database_sync_to_async


def test_names_in_a_body():
    assert names_in("hi @mia and @oscar, @mia again.") == (["mia", "oscar"], False)
    assert names_in("write to me@mia.org") == ([], False)  # an address mentions nobody
    assert names_in("@ALL look; @mia.") == (["mia"], True)
    assert names_in("@room") == ([], True)


def rows(api, user) -> dict:
    return {r["slug"]: (r["unread_count"], r["mention_count"]) for r in api(user).get("/api/rooms/").json() if r["member"]}


@pytest.mark.django_db
def test_a_member_may_not_mention_everyone_and_nothing_is_stored(api, lobby, mia, db_state):
    before = db_state()
    for word in ("@all", "@room", "hey @All"):
        response = api(mia).post("/api/rooms/lobby/messages/", {"body": word}, format="json")
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
    assert db_state() == before


@pytest.mark.django_db
def test_the_owner_mentions_every_member_with_all(api, lobby, olivia, mia, make_user):
    max_ = make_user("max")
    services.room_join(user=max_, room=lobby)
    response = api(olivia).post("/api/rooms/lobby/messages/", {"body": "@all lunch is here"}, format="json")
    assert response.status_code == 201
    assert response.json()["mentions_all"] is True
    for member in (mia, max_):
        assert rows(api, member)["lobby"] == (1, 1)
        listed = api(member).get("/api/mentions/").json()
        assert [(m["room"], m["body"]) for m in listed] == [("lobby", "@all lunch is here")]
    assert rows(api, olivia)["lobby"] == (0, 0)  # one's own message never counts


@pytest.mark.django_db
def test_staff_may_mention_everyone(api, lobby, stan, mia):
    services.room_join(user=stan, room=lobby)
    assert api(stan).post("/api/rooms/lobby/messages/", {"body": "@room maintenance"}, format="json").status_code == 201
    assert rows(api, mia)["lobby"] == (1, 1)


@pytest.mark.django_db
def test_a_mention_of_someone_who_cannot_read_the_room_mentions_nobody(api, secret, olivia, oscar, mia):
    response = api(olivia).post("/api/rooms/secret/messages/", {"body": "@oscar @nobody @mia see this"}, format="json")
    assert response.status_code == 201
    assert response.json()["mentions"] == ["mia"]
    assert list(Mention.objects.values_list("user__username", flat=True)) == ["mia"]
    assert api(oscar).get("/api/mentions/").json() == []
    assert [m["id"] for m in api(mia).get("/api/mentions/").json()] == [response.json()["id"]]


@pytest.mark.django_db
def test_mentions_list_newest_first_and_reading_clears_them(api, lobby, secret, olivia, mia):
    ids = []
    for room, body in (("lobby", "@mia one"), ("lobby", "no mention"), ("secret", "@mia two"), ("lobby", "@mia three")):
        response = api(olivia).post(f"/api/rooms/{room}/messages/", {"body": body}, format="json")
        ids.append(response.json()["id"])
    listed = api(mia).get("/api/mentions/").json()
    assert [(m["room"], m["body"]) for m in listed] == [("lobby", "@mia three"), ("secret", "@mia two"), ("lobby", "@mia one")]
    assert [m["id"] for m in api(mia).get(f"/api/mentions/?before={ids[3]}&limit=1").json()] == [ids[2]]
    assert rows(api, mia) == {"lobby": (3, 2), "secret": (1, 1)}  # the invitation is a system message: uncounted
    # A recalled mention no longer counts; reading the room clears the rest of it.
    assert api(olivia).post(f"/api/messages/{ids[0]}/recall/").status_code == 200
    assert rows(api, mia)["lobby"] == (2, 1)
    seq = api(mia).get("/api/rooms/lobby/").json()["last_seq"]
    assert api(mia).post("/api/rooms/lobby/read/", {"seq": seq}, format="json").status_code == 200
    assert rows(api, mia)["lobby"] == (0, 0)
    assert [m["room"] for m in api(mia).get("/api/mentions/").json()] == ["secret"]
    assert api(mia).get("/api/mentions/?limit=0").status_code == 400


async def unread_frames(sock, expected: int) -> list[tuple[int, int]]:
    got = []
    while len(got) < expected:
        frame = await sock.receive(timeout=5)
        if frame["type"] == "unread":
            got.append((frame["count"], frame["mentions"]))
    await asyncio.sleep(0.2)
    assert await sock.nothing()
    return got


@pytest.mark.django_db(transaction=True)
async def test_the_user_stream_counts_mentions_beside_unread(olivia, mia):
    lobby = await db(services.room_create)(creator=olivia, slug="lobby", name="Lobby")
    await db(services.room_join)(user=mia, room=lobby)
    stream, accepted = await open_socket("/ws/", user=mia)
    assert accepted
    try:
        assert (await stream.receive())["type"] == "hello"
        sent = []
        for body in ("hi @mia", "plain", "@all everyone"):
            message, _ = await db(services.message_send)(sender=olivia, room=lobby, body=body)
            sent.append(message)
        assert await unread_frames(stream, 3) == [(1, 1), (2, 1), (3, 2)]
        await db(services.message_recall)(user=olivia, message_id=sent[0].id)
        await db(services.message_delete)(user=olivia, message_id=sent[1].id)
        assert await unread_frames(stream, 2) == [(2, 1), (1, 1)]
        await stream.send({"type": "read", "room": "lobby", "seq": sent[2].seq})
        assert await unread_frames(stream, 1) == [(0, 0)]
    finally:
        await stream.close()

    # A fresh stream starts from the database: the same numbers.
    await db(services.message_send)(sender=olivia, room=lobby, body="again @mia")
    stream, accepted = await open_socket("/ws/", user=mia)
    try:
        assert (await stream.receive())["type"] == "hello"
        frame = await stream.receive_type("unread")
        assert (frame["room"], frame["count"], frame["mentions"]) == ("lobby", 1, 1)
    finally:
        await stream.close()


@pytest.mark.django_db(transaction=True)
async def test_blocking_someone_takes_their_mentions_out_of_the_live_count(olivia, mia, oscar):
    lobby = await db(services.room_create)(creator=olivia, slug="lobby", name="Lobby")
    for person in (mia, oscar):
        await db(services.room_join)(user=person, room=lobby)
    first, _ = await db(services.message_send)(sender=olivia, room=lobby, body="hi @mia")
    stream, accepted = await open_socket("/ws/", user=mia)
    assert accepted
    try:
        assert (await stream.receive())["type"] == "hello"
        frame = await stream.receive_type("unread")
        assert (frame["count"], frame["mentions"]) == (1, 1)
        await db(services.block_add)(user=mia, username="olivia")
        frame = await stream.receive_type("unread")
        assert (frame["room"], frame["count"], frame["mentions"]) == ("lobby", 1, 0)
        await db(services.block_remove)(user=mia, username="olivia")
        frame = await stream.receive_type("unread")
        assert (frame["count"], frame["mentions"]) == (1, 1)

        # Two mentions, one of them from someone blocked since: its recall takes nothing
        # from the one that counts.
        await db(services.message_send)(sender=oscar, room=lobby, body="me too @mia")
        frame = await stream.receive_type("unread")
        assert (frame["count"], frame["mentions"]) == (2, 2)
        await db(services.block_add)(user=mia, username="olivia")
        frame = await stream.receive_type("unread")
        assert (frame["count"], frame["mentions"]) == (2, 1)
        await db(services.message_recall)(user=olivia, message_id=first.id)
        frame = await stream.receive_type("unread")
        assert (frame["count"], frame["mentions"]) == (1, 1)
    finally:
        await stream.close()


@pytest.mark.django_db
def test_an_edit_decides_mentions_again(
    api, lobby, olivia, mia, make_user, settings, published, django_capture_on_commit_callbacks
):
    max_ = make_user("max")
    services.room_join(user=max_, room=lobby)
    settings.PARLEY_PUSH_ALLOW_INSECURE = True
    push_subscribe(user=max_, endpoint="http://127.0.0.1:9/max", keys=Browser().keys())
    sent = api(olivia).post("/api/rooms/lobby/messages/", {"body": "@mia can you look?"}, format="json").json()
    assert rows(api, mia)["lobby"] == (1, 1) and rows(api, max_)["lobby"] == (1, 0)
    assert not PushDelivery.objects.exists()  # max is told of mentions only in lobby

    with django_capture_on_commit_callbacks(execute=True):
        response = api(olivia).patch(f"/api/messages/{sent['id']}/", {"body": "@max can you look?"}, format="json")
    assert response.status_code == 200 and response.json()["mentions"] == ["max"]
    # mia's mention is gone from her counts and her list; max's counts, lists and is pushed.
    assert rows(api, mia)["lobby"] == (1, 0) and api(mia).get("/api/mentions/").json() == []
    assert rows(api, max_)["lobby"] == (1, 1)
    assert [m["id"] for m in api(max_).get("/api/mentions/").json()] == [sent["id"]]
    assert list(PushDelivery.objects.values_list("subscription__user__username", "message_id")) == [("max", sent["id"])]
    [(_, frame, envelope)] = published
    assert (frame["type"], frame["mentions"], frame["mentions_all"]) == ("message.edited", ["max"], False)
    assert envelope["meta"]["mentions_before"] == {"mentions": ["mia"], "mentions_all": False}

    # Text that changes no mention changes no mention (and pushes nobody again).
    api(olivia).patch(f"/api/messages/{sent['id']}/", {"body": "@max could you look?"}, format="json")
    assert PushDelivery.objects.count() == 1 and rows(api, max_)["lobby"] == (1, 1)


@pytest.mark.django_db
def test_a_member_may_not_edit_in_an_all(api, lobby, olivia, mia, db_state):
    sent = api(mia).post("/api/rooms/lobby/messages/", {"body": "hi"}, format="json").json()
    before = db_state()
    response = api(mia).patch(f"/api/messages/{sent['id']}/", {"body": "hi @all"}, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    assert db_state() == before
    # The owner's @all may stay through an edit.
    owned = api(olivia).post("/api/rooms/lobby/messages/", {"body": "@all lunch"}, format="json").json()
    response = api(olivia).patch(f"/api/messages/{owned['id']}/", {"body": "@all lunch is here"}, format="json")
    assert response.status_code == 200 and response.json()["mentions_all"] is True


@pytest.mark.django_db(transaction=True)
async def test_the_user_stream_recounts_when_an_edit_changes_a_mention(olivia, mia):
    lobby = await db(services.room_create)(creator=olivia, slug="lobby", name="Lobby")
    await db(services.room_join)(user=mia, room=lobby)
    stream, accepted = await open_socket("/ws/", user=mia)
    assert accepted
    try:
        assert (await stream.receive())["type"] == "hello"
        message, _ = await db(services.message_send)(sender=olivia, room=lobby, body="@mia hi")
        assert await unread_frames(stream, 1) == [(1, 1)]
        await db(services.message_edit)(user=olivia, message_id=message.id, body="hi all")
        assert await unread_frames(stream, 1) == [(1, 0)]
        await db(services.message_edit)(user=olivia, message_id=message.id, body="hi @mia, again")
        assert await unread_frames(stream, 1) == [(1, 1)]
    finally:
        await stream.close()
