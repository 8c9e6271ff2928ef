"""The website widget (SPEC §6.6) over REST: the owner's settings, guests made by the
widget, the fence around a guest's token, closing a conversation and blocking a guest.

Personas: olivia owns the project "bakery" and its widget; mia is a registered user;
guests arrive from the owner's site without an account.
"""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from chat import services as chat_services
from chat.models import Message, Room
from projects import services
from projects.models import Guest, ProjectConversation


def client_for(user=None, *, token=None, ip="203.0.113.7") -> APIClient:
    client = APIClient(REMOTE_ADDR=ip)
    if user is not None:
        client.force_authenticate(user)
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def bakery(olivia):
    project = services.project_create(owner=olivia, title="Bakery", slug="bakery")
    services.widget_update(user=olivia, project=project, enabled=True, origins=["https://shop.example"])
    return project


def new_guest(ip="203.0.113.7", **data) -> dict:
    answer = client_for(ip=ip).post("/api/widget/bakery/guests/", data, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


@pytest.mark.django_db
def test_owner_sets_the_widget_and_nobody_else_sees_or_changes_it(olivia, mia):
    services.project_create(owner=olivia, title="Bakery", slug="bakery")
    owner = client_for(olivia)
    assert owner.get("/api/projects/bakery/widget/").json() == {"enabled": False, "origins": []}
    changed = owner.put(
        "/api/projects/bakery/widget/",
        {"enabled": True, "origins": ["https://Shop.example/", "http://127.0.0.1:8001", "https://shop.example"]},
        format="json",
    )
    assert changed.status_code == 200
    assert changed.json() == {"enabled": True, "origins": ["https://shop.example", "http://127.0.0.1:8001"]}
    for bad in (["shop.example"], ["https://shop.example/path"], ["javascript:alert(1)"], "https://x.example", [1]):
        refused = owner.put("/api/projects/bakery/widget/", {"origins": bad}, format="json")
        assert refused.status_code == 400 and refused.json()["code"] == "invalid"
    assert client_for(mia).get("/api/projects/bakery/widget/").status_code == 403
    assert client_for(mia).put("/api/projects/bakery/widget/", {"enabled": False}, format="json").status_code == 403
    assert client_for().get("/api/projects/bakery/widget/").status_code == 401
    assert owner.get("/api/projects/bakery/widget/").json()["origins"] == ["https://shop.example", "http://127.0.0.1:8001"]


@pytest.mark.django_db
def test_a_guest_starts_a_conversation_the_owner_sees_in_the_inbox(bakery, olivia):
    created = new_guest(display_name="Ann")
    assert set(created) == {"token", "room", "user"}
    assert created["user"]["guest"] is True and created["user"]["display_name"] == "Ann"
    assert created["user"]["username"].startswith("guest-") and created["user"]["avatar"] is None
    inbox = client_for(olivia).get("/api/projects/bakery/chats/").json()
    assert [c["room"]["slug"] for c in inbox] == [created["room"]]
    assert inbox[0]["visitor"]["guest"] is True
    # The guest talks over REST with its token, in its own conversation.
    guest = client_for(token=created["token"])
    sent = guest.post(f"/api/rooms/{created['room']}/messages/", {"body": "Do you deliver?"}, format="json")
    assert sent.status_code == 201
    listed = guest.get(f"/api/rooms/{created['room']}/messages/").json()
    assert [m["body"] for m in listed if m["kind"] == "text"] == ["Do you deliver?"]


@pytest.mark.django_db
def test_no_guests_while_the_widget_is_off(olivia):
    project = services.project_create(owner=olivia, title="Bakery", slug="bakery")
    assert client_for().post("/api/widget/bakery/guests/", {}, format="json").status_code == 404
    services.widget_update(user=olivia, project=project, enabled=False, origins=["https://shop.example"])
    assert client_for().post("/api/widget/bakery/guests/", {}, format="json").status_code == 404
    assert client_for().post("/api/widget/nothing/guests/", {}, format="json").status_code == 404
    assert not Guest.objects.exists()


@pytest.mark.django_db
def test_a_guest_token_opens_nothing_but_its_own_conversation(bakery, olivia, mia):
    lobby = chat_services.room_create(creator=olivia, slug="lobby", name="Lobby")
    dm, _ = chat_services.dm_get_or_create(user=olivia, other_username="mia")
    mine, other = new_guest(), new_guest()
    guest = client_for(token=mine["token"])
    for slug in ("lobby", dm.slug, other["room"], "nothing"):
        for path in (f"/api/rooms/{slug}/", f"/api/rooms/{slug}/messages/"):
            answer = guest.get(path)
            assert answer.status_code == 404, (path, answer.status_code)
        assert guest.post(f"/api/rooms/{slug}/messages/", {"body": "hi"}, format="json").status_code in (403, 404)
    for method, path in (
        ("get", "/api/rooms/"), ("post", "/api/rooms/"), ("get", "/api/me/"), ("get", "/api/unread/"),
        ("post", "/api/dm/olivia/"), ("post", f"/api/rooms/{lobby.slug}/join/"), ("get", "/api/projects/bakery/chats/"),
        ("post", "/api/projects/bakery/chat/"), ("get", "/api/projects/bakery/widget/"), ("get", "/api/users/?q=mia"),
        ("get", "/api/search/?q=hello"), ("post", f"/api/rooms/{mine['room']}/close/"),
    ):
        answer = getattr(guest, method)(path, {}, format="json") if method == "post" else guest.get(path)
        assert answer.status_code in (403, 404), (method, path, answer.status_code)
    assert not Message.objects.filter(sender__username__startswith="guest-").exists()
    assert guest.get(f"/api/rooms/{mine['room']}/").status_code == 200


@pytest.mark.django_db
def test_a_flood_of_guests_from_one_address_is_refused_and_stores_nothing(bakery, settings):
    settings.PARLEY_WIDGET_GUESTS_PER_HOUR = 3
    for _ in range(3):
        new_guest(ip="198.51.100.9")
    users, rooms = get_user_model().objects.count(), Room.objects.count()
    for _ in range(5):
        refused = client_for(ip="198.51.100.9").post("/api/widget/bakery/guests/", {}, format="json")
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
        assert int(refused["Retry-After"]) > 0
    assert (get_user_model().objects.count(), Room.objects.count(), Guest.objects.count()) == (users, rooms, 3)
    new_guest(ip="198.51.100.10")  # another address still gets in


@pytest.mark.django_db
def test_the_owner_closes_a_conversation_and_the_guest_can_no_longer_send(bakery, olivia, mia):
    created = new_guest()
    guest = client_for(token=created["token"])
    path = f"/api/rooms/{created['room']}/close/"
    assert client_for(mia).post(path).status_code == 404
    assert guest.post(path).status_code == 403
    closed = client_for(olivia).post(path)
    assert closed.status_code == 200 and closed.json()["closed"] is True
    assert client_for(olivia).post(path).status_code == 200  # already closed: the same answer
    count = Message.objects.count()
    refused = guest.post(f"/api/rooms/{created['room']}/messages/", {"body": "still there?"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert Message.objects.count() == count
    system = Message.objects.filter(room__slug=created["room"], kind=Message.Kind.SYSTEM).values_list("body", flat=True)
    assert list(system) == ["olivia closed the conversation"]
    listed = client_for(olivia).get(f"/api/rooms/{created['room']}/messages/").json()
    # The web UI words it in the reader's language (chat/static/chat/js/messages.js).
    assert [m["system"] for m in listed if m["kind"] == "system"] == [{"event": "closed", "by": "olivia"}]
    # Only project conversations close.
    dm, _ = chat_services.dm_get_or_create(user=olivia, other_username="mia")
    assert client_for(olivia).post(f"/api/rooms/{dm.slug}/close/").status_code == 403


@pytest.mark.django_db
def test_the_owner_blocks_a_guest_whose_token_stops_working(bakery, olivia, mia):
    created = new_guest()
    username = created["user"]["username"]
    path = f"/api/widget/bakery/guests/{username}/block/"
    assert client_for(mia).post(path).status_code == 403
    assert client_for(olivia).post("/api/widget/bakery/guests/mia/block/").status_code == 404
    assert client_for(olivia).post(path).status_code == 200
    answer = client_for(token=created["token"]).get(f"/api/rooms/{created['room']}/messages/")
    assert answer.status_code == 401
    assert ProjectConversation.objects.filter(room__slug=created["room"]).exists()  # the owner keeps the history


@pytest.mark.django_db
def test_blocking_a_guest_through_api_blocks_takes_its_token_and_unblocking_gives_it_back(bakery, olivia, mia):
    created = new_guest()
    username = created["user"]["username"]
    messages = f"/api/rooms/{created['room']}/messages/"
    # Someone else's block only hides the guest from them: the guest keeps talking to olivia.
    assert client_for(mia).post("/api/blocks/", {"username": username}, format="json").status_code == 201
    assert client_for(token=created["token"]).get(messages).status_code == 200

    assert client_for(olivia).post("/api/blocks/", {"username": username}, format="json").status_code == 201
    assert client_for(token=created["token"]).get(messages).status_code == 401
    assert username in [u["username"] for u in client_for(olivia).get("/api/blocks/").json()]
    assert Guest.objects.get(user__username=username).blocked_at is not None

    assert client_for(olivia).delete("/api/blocks/", {"username": username}, format="json").status_code == 204
    assert client_for(token=created["token"]).get(messages).status_code == 200
    assert Guest.objects.get(user__username=username).blocked_at is None


@pytest.mark.django_db
def test_the_widget_block_button_is_a_block_like_any_other(bakery, olivia):
    created = new_guest()
    username = created["user"]["username"]
    assert client_for(olivia).post(f"/api/widget/bakery/guests/{username}/block/").status_code == 200
    assert username in [u["username"] for u in client_for(olivia).get("/api/blocks/").json()]


@pytest.mark.django_db
def test_nobody_registers_a_guest_name(client):
    answer = APIClient().post("/api/auth/register/", {"username": "guest-abc", "password": "correct horse battery"})
    assert answer.status_code == 400


# The iframe page and /widget.js -------------------------------------------------------------


@pytest.mark.django_db
def test_the_iframe_page_may_be_framed_by_exactly_the_listed_sites(bakery, olivia, client):
    services.widget_update(user=olivia, project=bakery, origins=["https://shop.example", "http://127.0.0.1:8001"])
    page = client.get("/widget/bakery/")
    assert page.status_code == 200
    policy = dict(
        part.strip().split(" ", 1) for part in page["Content-Security-Policy"].split(";") if part.strip()
    )
    assert policy["frame-ancestors"] == "https://shop.example http://127.0.0.1:8001"
    assert "X-Frame-Options" not in page
    assert b'data-project="bakery"' in page.content
    # Off, or no site listed, or no such project: a 404 nobody may frame.
    services.widget_update(user=olivia, project=bakery, origins=[])
    assert client.get("/widget/bakery/").status_code == 404
    services.widget_update(user=olivia, project=bakery, enabled=False, origins=["https://shop.example"])
    off = client.get("/widget/bakery/")
    assert off.status_code == 404 and "frame-ancestors 'none'" in off["Content-Security-Policy"]
    assert client.get("/widget/nothing/").status_code == 404


@pytest.mark.django_db
def test_the_iframe_page_speaks_the_host_pages_language(bakery, client):
    assert b'<html lang="zh-hant">' in client.get("/widget/bakery/?lang=zh-TW").content
    assert b'<html lang="zh-hans">' in client.get("/widget/bakery/?lang=zh-CN").content
    assert b'<html lang="en">' in client.get("/widget/bakery/?lang=en-GB").content
    # No usable lang from the host page: the browser's.
    page = client.get("/widget/bakery/?lang=fr", HTTP_ACCEPT_LANGUAGE="zh-Hans")
    assert b'<html lang="zh-hans">' in page.content and "开始对话".encode() in page.content


@pytest.mark.django_db
def test_widget_js_is_a_plain_script_and_the_owner_page_shows_the_snippet(bakery, olivia, mia, client):
    script = client.get("/widget.js")
    assert script.status_code == 200 and script["Content-Type"].startswith("text/javascript")
    assert b"attachShadow" in script.content and b"/widget/" in script.content
    client.force_login(olivia)
    page = client.get("/projects/bakery/").content.decode()
    assert 'id="widget-settings"' in page
    assert '&lt;script src="http://testserver/widget.js" data-project="bakery" async&gt;&lt;/script&gt;' in page
    client.force_login(mia)
    assert 'id="widget-settings"' not in client.get("/projects/bakery/").content.decode()


# Email for a guest who is away ----------------------------------------------------------


@pytest.fixture
def email_on(settings, monkeypatch):
    from projects import notify

    settings.PARLEY_EMAIL_ENABLED = True
    monkeypatch.setattr(notify, "in_background", lambda work: work())


@pytest.mark.django_db
def test_an_away_guest_who_left_an_email_hears_of_the_answer_once(bakery, olivia, email_on, mailoutbox,
                                                                    django_capture_on_commit_callbacks):
    created = new_guest(display_name="Ann", email="ann@example.com")
    room = Room.objects.get(slug=created["room"])
    guest_user = get_user_model().objects.get(username=created["user"]["username"])
    with django_capture_on_commit_callbacks(execute=True):
        chat_services.message_send(sender=guest_user, room=room, body="Do you deliver?")
    assert mailoutbox == []  # the guest's own message
    with django_capture_on_commit_callbacks(execute=True):
        chat_services.message_send(sender=olivia, room=room, body="Yes, daily.")
        chat_services.message_send(sender=olivia, room=room, body="Also on Sundays.")
    assert len(mailoutbox) == 1  # one per conversation per PARLEY_WIDGET_EMAIL_MINUTES
    assert mailoutbox[0].to == ["ann@example.com"] and "Yes, daily." in mailoutbox[0].body
    assert "Bakery" in mailoutbox[0].subject


@pytest.mark.django_db
def test_a_guest_who_is_online_gets_no_email(bakery, olivia, email_on, mailoutbox, django_capture_on_commit_callbacks):
    from asgiref.sync import async_to_sync

    from chat import presence

    created = new_guest(email="ann@example.com")
    room = Room.objects.get(slug=created["room"])
    async_to_sync(presence.join)(room.id, created["user"]["username"], "socket-1")
    with django_capture_on_commit_callbacks(execute=True):
        chat_services.message_send(sender=olivia, room=room, body="Yes, daily.")
    assert mailoutbox == []


@pytest.mark.django_db
def test_without_email_configured_no_address_is_kept(bakery, settings):
    settings.PARLEY_EMAIL_ENABLED = False
    created = new_guest(email="ann@example.com")
    assert Guest.objects.get(user__username=created["user"]["username"]).email == ""


@pytest.mark.django_db
def test_the_inbox_marks_guests_and_offers_close_and_block(bakery, olivia, mia, client):
    created = new_guest(display_name="Ann")
    services.project_chat_open(visitor=mia, project=bakery)
    client.force_login(olivia)
    page = client.get("/projects/bakery/chats/").content.decode()
    assert page.count("data-guest>") == 1 and page.count('data-guest-action="close"') == 1
    assert f'data-room="{created["room"]}"' in page and 'data-guest-action="block"' in page
    listed = {c["visitor"]["username"]: c for c in client_for(olivia).get("/api/projects/bakery/chats/").json()}
    assert listed[created["user"]["username"]]["closed"] is False and listed[created["user"]["username"]]["blocked"] is False
    assert "blocked" not in listed["mia"] and listed["mia"]["closed"] is False
    client_for(olivia).post(f"/api/rooms/{created['room']}/close/")
    assert 'data-guest-action="close" disabled' in client.get("/projects/bakery/chats/").content.decode()
    client_for(olivia).post(f"/api/widget/bakery/guests/{created['user']['username']}/block/")
    # The live inbox (inbox.js) redraws its rows from this: Closed and Blocked stay shown.
    listed = {c["visitor"]["username"]: c for c in client_for(olivia).get("/api/projects/bakery/chats/").json()}
    assert listed[created["user"]["username"]]["closed"] is True and listed[created["user"]["username"]]["blocked"] is True


@pytest.mark.django_db
def test_guests_at_one_address_share_one_message_allowance(bakery, settings):
    settings.PARLEY_WIDGET_MESSAGES_PER_HOUR = 3
    first, second = new_guest(ip="198.51.100.20"), new_guest(ip="198.51.100.20")
    sent = []
    for n, created in enumerate((first, second, first, second)):
        guest = client_for(token=created["token"], ip="198.51.100.20")
        sent.append(guest.post(f"/api/rooms/{created['room']}/messages/", {"body": f"hi {n}"}, format="json").status_code)
    assert sent == [201, 201, 201, 429]
    assert Message.objects.filter(sender__username__startswith="guest-").count() == 3
    other = client_for(token=second["token"], ip="198.51.100.21")
    assert other.post(f"/api/rooms/{second['room']}/messages/", {"body": "hi"}, format="json").status_code == 201
