"""The guest socket `/ws/widget/<room>/` (SPEC §6.6): the first frame logs in, the room is
the guest's own conversation, then it is an ordinary room socket; the owner sees the
guest live, and blocking the guest closes its socket.

Personas: olivia owns "bakery" and answers from Parley; guests come through the widget.
"""

import pytest
from channels.db import database_sync_to_async
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from chat import services as chat_services
from chat.models import Room
from chat.tests.helpers import open_room, open_socket
from chat.tests.test_consumers import no_leftover_socket_counts  # noqa: F401 (autouse fixture)
from projects import services

db = database_sync_to_async


@pytest.fixture
def bakery(olivia):
    project = services.project_create(owner=olivia, title="Bakery", slug="bakery")
    services.widget_update(user=olivia, project=project, enabled=True, origins=["https://shop.example"])
    return project


@db
def new_guest(**data) -> dict:
    answer = APIClient(REMOTE_ADDR="203.0.113.7").post("/api/widget/bakery/guests/", data, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


async def guest_socket(room: str, first_frame) -> tuple:
    sock, accepted = await open_socket(f"/ws/widget/{room}/")
    assert accepted
    await sock.send(first_frame)
    return sock


@pytest.mark.django_db(transaction=True)
async def test_a_guest_logs_in_with_its_first_frame_and_talks_with_the_owner_live(bakery, olivia):
    guest = await new_guest(display_name="Ann")
    sock = await guest_socket(guest["room"], {"type": "auth", "token": guest["token"]})
    hello = await sock.receive()
    assert hello["type"] == "hello" and hello["room"]["slug"] == guest["room"] and hello["room"]["kind"] == "project"
    assert hello["user"] == {**guest["user"], "guest": True}
    owner, _ = await open_room(guest["room"], user=olivia)
    await sock.send({"type": "message.send", "body": "Do you deliver?", "client_id": "c1"})
    assert (await sock.receive_type("ack"))["client_id"] == "c1"
    seen = await owner.receive_type("message")
    assert seen["body"] == "Do you deliver?" and seen["sender"]["guest"] is True
    await owner.send({"type": "message.send", "body": "Yes, daily.", "client_id": "o1"})
    answer = await sock.receive_type("message")
    if answer["sender"].get("guest"):  # its own message comes back to it too, after the ack
        assert answer["body"] == "Do you deliver?"
        answer = await sock.receive_type("message")
    assert answer["sender"]["username"] == "olivia" and answer["body"] == "Yes, daily."
    await sock.close()
    await owner.close()


@pytest.mark.django_db(transaction=True)
async def test_a_new_guest_conversation_reaches_the_owners_stream_live_named_by_project(bakery, olivia):
    """What keeps the owner's inbox and sidebar live (chat/static/chat/js/inbox.js): the
    owner's /ws/ hears of the guest's new conversation and of its messages."""
    stream, accepted = await open_socket("/ws/", user=olivia)
    assert accepted
    assert (await stream.receive())["type"] == "hello"
    guest = await new_guest(display_name="Ann")
    added = await stream.receive_type("room.added")
    assert added["room"]["slug"] == guest["room"] and added["room"]["name"] == "Bakery"
    sock = await guest_socket(guest["room"], {"type": "auth", "token": guest["token"]})
    await sock.receive_type("hello")
    await sock.send({"type": "message.send", "body": "Hello?", "client_id": "c1"})
    unread = await stream.receive_type("unread")
    assert unread["room"] == guest["room"] and unread["count"] == 1
    # What the page then asks for: the conversation named by project, its guest marked.
    owner = APIClient()
    owner.force_authenticate(olivia)
    detail = await db(lambda: owner.get(f"/api/rooms/{guest['room']}/").json())()
    assert detail["name"] == "Bakery" and detail["peer"]["display_name"] == "Ann" and detail["peer"]["guest"] is True
    inbox = await db(lambda: owner.get("/api/projects/bakery/chats/").json())()
    assert [(c["room"]["slug"], c["visitor"]["guest"], c["unread_count"]) for c in inbox] == [(guest["room"], True, 1)]
    await sock.close()
    await stream.close()


@pytest.mark.django_db(transaction=True)
async def test_anything_but_auth_first_closes_4401(bakery):
    guest = await new_guest()
    for first in ({"type": "ping"}, {"type": "message.send", "body": "hi"}, "not json", {"type": "auth"},
                  {"type": "auth", "token": "nope"}, {"type": "auth", "token": 5}):
        sock = await guest_socket(guest["room"], first)
        assert await sock.closed_with() == 4401, first
    # A registered user's own token is not a guest's.
    user_token = (await db(Token.objects.create)(user=bakery.owner)).key
    sock = await guest_socket(guest["room"], {"type": "auth", "token": user_token})
    assert await sock.closed_with() == 4401


@pytest.mark.django_db(transaction=True)
async def test_a_guest_token_reads_no_other_room_over_a_socket(bakery, olivia, mia):
    mine, other = await new_guest(), await new_guest()
    await db(chat_services.room_create)(creator=olivia, slug="lobby", name="Lobby")
    dm, _ = await db(chat_services.dm_get_or_create)(user=olivia, other_username="mia")
    for room in (other["room"], "lobby", dm.slug, "nothing"):
        sock = await guest_socket(room, {"type": "auth", "token": mine["token"]})
        assert await sock.closed_with() == 4404, room
    # The ordinary sockets refuse a guest's token in a header.
    sock, _ = await open_socket("/ws/chat/lobby/", token=mine["token"])
    assert await sock.closed_with() == 4404
    sock, _ = await open_socket(f"/ws/chat/{mine['room']}/", token=mine["token"])
    assert await sock.closed_with() == 4404
    sock, _ = await open_socket("/ws/", token=mine["token"])
    assert await sock.closed_with() == 4403
    # ... and anonymous readers still get hello on the ordinary room socket without a frame.
    anonymous, hello = await open_room("lobby")
    assert hello["user"] is None
    await anonymous.close()


@pytest.mark.django_db(transaction=True)
async def test_blocking_a_guest_closes_its_socket_and_closing_stops_its_sends(bakery, olivia):
    guest = await new_guest()
    sock = await guest_socket(guest["room"], {"type": "auth", "token": guest["token"]})
    await sock.receive_type("hello")
    room = await db(Room.objects.get)(slug=guest["room"])
    await db(chat_services.conversation_close)(user=olivia, room=room)
    closed = await sock.receive_type("message")
    assert closed["kind"] == "system"
    await sock.send({"type": "message.send", "body": "hello?", "client_id": "c2"})
    refused = await sock.receive_type("error")
    assert refused["code"] == "forbidden" and refused["client_id"] == "c2"
    await db(services.guest_block)(user=olivia, project=bakery, username=guest["user"]["username"])
    assert await sock.closed_with(timeout=5) == 4401
    again = await guest_socket(guest["room"], {"type": "auth", "token": guest["token"]})
    assert await again.closed_with() == 4401


@pytest.mark.django_db(transaction=True)
async def test_a_guests_sockets_count_against_the_per_user_cap(bakery, settings):
    settings.PARLEY_MAX_SOCKETS_PER_USER = 2
    guest = await new_guest()
    open_ones = []
    for _ in range(2):
        sock = await guest_socket(guest["room"], {"type": "auth", "token": guest["token"]})
        await sock.receive_type("hello")
        open_ones.append(sock)
    third = await guest_socket(guest["room"], {"type": "auth", "token": guest["token"]})
    assert await third.closed_with() == 4429
    await open_ones.pop().close()
    again = await guest_socket(guest["room"], {"type": "auth", "token": guest["token"]})
    assert (await again.receive_type("hello"))["type"] == "hello"
    for sock in (*open_ones, again):
        await sock.close()


@pytest.mark.django_db(transaction=True)
async def test_guest_sends_over_the_socket_take_from_the_addresss_allowance(bakery, settings):
    settings.PARLEY_WIDGET_MESSAGES_PER_HOUR = 1
    guest = await new_guest()
    sock = await guest_socket(guest["room"], {"type": "auth", "token": guest["token"]})
    await sock.receive_type("hello")
    await sock.send({"type": "message.send", "body": "one", "client_id": "a"})
    assert (await sock.receive_type("ack"))["client_id"] == "a"
    await sock.send({"type": "message.send", "body": "two", "client_id": "b"})
    refused = await sock.receive_type("error")
    assert refused["code"] == "rate_limited" and refused["client_id"] == "b"
    await sock.close()
