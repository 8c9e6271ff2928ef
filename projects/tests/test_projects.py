"""Projects and the private conversations visitors open with their owners.

Personas: olivia owns the project "bakery"; mia and max are visitors; oscar is an outsider
to mia's conversation.
"""

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from chat import selectors as chat_selectors
from chat import services as chat_services
from chat.models import Membership, Message, Room
from chat.tests.helpers import open_room, open_socket
from chat.tests.test_concurrency import run_together
from core.errors import InvalidInput
from projects import services
from projects.models import Project, ProjectConversation

db = database_sync_to_async


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def bakery(olivia):
    return services.project_create(owner=olivia, title="Bakery", slug="bakery", description="Bread, daily.")


# Projects -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_and_list_projects(olivia, mia):
    created = client_for(olivia).post(
        "/api/projects/", {"title": "Bakery", "slug": "bakery", "description": "Bread"}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["owner"]["username"] == "olivia" and created.json()["slug"] == "bakery"
    taken = client_for(mia).post("/api/projects/", {"title": "Mine", "slug": "bakery"}, format="json")
    assert taken.status_code == 400 and taken.json() == {"detail": "That slug is taken.", "code": "invalid"}
    bad = client_for(mia).post("/api/projects/", {"title": "Mine", "slug": "Bad Slug"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"
    blank = client_for(mia).post("/api/projects/", {"title": " ", "slug": "ok"}, format="json")
    assert blank.status_code == 400
    assert client_for().post("/api/projects/", {"title": "x", "slug": "x"}, format="json").status_code == 401
    listed = client_for().get("/api/projects/").json()
    assert [p["slug"] for p in listed] == ["bakery"]
    assert Project.objects.count() == 1


# Conversations ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_visitor_opens_one_conversation_with_the_owner(bakery, olivia, mia):
    first = client_for(mia).post("/api/projects/bakery/chat/")
    assert first.status_code == 201, first.json()
    room = first.json()
    assert room["kind"] == "project" and room["peer"]["username"] == "olivia"
    again = client_for(mia).post("/api/projects/bakery/chat/")
    assert again.status_code == 200 and again.json()["slug"] == room["slug"]
    stored = Room.objects.get(slug=room["slug"])
    assert not stored.is_public
    assert sorted(Membership.objects.filter(room=stored).values_list("user__username", "role")) == [
        ("mia", "member"), ("olivia", "member"),
    ]
    assert ProjectConversation.objects.get().room == stored
    assert Message.objects.count() == 0

    own = client_for(olivia).post("/api/projects/bakery/chat/")
    assert own.status_code == 400 and own.json()["code"] == "invalid"
    assert client_for(mia).post("/api/projects/nowhere/chat/").status_code == 404
    assert client_for().post("/api/projects/bakery/chat/").status_code == 401


@pytest.mark.django_db
def test_only_the_two_participants_can_read_a_conversation(bakery, olivia, mia, oscar):
    conversation, _ = services.project_chat_open(visitor=mia, project=bakery)
    room = conversation.room
    chat_services.message_send(sender=mia, room=room, body="Do you deliver?")
    assert [m["body"] for m in client_for(olivia).get(f"/api/rooms/{room.slug}/messages/").json()] == ["Do you deliver?"]
    outsider = client_for(oscar)
    for response in (
        outsider.get(f"/api/rooms/{room.slug}/"),
        outsider.get(f"/api/rooms/{room.slug}/messages/"),
        outsider.post(f"/api/rooms/{room.slug}/messages/", {"body": "me too"}, format="json"),
        outsider.post(f"/api/rooms/{room.slug}/join/"),
    ):
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    invite = client_for(olivia).post(f"/api/rooms/{room.slug}/members/", {"username": "oscar"}, format="json")
    assert invite.status_code == 400
    assert client_for(mia).post(f"/api/rooms/{room.slug}/leave/").status_code == 403
    inbox = client_for(oscar).get("/api/projects/bakery/chats/")
    assert inbox.status_code == 403 and inbox.json()["code"] == "forbidden"
    assert client_for(mia).get("/api/projects/bakery/chats/").status_code == 403
    assert Membership.objects.filter(room=room).count() == 2


@pytest.mark.django_db(transaction=True)
async def test_an_outsider_socket_is_refused_and_the_owner_hears_room_added(bakery, olivia, mia, oscar):
    stream, accepted = await open_socket("/ws/", user=olivia)
    assert accepted and (await stream.receive())["type"] == "hello"
    try:
        conversation, _ = await db(services.project_chat_open)(visitor=mia, project=bakery)
        added = await stream.receive_type("room.added")
        assert added["room"]["slug"] == conversation.room.slug and added["room"]["kind"] == "project"
        outsider, accepted = await open_socket(f"/ws/chat/{conversation.room.slug}/", user=oscar)
        assert not accepted or await outsider.closed_with() == 4404
        sock, hello = await open_room(conversation.room.slug, user=mia)
        assert hello["room"]["kind"] == "project"
        await sock.close()
    finally:
        await stream.close()


@pytest.mark.django_db
def test_owner_inbox_most_recent_first_with_unread_counts(bakery, olivia, mia, make_user):
    max_ = make_user("max")
    mia_chat, _ = services.project_chat_open(visitor=mia, project=bakery)
    max_chat, _ = services.project_chat_open(visitor=max_, project=bakery)
    chat_services.message_send(sender=mia, room=mia_chat.room, body="one")
    chat_services.message_send(sender=mia, room=mia_chat.room, body="two")
    chat_services.message_send(sender=max_, room=max_chat.room, body="hello")
    Room.objects.filter(pk=mia_chat.room_id).update(last_activity_at=timezone.now() - timezone.timedelta(minutes=5))

    inbox = client_for(olivia).get("/api/projects/bakery/chats/")
    assert inbox.status_code == 200
    rows = [(r["visitor"]["username"], r["room"]["slug"], r["unread_count"]) for r in inbox.json()]
    assert rows == [("max", max_chat.room.slug, 1), ("mia", mia_chat.room.slug, 2)]

    # The owner answers mia: her conversation moves up, and its count drops to zero.
    chat_services.message_send(sender=olivia, room=mia_chat.room, body="yes")
    rows = [(r["visitor"]["username"], r["unread_count"]) for r in client_for(olivia).get("/api/projects/bakery/chats/").json()]
    assert rows == [("mia", 0), ("max", 1)]
    assert chat_selectors.unread_counts(user=olivia) == {mia_chat.room.slug: 0, max_chat.room.slug: 1}


@pytest.mark.django_db
def test_the_project_owner_does_not_moderate_the_visitors_messages(bakery, olivia, mia):
    """Defect: the project's owner was the conversation room's `owner` and could delete
    the visitor's messages. Both are plain members; the inbox still works, through the
    project's owner rather than a room role."""
    conversation, _ = services.project_chat_open(visitor=mia, project=bakery)
    question, _ = chat_services.message_send(sender=mia, room=conversation.room, body="Gluten free?")

    refused = client_for(olivia).delete(f"/api/messages/{question.id}/")

    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert not Message.objects.get(pk=question.pk).deleted
    assert Membership.objects.get(room=conversation.room, user=olivia).role == Membership.Role.MEMBER
    inbox = client_for(olivia).get("/api/projects/bakery/chats/").json()
    assert [(r["visitor"]["username"], r["unread_count"]) for r in inbox] == [("mia", 1)]


@pytest.mark.django_db
def test_a_squatted_conversation_slug_does_not_break_opening_a_chat(bakery, mia):
    """Defect: the room slug was project-<project id>-<visitor id>; anyone who took it
    first made `POST /api/projects/<p>/chat/` a 500 for that visitor forever. The prefix
    is reserved now, and a room that took it before no longer collides."""
    squat = client_for(mia).post("/api/rooms/", {"slug": f"project-{bakery.pk}-{mia.pk}", "name": "x"}, format="json")
    assert squat.status_code == 400 and squat.json()["code"] == "invalid"
    Room.objects.create(slug=f"project-{bakery.pk}-{mia.pk}", name="squatted before the fix")

    opened = client_for(mia).post("/api/projects/bakery/chat/")

    assert opened.status_code == 201, opened.content
    assert opened.json()["slug"].startswith("project-") and opened.json()["slug"] != f"project-{bakery.pk}-{mia.pk}"


@pytest.mark.django_db
def test_owner_cannot_chat_with_own_project(bakery, olivia):
    with pytest.raises(InvalidInput):
        services.project_chat_open(visitor=olivia, project=bakery)


# HTML -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_project_page_button_opens_the_conversation(bakery, olivia, mia):
    client = Client()
    page = client.get("/projects/bakery/")
    assert page.status_code == 200 and "Bakery" in page.content.decode()
    assert client.get("/projects/nowhere/").status_code == 404
    client.force_login(mia)
    page = client.get("/projects/bakery/")
    assert 'action="/projects/bakery/chat/"' in page.content.decode()
    assert client.get("/projects/bakery/chat/").status_code == 405
    response = client.post("/projects/bakery/chat/")
    conversation = ProjectConversation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/rooms/{conversation.room.slug}/"
    assert client.get(response["Location"]).status_code == 200

    owner = Client()
    owner.force_login(olivia)
    own = owner.post("/projects/bakery/chat/")
    assert own.status_code == 302 and own["Location"] == "/projects/bakery/"
    chat_services.message_send(sender=mia, room=conversation.room, body="hi")
    inbox = owner.get("/projects/bakery/chats/")
    assert inbox.status_code == 200
    html = inbox.content.decode()
    assert "mia" in html and '<span class="badge" data-count="1">1</span>' in html
    assert client.get("/projects/bakery/chats/").status_code == 403
    assert ProjectConversation.objects.count() == 1


# Races (PostgreSQL) -----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_chat_opens_make_one_conversation(bakery, mia):
    def work(_):
        conversation, created = services.project_chat_open(visitor=mia, project=Project.objects.get(pk=bakery.pk))
        return conversation.room_id, created

    results = run_together(10, work)
    assert len({room_id for room_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert ProjectConversation.objects.count() == 1
    assert Room.objects.filter(kind=Room.Kind.PROJECT).count() == 1
    assert Membership.objects.filter(room_id=results[0][0]).count() == 2
