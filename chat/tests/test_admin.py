"""The Django admin changes rooms and memberships through chat.services, so connected
clients live by the same rules as when the app makes the change: a room made private
closes outsiders' and anonymous sockets, an added member's stream hears `room.added`, a
removed member's sockets close with 4403.

Personas: olivia owns `lobby` (public) and `secret` (private), mia is a member of both,
oscar is an outsider; root is a superuser driving the admin with the test client.
"""

from unittest import mock

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from chat import services
from chat.models import Membership, Message, Room
from chat.tests.helpers import open_room, open_socket

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


@pytest.fixture
def admin(make_user):
    """A test client logged in to the admin as a superuser (staff acting)."""
    root = make_user("root", staff=True)
    root.is_superuser = True
    root.save()
    client = Client()
    client.force_login(root)
    return client


def form_data(client, url: str) -> dict:
    """The admin form at `url` with its current values, as a browser would post it back."""
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    forms = [response.context["adminform"].form]
    for inline in response.context.get("inline_admin_formsets", []):
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name, field in form.fields.items():
            value = field.prepare_value(form[name].value())
            if value is not None and value is not False:
                data[form.add_prefix(name)] = value
    return data


def post(client, url: str, data: dict) -> None:
    response = client.post(url, data)
    errors = response.context and response.context.get("errors")
    assert response.status_code == 302, errors or response.content[:500]


def change_room(client, room: Room, *, delete=(), add=(), **fields) -> None:
    """Save the room's change form with `fields` changed, the memberships of the users in
    `delete` ticked for deletion and rows added for the users in `add`."""
    url = f"/admin/chat/room/{room.pk}/change/"
    data = form_data(client, url)
    data.update(fields)
    total = int(data["memberships-TOTAL_FORMS"])
    for index in range(total):
        if data.get(f"memberships-{index}-user") in {user.pk for user in delete}:
            data[f"memberships-{index}-DELETE"] = "on"
    for offset, user in enumerate(add):
        data[f"memberships-{total + offset}-user"] = user.pk
        data[f"memberships-{total + offset}-role"] = Membership.Role.MEMBER
    data["memberships-TOTAL_FORMS"] = total + len(add)
    post(client, url, data)


@pytest.fixture
def lobby(olivia, mia):
    room = services.room_create(creator=olivia, slug="lobby", name="Lobby")
    Membership.objects.create(room=room, user=mia)  # no "joined" message: the history starts empty
    return room


@pytest.fixture
def secret(olivia, mia):
    room = services.room_create(creator=olivia, slug="secret", name="Secret", kind=Room.Kind.PRIVATE)
    services.room_invite(by=olivia, room=room, username="mia")
    return room


async def open_stream(user):
    stream, accepted = await open_socket("/ws/", user=user)
    assert accepted and (await stream.receive())["type"] == "hello"
    return stream


async def close_all(*sockets) -> None:
    for sock in sockets:
        try:
            await sock.close()
        except Exception:  # the server closed it already
            pass


# Rooms -------------------------------------------------------------------------------------


async def test_admin_making_a_public_room_private_closes_outsiders_and_anonymous_readers(
    admin, api, lobby, mia, oscar
):
    """Defect: the admin saved the new kind with the ORM, so outsiders' and anonymous
    sockets went on reading the now-private room (and outsiders posting in it)."""
    member, _ = await open_room("lobby", user=mia)
    outsider, _ = await open_room("lobby", user=oscar)
    anonymous, _ = await open_room("lobby")
    try:
        await db(change_room)(admin, lobby, kind="private")

        assert await outsider.closed_with() == 4403
        assert await anonymous.closed_with() == 4403
        notice = await member.receive_type("message")
        assert (notice["kind"], notice["body"]) == ("system", "root made the room private")
        refused = await db(api(oscar).post)("/api/rooms/lobby/messages/", {"body": "still here?"}, format="json")
        assert refused.status_code == 404
        assert (await db(Room.objects.get)(pk=lobby.pk)).kind == Room.Kind.PRIVATE
    finally:
        await close_all(member, outsider, anonymous)


async def test_a_lost_kind_change_event_still_closes_outsiders(admin, lobby, mia, oscar):
    """The hub learns a room's kind from the database too (sweep, gap fill): if the event
    that made it private never arrives, outsiders are still shut out within a sweep."""
    outsider, _ = await open_room("lobby", user=oscar)
    try:
        with mock.patch("chat.events.publish"):  # the channel layer drops it
            await db(change_room)(admin, lobby, kind="private")

        assert await outsider.closed_with(timeout=5) == 4403  # PARLEY_SWEEP_SECONDS is 0.5 here
    finally:
        await close_all(outsider)


async def test_admin_rename_and_quiet_fields(admin, lobby, mia):
    member, _ = await open_room("lobby", user=mia)
    try:
        await db(change_room)(admin, lobby, name="Hall", retention_max_count="100")

        notice = await member.receive_type("message")
        assert notice["body"] == "root renamed the room to “Hall”"
        room = await db(Room.objects.get)(pk=lobby.pk)
        assert (room.name, room.kind, room.retention_max_count, room.slug) == ("Hall", "public", 100, "lobby")
    finally:
        await close_all(member)


def test_admin_keeps_conversations_and_reserved_slugs_for_the_system(admin, olivia, mia):
    dm, _ = services.dm_get_or_create(user=olivia, other_username="mia")
    page = admin.get(f"/admin/chat/room/{dm.pk}/change/").content.decode()
    assert 'name="kind"' not in page and 'name="name"' not in page and 'name="memberships-0-role"' not in page

    data = form_data(admin, "/admin/chat/room/add/")
    data.update({"slug": "dm-squat", "name": "Squat", "kind": "public"})
    refused = admin.post("/admin/chat/room/add/", data)
    assert refused.status_code == 200 and "reserved" in refused.content.decode()
    data.update({"slug": "fine", "kind": "dm"})
    assert admin.post("/admin/chat/room/add/", data).status_code == 200
    assert Room.objects.count() == 1


# Memberships -------------------------------------------------------------------------------


async def test_admin_inline_adds_and_removes_members_through_the_services(admin, secret, olivia, mia, oscar):
    """Defect: membership rows added or deleted in the admin sent no `room.added` and
    closed no socket: the removed member kept reading the private room."""
    stream = await open_stream(oscar)
    removed, _ = await open_room("secret", user=mia)
    try:
        await db(change_room)(admin, secret, delete=[mia], add=[oscar])

        added = await stream.receive_type("room.added")
        assert added["room"]["slug"] == "secret"
        assert await removed.closed_with() == 4403
        members = await db(lambda: sorted(Membership.objects.filter(room=secret).values_list("user__username", "role")))()
        assert members == [("olivia", "owner"), ("oscar", "member")]
        bodies = await db(lambda: list(Message.objects.filter(room=secret).values_list("body", flat=True)))()
        assert bodies[-2:] == ["mia was removed", "root added oscar"]
    finally:
        await close_all(stream, removed)


async def test_admin_membership_pages_add_and_remove_through_the_services(admin, secret, olivia, mia, oscar):
    stream = await open_stream(oscar)
    removed, _ = await open_room("secret", user=mia)
    try:
        await db(post)(admin, "/admin/chat/membership/add/", {"user": oscar.pk, "room": secret.pk, "role": "member"})
        assert (await stream.receive_type("room.added"))["room"]["slug"] == "secret"

        membership = await db(Membership.objects.get)(room=secret, user=mia)
        await db(post)(admin, f"/admin/chat/membership/{membership.pk}/delete/", {"post": "yes"})
        assert await removed.closed_with() == 4403
        assert not await db(Membership.objects.filter(pk=membership.pk).exists)()
    finally:
        await close_all(stream, removed)


def test_admin_bulk_delete_of_memberships_removes_each_through_the_service(admin, secret, olivia, mia, oscar):
    services.room_invite(by=olivia, room=secret, username="oscar")
    everyone = list(Membership.objects.filter(room=secret).values_list("pk", flat=True))
    others = list(Membership.objects.filter(room=secret).exclude(user=olivia).values_list("pk", flat=True))
    action = {"action": "delete_selected", "post": "yes"}

    assert admin.post("/admin/chat/membership/", {**action, "_selected_action": everyone}).status_code == 403  # the owner stays
    response = admin.post("/admin/chat/membership/", {**action, "_selected_action": others}, follow=True)

    assert response.status_code == 200
    assert list(Membership.objects.filter(room=secret).values_list("user__username", flat=True)) == ["olivia"]
    bodies = set(Message.objects.filter(room=secret).values_list("body", flat=True))
    assert {"mia was removed", "oscar was removed"} <= bodies


def test_admin_cannot_add_to_or_remove_from_a_conversation(admin, olivia, mia, oscar):
    dm, _ = services.dm_get_or_create(user=olivia, other_username="mia")
    refused = admin.post("/admin/chat/membership/add/", {"user": oscar.pk, "room": dm.pk, "role": "member"})
    assert refused.status_code == 200 and "keep their two members" in refused.content.decode()
    membership = Membership.objects.get(room=dm, user=mia)
    assert admin.get(f"/admin/chat/membership/{membership.pk}/delete/").status_code == 403
    assert Membership.objects.filter(room=dm).count() == 2
