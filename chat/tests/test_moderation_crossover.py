"""Moderation (SPEC §6.4) where it meets mentions and push (§6.2), search (§6.3) and the
website widget's guests (§6.6): a mute refuses before anything is stored, a ban or a block
keeps a user from being told, and a guest's token opens no moderation door."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from chat import services
from chat.models import Mention, Message, PushDelivery, Report
from chat.tests.test_push import Browser, subscribe
from projects import services as project_services


@pytest.fixture
def push_ok(settings):
    settings.PARLEY_PUSH_ALLOW_INSECURE = True


@pytest.mark.django_db
def test_a_muted_sender_is_refused_before_any_mention_is_stored(api, lobby, olivia, mia):
    services.room_mute(by=olivia, room=lobby, username="mia", minutes=10)
    before = Message.objects.count()
    refused = api(mia).post("/api/rooms/lobby/messages/", {"body": "@olivia look"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "muted"
    assert refused.json()["until"]
    assert Message.objects.count() == before
    assert not Mention.objects.exists()
    assert api(olivia).get("/api/mentions/").json() == []


@pytest.mark.django_db
def test_a_user_banned_from_a_public_room_is_not_mentioned_nor_pushed(api, lobby, olivia, mia, make_user, push_ok):
    tom = make_user("tom")
    services.room_join(user=tom, room=lobby)
    subscribe(api, mia, "http://127.0.0.1:9/mia", Browser())
    services.room_ban(by=olivia, room=lobby, username="mia", minutes=60)
    sent = api(olivia).post("/api/rooms/lobby/messages/", {"body": "@mia @tom standup"}, format="json")
    assert sent.status_code == 201
    assert sent.json()["mentions"] == ["tom"]
    assert list(Mention.objects.values_list("user__username", flat=True)) == ["tom"]
    assert not PushDelivery.objects.exists()
    assert api(mia).get("/api/mentions/").json() == []


@pytest.mark.django_db
def test_whoever_blocked_the_sender_is_not_mentioned_nor_pushed(api, lobby, olivia, mia, push_ok):
    subscribe(api, mia, "http://127.0.0.1:9/mia", Browser())
    api(mia).put("/api/rooms/lobby/settings/", {"notify": "all"}, format="json")
    assert api(mia).post("/api/blocks/", {"username": "olivia"}, format="json").status_code == 201
    sent = api(olivia).post("/api/rooms/lobby/messages/", {"body": "@mia hello"}, format="json")
    assert sent.status_code == 201 and sent.json()["mentions"] == []
    assert not PushDelivery.objects.exists()
    assert api(mia).get("/api/mentions/").json() == []
    # Unblocked, she hears of the next one again.
    assert api(mia).delete("/api/blocks/", {"username": "olivia"}, format="json").status_code == 204
    sent = api(olivia).post("/api/rooms/lobby/messages/", {"body": "@mia hello again"}, format="json")
    assert sent.json()["mentions"] == ["mia"]
    assert PushDelivery.objects.count() == 1


@pytest.mark.django_db
def test_search_leaves_out_a_room_while_its_searcher_is_banned(api, lobby, olivia, mia):
    services.message_send(sender=olivia, room=lobby, body="quarterly numbers")

    def found():
        response = api(mia).get("/api/search/", {"q": "quarterly"})
        assert response.status_code == 200
        return [m["room"] for m in response.json()["results"]]

    assert found() == ["lobby"]
    services.room_ban(by=olivia, room=lobby, username="mia", minutes=None)
    assert found() == []
    services.room_unban(by=olivia, room=lobby, username="mia")
    assert found() == ["lobby"]


def new_guest(owner) -> tuple[dict, APIClient]:
    project = project_services.project_create(owner=owner, title="Bakery", slug="bakery")
    project_services.widget_update(user=owner, project=project, enabled=True, origins=["https://shop.example"])
    created = APIClient(REMOTE_ADDR="203.0.113.7").post("/api/widget/bakery/guests/", {}, format="json").json()
    guest = APIClient(REMOTE_ADDR="203.0.113.7")
    guest.credentials(HTTP_AUTHORIZATION=f"Token {created['token']}")
    return created, guest


@pytest.mark.django_db
def test_a_widget_guest_opens_no_moderation_door(olivia, lobby):
    created, guest = new_guest(olivia)
    sent = guest.post(f"/api/rooms/{created['room']}/messages/", {"body": "is it open?"}, format="json")
    assert sent.status_code == 201
    mine = sent.json()["id"]
    theirs, _ = services.message_send(sender=olivia, room=lobby, body="lobby talk")
    for method, path, data in (
        ("post", f"/api/messages/{mine}/report/", {"reason": "x"}),
        ("post", f"/api/messages/{theirs.id}/report/", {"reason": "x"}),
        ("post", f"/api/messages/{mine}/pin/", {}),
        ("get", f"/api/rooms/{created['room']}/pins/", None),
        ("get", f"/api/rooms/{created['room']}/audit/", None),
        ("post", f"/api/rooms/{created['room']}/mutes/", {"username": "olivia", "minutes": 5}),
        ("post", f"/api/rooms/{created['room']}/bans/", {"username": "olivia"}),
        ("post", "/api/rooms/lobby/bans/", {"username": "olivia"}),
        ("get", "/api/blocks/", None),
        ("post", "/api/blocks/", {"username": "olivia"}),
        ("get", "/api/reports/", None),
        ("post", "/api/users/olivia/suspend/", {}),
    ):
        answer = getattr(guest, method)(path, data, format="json") if method == "post" else guest.get(path)
        assert answer.status_code in (403, 404), (method, path, answer.status_code)
    assert not Report.objects.exists()
    assert Message.objects.get(pk=mine).pinned_at is None


@pytest.mark.django_db
def test_nobody_moderates_a_project_conversation(api, olivia, mia):
    project = project_services.project_create(owner=olivia, title="Bakery", slug="bakery")
    conversation, _ = project_services.project_chat_open(visitor=mia, project=project)
    slug = conversation.room.slug
    for who in (olivia, mia):
        muted = api(who).post(f"/api/rooms/{slug}/mutes/", {"username": "mia" if who == olivia else "olivia", "minutes": 5},
                              format="json")
        assert muted.status_code == 403 and muted.json()["code"] == "forbidden"
        assert api(who).get(f"/api/rooms/{slug}/audit/").status_code == 403


@pytest.mark.django_db
def test_a_guests_token_fetches_the_files_of_its_own_conversation_only(olivia, mia, secret):
    created, guest = new_guest(olivia)
    token = {"HTTP_AUTHORIZATION": f"Token {created['token']}"}
    sent = guest.post(
        f"/api/rooms/{created['room']}/messages/", {"file": SimpleUploadedFile("order.txt", b"two loaves")}
    )
    assert sent.status_code == 201, sent.content
    mine = Client().get(sent.json()["file"]["url"], **token)
    assert mine.status_code == 200 and b"".join(mine.streaming_content) == b"two loaves"
    other, _ = services.message_send_file(
        sender=mia, room=secret, upload=SimpleUploadedFile("plans.txt", b"secret plans")
    )
    assert Client().get(other.file.url, **token).status_code == 404
