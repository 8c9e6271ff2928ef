"""HTML pages of the app outside the room view (issue 18): the favicon, error pages in
the app's frame, the people directory, joining by sending."""

import pytest
from django.test import Client

from chat import services
from chat.models import Membership, Room

pytestmark = pytest.mark.django_db


def test_favicon_ico_is_served():
    response = Client().get("/favicon.ico", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[0][0].endswith("favicon.svg")


# The room panel ------------------------------------------------------------------------------

def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_panel_lists_members_with_roles_and_lets_the_owner_invite_and_remove(secret, olivia, mia, oscar):
    page = logged_in(olivia).get("/rooms/secret/").content.decode()
    assert 'id="room-panel"' in page and 'data-username="mia"' in page and "owner" in page
    assert 'id="invite-form"' in page and 'action="/rooms/secret/members/mia/remove/"' in page
    assert 'id="invite-form"' not in logged_in(mia).get("/rooms/secret/").content.decode()  # members do not invite

    response = logged_in(olivia).post("/rooms/secret/members/", {"username": "oscar"})
    assert response.status_code == 302 and response["Location"] == "/rooms/secret/#room-panel"
    assert Membership.objects.filter(room=secret, user=oscar).exists()
    response = logged_in(olivia).post("/rooms/secret/members/", {"username": "nobody"}, follow=True)
    assert "No such user." in response.content.decode()  # said on the room page, not a bare 404

    assert logged_in(mia).post("/rooms/secret/members/oscar/remove/").status_code == 302
    assert Membership.objects.filter(room=secret, user=oscar).exists()  # refused: not a moderator
    logged_in(olivia).post("/rooms/secret/members/oscar/remove/")
    assert not Membership.objects.filter(room=secret, user=oscar).exists()


def test_leaving_a_private_room(secret, mia):
    response = logged_in(mia).post("/rooms/secret/leave/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Membership.objects.filter(room=secret, user=mia).exists()
    assert logged_in(mia).get("/rooms/secret/").status_code == 404


def test_the_owner_renames_and_sets_retention(lobby, olivia, mia):
    logged_in(olivia).post("/rooms/lobby/settings/", {"name": "Front desk", "max_age": "24h", "max_count": "100"})
    lobby.refresh_from_db()
    assert lobby.name == "Front desk"
    assert lobby.retention_max_age.total_seconds() == 86400 and lobby.retention_max_count == 100
    page = logged_in(olivia).get("/rooms/lobby/").content.decode()
    assert '<option value="24h" selected>' in page and 'value="100"' in page
    logged_in(mia).post("/rooms/lobby/settings/", {"name": "Mine", "max_age": "", "max_count": ""})
    lobby.refresh_from_db()
    assert lobby.name == "Front desk" and lobby.retention_max_count == 100  # members cannot


def test_staff_set_retention_anywhere_and_it_refuses_nonsense(lobby, stan):
    services.room_set_retention(by=stan, room=lobby, max_age=None, max_count=5)
    assert Room.objects.get(pk=lobby.pk).retention_max_count == 5
    response = logged_in(stan).post("/rooms/lobby/settings/", {"name": "Lobby", "max_age": "2y", "max_count": "-1"})
    assert response.status_code == 302
    assert Room.objects.get(pk=lobby.pk).retention_max_count == 5


# Joining ---------------------------------------------------------------------------------------


def test_sending_into_a_public_room_joins_it_with_a_system_message(lobby, olivia, oscar, api):
    client = api(oscar)
    assert client.post("/api/rooms/lobby/messages/", {"body": "hello", "client_id": "j-1"}, format="json").status_code == 201
    assert Membership.objects.filter(room=lobby, user=oscar).exists()
    kinds = list(lobby.messages.order_by("seq").values_list("kind", "body"))
    assert kinds[-2:] == [("system", "oscar joined"), ("text", "hello")]
    services.message_send(sender=olivia, room=lobby, body="welcome")
    assert client.get("/api/unread/").json()["lobby"] == 1  # counted as a member's room
    page = logged_in(oscar).get("/rooms/lobby/").content.decode()
    assert 'id="join-room"' not in page and 'data-member="true"' in page
    # The second message does not join again.
    client.post("/api/rooms/lobby/messages/", {"body": "again", "client_id": "j-2"}, format="json")
    assert lobby.messages.filter(kind="system", body="oscar joined").count() == 1
