"""Staff presets and the global announcement (SPEC §2, §3, §4, §5 admin).

Personas: olivia owns `lobby` (public) and `secret` (private), mia is a member of both,
stan is staff (in neither room).
"""

import json
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from chat import services
from chat.models import Announcement, Message, Preset
from chat.tests.test_consumers import no_leftover_socket_counts, sockets  # noqa: F401 (fixtures)
from chat.tests.test_images import browser, media_files, stored_path
from core.errors import NotFound
from core.images import process_upload
from core.tests import pictures

db = database_sync_to_async


@pytest.fixture
def presets(db):
    picture = process_upload(pictures.upload(pictures.small_png(), "countdown.png"))
    storage = Preset._meta.get_field("image").storage
    name = storage.save(picture.as_file("presets").name, picture.as_file("presets"))
    return {
        "open": Preset.objects.create(title="Ordering open", body="We are taking orders now!", position=1),
        "countdown": Preset.objects.create(title="Countdown", body="", image=name, position=2),
    }


@pytest.fixture
def published():
    sent = []

    def record(group, event):
        sent.append((group, json.loads(event["frame"])))

    with mock.patch("chat.events.publish", side_effect=record):
        yield sent


# Presets -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_list_presets_others_may_not(api, stan, mia, presets):
    response = api(stan).get("/api/presets/")
    assert response.status_code == 200
    listed = response.json()
    assert [p["title"] for p in listed] == ["Ordering open", "Countdown"]
    assert listed[0]["image"] is None and listed[1]["image"].startswith("/media/presets/")
    assert api(mia).get("/api/presets/").json()["code"] == "forbidden"
    assert api().get("/api/presets/").status_code == 401


@pytest.mark.django_db
def test_staff_post_a_text_preset_as_a_preset_message(api, stan, mia, lobby, presets, published,
                                                       django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(stan).post(f"/api/rooms/lobby/presets/{presets['open'].id}/", {"client_id": "p1"}, format="json")

    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["kind"], data["body"], data["sender"]["username"]) == ("preset", "We are taking orders now!", "stan")
    assert [(g, f["type"], f["kind"]) for g, f in published] == [(f"chat.room.{lobby.id}", "message", "preset")]
    assert api(mia).get("/api/rooms/lobby/messages/").json()[-1]["kind"] == "preset"
    # A retry posts nothing new.
    again = api(stan).post(f"/api/rooms/lobby/presets/{presets['open'].id}/", {"client_id": "p1"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == data["id"]


@pytest.mark.django_db
def test_an_image_preset_gets_its_own_copy(api, stan, mia, lobby, presets, django_capture_on_commit_callbacks):
    preset_file = stored_path(presets["countdown"].image.url)

    data = api(stan).post(f"/api/rooms/lobby/presets/{presets['countdown'].id}/").json()

    assert data["kind"] == "preset" and data["image"].startswith("/media/messages/")
    copy = stored_path(data["image"])
    assert copy.read_bytes() == preset_file.read_bytes()
    assert browser(mia).get(data["image"]).status_code == 200
    assert browser(mia).get(presets["countdown"].image.url).status_code == 404  # preset files: staff only
    assert browser(stan).get(presets["countdown"].image.url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        services.message_delete(user=stan, message_id=data["id"])
    assert not copy.exists() and preset_file.exists()


@pytest.mark.django_db
def test_preset_refusals(api, stan, mia, secret, presets, db_state):
    before = db_state()
    assert api(mia).post(f"/api/rooms/secret/presets/{presets['open'].id}/").json()["code"] == "forbidden"
    assert api().post(f"/api/rooms/secret/presets/{presets['open'].id}/").status_code == 401
    assert api(stan).post("/api/rooms/lobby-that-is-not/presets/1/").status_code == 404
    assert api(stan).post("/api/rooms/secret/presets/99999/").status_code == 404  # stan cannot read secret
    assert db_state() == before and len(media_files()) == 1


@pytest.mark.django_db
def test_preset_post_service_checks_the_preset(stan, lobby):
    with pytest.raises(NotFound):
        services.preset_post(by=stan, room=lobby, preset_id=12345)


@pytest.mark.django_db(transaction=True)
async def test_a_posted_preset_reaches_the_room_live(sockets, lobby, olivia, stan, api, presets):  # noqa: F811
    watcher, _ = await sockets.room("lobby", user=olivia)

    await db(api(stan).post)(f"/api/rooms/lobby/presets/{presets['open'].id}/")

    frame = await watcher.receive_type("message")
    assert frame["kind"] == "preset" and frame["body"] == "We are taking orders now!"


@pytest.mark.django_db
def test_presets_are_managed_in_the_admin(make_user):
    admin = make_user("root", staff=True)
    admin.is_superuser = True
    admin.save()
    client = Client()
    client.force_login(admin)

    response = client.post(
        "/admin/chat/preset/add/",
        {"title": "Closed", "body": "", "position": 3,
         "image": pictures.upload(pictures.photo_jpeg(800, 600), "closed.jpg")},
    )

    assert response.status_code == 302, response.content[:2000]
    preset = Preset.objects.get(title="Closed")
    assert preset.image.name.startswith("presets/") and preset.image.size <= 204_800
    refused = client.post("/admin/chat/preset/add/", {"title": "Bad", "position": 1,
                                                     "image": pictures.upload(pictures.TEXT, "x.png")})
    assert refused.status_code == 200 and not Preset.objects.filter(title="Bad").exists()


# The announcement ------------------------------------------------------------------------


@pytest.mark.django_db
def test_anyone_reads_the_announcement(api):
    assert api().get("/api/announcement/").json() == {"type": "announcement", "text": "", "image": None}


@pytest.mark.django_db
def test_staff_set_it_and_everyone_hears(api, stan, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(stan).put("/api/announcement/", {"text": "  Closed on Monday  "}, format="json")

    assert response.status_code == 200
    expected = {"type": "announcement", "text": "Closed on Monday", "image": None}
    assert response.json() == expected and api().get("/api/announcement/").json() == expected
    assert published == [("chat.everyone", expected)]


@pytest.mark.django_db
def test_a_background_image_is_cleaned_public_and_replaceable(api, stan, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = api(stan).put(
            "/api/announcement/",
            {"text": "Sale", "image": pictures.upload(pictures.photo_jpeg(1200, 900), "bg.jpg")},
            format="multipart",
        ).json()
    assert first["text"] == "Sale" and first["image"].startswith("/media/announcement/")
    assert Client().get(first["image"]).status_code == 200  # public, no login
    assert stored_path(first["image"]).stat().st_size <= 204_800

    with django_capture_on_commit_callbacks(execute=True):
        second = api(stan).put(
            "/api/announcement/", {"image": pictures.upload(pictures.small_png(), "bg.png")}, format="multipart"
        ).json()
    assert second["text"] == "Sale" and second["image"] != first["image"]
    assert not stored_path(first["image"]).exists()  # the old one is gone

    with django_capture_on_commit_callbacks(execute=True):
        cleared = api(stan).put("/api/announcement/", {"image": None}, format="json").json()
    assert cleared == {"type": "announcement", "text": "Sale", "image": None} and media_files() == []


@pytest.mark.django_db
def test_announcement_refusals(api, mia, stan, published):
    assert api(mia).put("/api/announcement/", {"text": "hi"}, format="json").json()["code"] == "forbidden"
    assert api().put("/api/announcement/", {"text": "hi"}, format="json").status_code == 401
    bad = api(stan).put("/api/announcement/", {"text": "x", "image": pictures.upload(pictures.SVG, "a.svg")},
                        format="multipart")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_image"
    assert not Announcement.objects.exists() and media_files() == [] and published == []


@pytest.mark.django_db(transaction=True)
async def test_every_socket_gets_the_announcement_live(sockets, lobby, olivia, mia, stan, api):  # noqa: F811
    room_socket, _ = await sockets.room("lobby", user=mia)
    visitor, _ = await sockets.room("lobby")
    stream, _ = await sockets.stream(user=olivia)

    response = await db(api(stan).put)("/api/announcement/", {"text": "Back at 3"}, format="json")

    assert response.status_code == 200
    expected = {"type": "announcement", "text": "Back at 3", "image": None}
    for sock in (room_socket, visitor, stream):
        assert await sock.receive_type("announcement") == expected


@pytest.mark.django_db
def test_the_announcement_admin_broadcasts(make_user, published, django_capture_on_commit_callbacks):
    admin = make_user("root", staff=True)
    admin.is_superuser = True
    admin.save()
    client = Client()
    client.force_login(admin)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/chat/announcement/add/", {"text": "From the admin"})

    assert response.status_code == 302
    assert Announcement.objects.get().text == "From the admin"
    assert published == [("chat.everyone", {"type": "announcement", "text": "From the admin", "image": None})]
    assert client.get("/admin/chat/announcement/add/").status_code == 403  # one announcement only
    assert Message.objects.count() == 0


@pytest.mark.django_db(transaction=True)
async def test_a_socket_that_connects_later_sees_the_current_announcement(sockets, lobby, mia, stan):  # noqa: F811
    nothing_yet, _ = await sockets.room("lobby", user=mia)
    assert await nothing_yet.nothing()
    await database_sync_to_async(services.announcement_set)(by=stan, text="Ordering closed")

    expected = {"type": "announcement", "text": "Ordering closed", "image": None}
    visitor, _ = await sockets.room("lobby")
    assert await visitor.receive() == expected
    stream, accepted = await sockets.open("/ws/", user=mia)
    assert accepted and (await stream.receive())["type"] == "hello"
    assert await stream.receive() == expected
