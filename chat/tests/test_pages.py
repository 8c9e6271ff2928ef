"""HTML pages of the app outside the room view (issue 18): the favicon, error pages in
the app's frame, the people directory, joining by sending."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from chat import services
from chat.models import Membership, Room

pytestmark = pytest.mark.django_db


def test_favicon_ico_is_served():
    from django.contrib.staticfiles import finders

    # Followed only as far as the static file: whether it is served depends on collectstatic
    # having run (WhiteNoise serves STATIC_ROOT), not on this view.
    response = Client().get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"].endswith("chat/favicon.svg")
    assert finders.find("chat/favicon.svg")


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


def test_the_owner_sets_a_topic_that_the_header_shows(lobby, olivia, mia, api):
    logged_in(olivia).post("/rooms/lobby/settings/", {"name": "Lobby", "topic": " Bread, cakes and opening hours ", "max_age": ""})
    lobby.refresh_from_db()
    assert lobby.topic == "Bread, cakes and opening hours"
    page = logged_in(mia).get("/rooms/lobby/").content.decode()
    assert '<span id="room-topic" class="room-topic">Bread, cakes and opening hours</span>' in page
    last = api(mia).get("/api/rooms/lobby/messages/").json()[-1]
    assert last["system"] == {"event": "topic", "by": "olivia", "topic": "Bread, cakes and opening hours"}

    # Members cannot; an overlong topic is refused with nothing changed; empty clears it.
    logged_in(mia).post("/rooms/lobby/settings/", {"name": "Lobby", "topic": "mine now", "max_age": ""})
    response = logged_in(olivia).post(
        "/rooms/lobby/settings/", {"name": "Lobby", "topic": "x" * 201, "max_age": ""}, follow=True
    )
    assert "topic is limited to 200 characters." in response.content.decode()
    lobby.refresh_from_db()
    assert lobby.topic == "Bread, cakes and opening hours"
    logged_in(olivia).post("/rooms/lobby/settings/", {"name": "Lobby", "topic": "", "max_age": ""})
    assert api(mia).get("/api/rooms/lobby/messages/").json()[-1]["system"] == {"event": "topic", "by": "olivia"}
    assert 'id="room-topic" class="room-topic" hidden' in logged_in(mia).get("/rooms/lobby/").content.decode()


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


def test_the_join_button_announces_the_join_too(lobby, oscar, api):
    response = logged_in(oscar).post("/rooms/lobby/join/")
    assert response.status_code == 302 and Membership.objects.filter(room=lobby, user=oscar).exists()
    listed = api(oscar).get("/api/rooms/lobby/messages/").json()
    assert listed[-1]["system"] == {"event": "joined", "user": "oscar"}
    assert api(oscar).get("/api/unread/").json()["lobby"] == 0  # their own join is read
    logged_in(oscar).post("/rooms/lobby/join/")
    assert lobby.messages.filter(kind="system", body="oscar joined").count() == 1


def test_flash_messages_name_people_by_their_display_name(secret, olivia, oscar):
    oscar.profile.display_name = "Oscar Wu"
    oscar.profile.save()
    response = logged_in(olivia).post("/rooms/secret/members/", {"username": "oscar"}, follow=True)
    assert "Oscar Wu was added." in response.content.decode()
    response = logged_in(olivia).post("/rooms/secret/members/oscar/remove/", follow=True)
    assert "Oscar Wu was removed." in response.content.decode()


# People ----------------------------------------------------------------------------------------


def test_the_people_directory_finds_by_name_or_username_and_leaves_me_out(olivia, mia, oscar):
    mia.profile.display_name = "Mia Zhang"
    mia.profile.save()
    page = logged_in(olivia).get("/people/").content.decode()
    assert 'data-username="mia"' in page and 'data-username="oscar"' in page and 'data-username="olivia"' not in page
    page = logged_in(olivia).get("/people/?q=zhang").content.decode()
    assert 'data-username="mia"' in page and 'data-username="oscar"' not in page and 'href="/dm/mia/"' in page
    assert "Nobody matches." in logged_in(olivia).get("/people/?q=zzz").content.decode()
    assert Client().get("/people/")["Location"].startswith("/accounts/login/")


def test_the_people_directory_finds_a_chinese_name_by_pinyin_and_never_lists_guests(olivia, mia, make_user):
    mia.profile.display_name = "张伟"
    mia.profile.save()
    make_user("guest-0123abcd")  # a website-widget guest (SPEC §6.6)
    for q in ("zhangwei", "zw", "张"):
        page = logged_in(olivia).get(f"/people/?q={q}").content.decode()
        assert 'data-username="mia"' in page, q
    page = logged_in(olivia).get("/people/").content.decode()
    assert 'data-username="mia"' in page and "guest-0123abcd" not in page
    assert "guest-0123abcd" not in logged_in(olivia).get("/people/?q=guest").content.decode()


@pytest.mark.parametrize("username", ["nobody", "olivia"])
def test_an_unknown_or_own_username_gets_a_page_that_says_so(olivia, username):
    response = logged_in(olivia).get(f"/dm/{username}/")
    page = response.content.decode()
    assert response.status_code == 404 and 'id="notice"' in page and 'id="sidebar"' in page


# Error pages -----------------------------------------------------------------------------------


def test_404_and_403_pages_are_in_the_apps_frame(olivia, mia):
    from projects import services as project_services

    response = logged_in(olivia).get("/no/such/page/")
    page = response.content.decode()
    assert response.status_code == 404 and 'id="sidebar"' in page and 'id="notice"' in page
    assert logged_in(olivia).get("/rooms/nowhere/").status_code == 404
    project_services.project_create(owner=olivia, title="Bakery", slug="bakery")
    response = logged_in(mia).get("/projects/bakery/chats/")
    assert response.status_code == 403 and 'id="sidebar"' in response.content.decode()


def test_the_500_page_is_styled(rf):
    from chat.views import server_error

    response = server_error(rf.get("/"))
    assert response.status_code == 500 and b'id="notice"' in response.content


def test_an_error_page_that_cannot_render_falls_back_to_a_bare_one(rf, settings, tmp_path):
    """Workers started without collectstatic (no manifest): a 404 stays a 404, not a 500."""
    from chat.views import page_not_found, server_error

    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    request = rf.get("/media/messages/nope.png")
    request.user = AnonymousUser()
    response = page_not_found(request)
    assert response.status_code == 404 and b"<h1>404</h1>" in response.content
    assert server_error(rf.get("/")).status_code == 500


# System messages -------------------------------------------------------------------------------


def test_system_messages_carry_their_event_for_the_readers_language(secret, olivia, mia, oscar, api):
    services.room_invite(by=olivia, room=secret, username="oscar")
    services.room_update(by=olivia, room=secret, name="Tea & Co")
    services.room_remove_member(by=olivia, room=secret, username="oscar")
    services.room_leave(user=mia, room=secret)
    listed = api(olivia).get("/api/rooms/secret/messages/").json()
    assert [m["system"] for m in listed if m["kind"] == "system"] == [
        {"event": "added", "by": "olivia", "user": "mia"},
        {"event": "added", "by": "olivia", "user": "oscar"},
        {"event": "changed", "by": "olivia", "name": "Tea & Co"},
        {"event": "removed", "user": "oscar"},
        {"event": "left", "user": "mia"},
    ]
    assert listed[0]["body"] == "olivia added mia"  # the English fallback stays


def test_moderation_system_messages_carry_their_event_too(lobby, olivia, mia, oscar, api):
    services.room_join(user=oscar, room=lobby)
    services.member_role_set(by=olivia, room=lobby, username="mia", role="admin")
    services.member_role_set(by=olivia, room=lobby, username="mia", role="member")
    services.room_ban(by=olivia, room=lobby, username="oscar", minutes=None)
    listed = api(olivia).get("/api/rooms/lobby/messages/").json()
    assert [m["system"] for m in listed if m["kind"] == "system"][-3:] == [
        {"event": "admin", "by": "olivia", "user": "mia"},
        {"event": "member", "by": "olivia", "user": "mia"},
        {"event": "banned", "user": "oscar"},
    ]


def _member_row(page: str, username: str) -> str:
    start = page.index(f'class="member" data-username="{username}"')
    return page[start : page.index("</li>", start)]


def test_the_members_panel_offers_mute_ban_and_roles_to_whom_may_use_them(lobby, olivia, mia, oscar, make_user):
    """The buttons of members.js, as the moderation services allow them: admins act on
    members, the owner (and staff) on admins too and appoint them; members on nobody."""
    stan = make_user("stan")
    for user in (oscar, stan):
        services.room_join(user=user, room=lobby)
    services.member_role_set(by=olivia, room=lobby, username="mia", role="admin")
    services.room_mute(by=olivia, room=lobby, username="oscar", minutes=10)

    owners = logged_in(olivia).get("/rooms/lobby/").content.decode()
    assert "chat/js/members.js" in owners
    oscar_row = _member_row(owners, "oscar")
    assert 'data-member-action="mute"' in oscar_row and 'data-member-action="ban"' in oscar_row
    assert "muted until" in oscar_row and '<span class="member-muted" hidden' not in oscar_row
    assert 'data-member-action="unmute" hidden' not in oscar_row
    assert 'data-role="admin">' in oscar_row  # "Make admin" shown for a member
    mia_row = _member_row(owners, "mia")
    assert 'data-member-action="ban"' in mia_row and 'data-role="member">' in mia_row  # "Remove admin"
    assert 'data-member-action="unmute" hidden' in _member_row(owners, "stan")

    admins = logged_in(mia).get("/rooms/lobby/").content.decode()
    assert 'data-member-action="ban"' in _member_row(admins, "oscar")
    assert 'data-member-action="role"' not in admins  # only the owner appoints
    assert "data-member-action" not in _member_row(admins, "olivia")

    members = logged_in(stan).get("/rooms/lobby/").content.decode()
    assert "data-member-action" not in members and "chat/js/members.js" not in members


# The sidebar's new-room form -------------------------------------------------------------------


def test_a_taken_slug_keeps_the_form_open_and_a_chinese_name_gets_a_slug(lobby, mia):
    client = logged_in(mia)
    response = client.post("/rooms/", {"name": "My lobby", "slug": "lobby", "kind": "private"})
    page = response.content.decode()
    assert response.status_code == 400 and "That slug is taken." in page
    assert 'value="My lobby"' in page and 'value="lobby"' in page and '<option value="private" selected>' in page
    assert '<details class="new-room" open>' in page
    response = client.post("/rooms/", {"name": "茶水间", "slug": "", "kind": "public"})
    room = Room.objects.get(name="茶水间")
    assert room.slug.startswith("room-") and response["Location"] == f"/rooms/{room.slug}/"
