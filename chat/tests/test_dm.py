"""Direct messages (SPEC §2 `dm`, §4 `POST /api/dm/<username>/`): one room per pair,
exactly two members, nobody else can read, join, be invited or send.

Personas: olivia and mia talk; oscar is an outsider.
"""

import re

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from chat import services
from chat.models import Membership, Message, Room
from chat.tests.helpers import open_room, open_socket
from chat.tests.test_concurrency import run_together

db = database_sync_to_async


def dm(olivia, mia) -> Room:
    room, _ = services.dm_get_or_create(user=olivia, other_username="mia")
    return room


# The service -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_dm_is_created_once_with_exactly_the_two_members(olivia, mia, django_capture_on_commit_callbacks):
    room, created = services.dm_get_or_create(user=olivia, other_username="mia")
    assert created and room.kind == Room.Kind.DM
    low, high = sorted((olivia.pk, mia.pk))
    assert room.dm_key == f"{low}:{high}" and re.fullmatch(r"dm-[0-9a-f]{16}", room.slug)
    again, created_again = services.dm_get_or_create(user=mia, other_username="olivia")
    assert again.pk == room.pk and not created_again
    assert sorted(Membership.objects.filter(room=room).values_list("user__username", flat=True)) == ["mia", "olivia"]
    assert Room.objects.filter(kind=Room.Kind.DM).count() == 1
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_dm_with_yourself_or_nobody_is_refused(olivia):
    from core.errors import InvalidInput, NotFound

    with pytest.raises(InvalidInput):
        services.dm_get_or_create(user=olivia, other_username="olivia")
    with pytest.raises(NotFound):
        services.dm_get_or_create(user=olivia, other_username="ghost")
    assert not Room.objects.exists()


@pytest.mark.django_db
def test_dm_slugs_name_nobody_and_cannot_be_squatted(api, olivia, mia, oscar, make_user):
    """Defect: a DM's slug was dm-<low id>-<high id>, so `POST /api/rooms/` with it
    answered "taken" exactly when that DM existed: an outsider learned who talks to whom.
    Slugs are random now, and the dm-/project- prefixes are the system's whatever exists."""
    max_ = make_user("max")
    room = dm(olivia, mia)
    low, high = sorted((olivia.pk, mia.pk))
    guesses = [f"dm-{low}-{high}", f"dm-{oscar.pk}-{max_.pk}", room.slug, "project-1-2", f"project-1-{oscar.pk}"]

    answers = [api(oscar).post("/api/rooms/", {"slug": slug, "name": "Guess"}, format="json") for slug in guesses]

    assert {(r.status_code, r.json()["code"], r.json()["detail"]) for r in answers} == {
        (400, "invalid", "Slugs starting with dm- or project- are reserved for conversations.")
    }
    assert Room.objects.count() == 1


@pytest.mark.django_db
def test_an_old_dm_slug_row_keeps_working(api, olivia, mia):
    """Rooms made before keep their `dm-<id>-<id>` slugs (no data migration): found by
    their dm_key, reachable at their slug."""
    low, high = sorted((olivia.pk, mia.pk))
    old = Room.objects.create(slug=f"dm-{low}-{high}", name="old", kind=Room.Kind.DM, dm_key=f"{low}:{high}")
    Membership.objects.bulk_create([Membership(room=old, user=u) for u in (olivia, mia)])

    room, created = services.dm_get_or_create(user=mia, other_username="olivia")

    assert (room.pk, created) == (old.pk, False)
    assert api(olivia).get(f"/api/rooms/{old.slug}/").status_code == 200


# REST --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_dm_get_or_create(api, olivia, mia):
    first = api(olivia).post("/api/dm/mia/")
    assert first.status_code == 201, first.json()
    body = first.json()
    assert body["kind"] == "dm" and body["member"] is True and body["peer"]["username"] == "mia"
    second = api(mia).post("/api/dm/olivia/")
    assert second.status_code == 200 and second.json()["slug"] == body["slug"]
    assert second.json()["peer"]["username"] == "olivia"

    assert api(olivia).post("/api/dm/olivia/").json() == {
        "detail": "You cannot start a direct conversation with yourself.", "code": "invalid"
    }
    missing = api(olivia).post("/api/dm/ghost/")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert api().post("/api/dm/mia/").status_code == 401

    rows = {r["slug"]: r for r in api(olivia).get("/api/rooms/").json()}
    assert rows[body["slug"]]["peer"]["username"] == "mia"
    detail = api(mia).get(f"/api/rooms/{body['slug']}/").json()
    assert detail["peer"]["username"] == "olivia"
    assert sorted(m["username"] for m in detail["members"]) == ["mia", "olivia"]


@pytest.mark.django_db
def test_an_outsider_is_refused_everywhere_in_a_dm(api, olivia, mia, oscar):
    room = dm(olivia, mia)
    services.message_send(sender=olivia, room=room, body="just us")
    outsider = api(oscar)
    for response in (
        outsider.get(f"/api/rooms/{room.slug}/"),
        outsider.get(f"/api/rooms/{room.slug}/messages/"),
        outsider.get(f"/api/rooms/{room.slug}/messages/?since_rev=0"),
        outsider.post(f"/api/rooms/{room.slug}/messages/", {"body": "let me in"}, format="json"),
        outsider.post(f"/api/rooms/{room.slug}/join/"),
        outsider.post(f"/api/rooms/{room.slug}/read/", {"seq": 1}, format="json"),
    ):
        assert response.status_code == 404 and response.json()["code"] == "not_found", response.content
    assert room.slug not in {r["slug"] for r in outsider.get("/api/rooms/").json()}
    # The members cannot bring anyone in, nor drop out.
    invite = api(olivia).post(f"/api/rooms/{room.slug}/members/", {"username": "oscar"}, format="json")
    assert invite.status_code == 400 and invite.json()["code"] == "invalid"
    assert api(mia).post(f"/api/rooms/{room.slug}/leave/").status_code == 403
    removed = api(olivia).delete(f"/api/rooms/{room.slug}/members/mia/")
    assert removed.status_code == 403
    assert Membership.objects.filter(room=room).count() == 2
    assert list(Message.objects.values_list("body", flat=True)) == ["just us"]


@pytest.mark.django_db
def test_html_dm_get_never_creates_a_conversation(olivia, mia):
    """Defect: `GET /dm/<username>/` created the DM, so a cross-site <img> could make
    one. GET shows a button; only its CSRF-protected POST starts the conversation."""
    client = Client(enforce_csrf_checks=True)
    assert client.get("/dm/mia/")["Location"].startswith("/accounts/login/")
    client.force_login(olivia)

    page = client.get("/dm/mia/")

    assert page.status_code == 200 and not Room.objects.exists()
    html = page.content.decode()
    assert '<form method="post" action="/dm/mia/">' in html and "csrfmiddlewaretoken" in html
    assert client.post("/dm/mia/").status_code == 403  # a forged POST: no token
    assert not Room.objects.exists()

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    started = client.post("/dm/mia/", {"csrfmiddlewaretoken": token})
    room = Room.objects.get(kind=Room.Kind.DM)
    # The conversation lives at the person's address (not dm-…), shown straight away.
    assert started.status_code == 302 and started["Location"] == "/dm/mia/"
    shown = client.get("/dm/mia/")
    assert shown.status_code == 200 and f'data-room="{room.slug}"' in shown.content.decode()
    assert client.get(f"/rooms/{room.slug}/")["Location"] == "/dm/mia/"
    assert client.post("/dm/mia/", {"csrfmiddlewaretoken": token})["Location"] == "/dm/mia/"
    assert Room.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/dm/ghost/", "No such user."),
        ("/dm/olivia/", "You cannot start a direct conversation with yourself."),
        ("/dm/?username=a/b", "No such user."),  # was a 500: no URL holds the slash
    ],
)
def test_html_dm_to_nobody_is_the_apps_404_page(olivia, path, says):
    client = Client()
    client.force_login(olivia)

    response = client.get(path)

    assert response.status_code == 404
    html = response.content.decode()
    assert 'id="notice"' in html and says in html and 'id="sidebar"' in html
    assert client.post(path.split("?")[0]).status_code in (404, 405)
    assert not Room.objects.exists()


@pytest.mark.django_db
def test_html_dm_picker_leads_to_the_dm_page(olivia, mia):
    client = Client()
    client.force_login(olivia)
    assert client.get("/dm/?username=mia")["Location"] == "/dm/mia/"
    assert client.get("/dm/?username=")["Location"] == "/"
    assert not Room.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("first", ["olivia", "mia"])
def test_in_a_dm_neither_person_may_delete_the_others_messages(api, request, olivia, mia, first):
    """Defect: the lower user id became the DM's owner and could delete the other's
    messages (204 one way, 403 the other). Both are plain members (SPEC §6.4)."""
    starter, other = (olivia, mia) if first == "olivia" else (mia, olivia)
    room, _ = services.dm_get_or_create(user=starter, other_username=other.username)
    from_olivia, _ = services.message_send(sender=olivia, room=room, body="from olivia")
    from_mia, _ = services.message_send(sender=mia, room=room, body="from mia")

    for user, theirs in ((olivia, from_mia), (mia, from_olivia)):
        response = api(user).delete(f"/api/messages/{theirs.id}/")
        assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert not Message.objects.filter(deleted=True).exists()
    assert {m["role"] for m in api(olivia).get(f"/api/rooms/{room.slug}/").json()["members"]} == {"member"}
    assert api(mia).delete(f"/api/messages/{from_mia.id}/").status_code == 204  # your own: always


@pytest.mark.django_db
def test_migration_makes_existing_conversation_owners_plain_members(olivia, mia, oscar):
    """Rows made by the old code (an `owner` in every DM and project conversation) lose
    the role; ordinary rooms keep theirs."""
    import importlib

    from django.apps import apps

    from projects import services as project_services

    dm_room = dm(olivia, mia)
    project = project_services.project_create(owner=olivia, title="Bakery", slug="bakery")
    conversation, _ = project_services.project_chat_open(visitor=oscar, project=project)
    private = services.room_create(creator=olivia, slug="secret", name="Secret", kind=Room.Kind.PRIVATE)
    Membership.objects.filter(room=dm_room, user=olivia).update(role=Membership.Role.OWNER)
    Membership.objects.filter(room=conversation.room, user=olivia).update(role=Membership.Role.OWNER)

    migration = importlib.import_module("chat.migrations.0003_conversation_members_are_plain_members")
    migration.make_plain_members(apps, None)

    roles = dict(Membership.objects.filter(user=olivia).values_list("room__slug", "role"))
    assert roles == {dm_room.slug: "member", conversation.room.slug: "member", private.slug: "owner"}


# WebSocket ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_dm_reaches_the_other_stream_and_outsiders_get_4404(olivia, mia, oscar):
    stream, accepted = await open_socket("/ws/", user=mia)
    assert accepted and (await stream.receive())["type"] == "hello"
    try:
        room, created = await db(services.dm_get_or_create)(user=olivia, other_username="mia")
        assert created
        added = await stream.receive_type("room.added")
        assert added["room"]["slug"] == room.slug and added["room"]["kind"] == "dm"

        outsider, accepted = await open_socket(f"/ws/chat/{room.slug}/", user=oscar)
        assert not accepted or await outsider.closed_with() == 4404

        sock, hello = await open_room(room.slug, user=mia)
        assert hello["room"]["kind"] == "dm"
        await sock.close()
    finally:
        await stream.close()


# Races (PostgreSQL) -------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_dm_calls_make_one_room(olivia, mia):
    def work(i):
        user, other = (olivia, "mia") if i % 2 else (mia, "olivia")
        room, created = services.dm_get_or_create(user=user, other_username=other)
        return room.pk, created

    results = run_together(10, work)
    assert len({pk for pk, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Room.objects.filter(kind=Room.Kind.DM).count() == 1
    assert Membership.objects.filter(room_id=results[0][0]).count() == 2
