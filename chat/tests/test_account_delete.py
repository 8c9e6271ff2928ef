"""Deleting one's account (SPEC §6.5): `DELETE /api/me/` with the password. Messages stay
as from "deleted user"; reactions go, each with a rev; the avatar and leftover uploads go;
sessions, tokens and open sockets end."""

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from rest_framework.authtoken.models import Token

from accounts import services as account_services
from chat import services
from chat.models import Message, Reaction
from chat.tests.test_images import post_image
from chat.tests.test_revocation import mia_everywhere, sockets  # noqa: F401 (fixture)
from core.tests import pictures
from testkit.testdb import db

User = get_user_model()
PASSWORD = "correct horse battery"


def media_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.django_db
def test_wrong_password_changes_nothing(api, mia, lobby):
    for body in ({}, {"password": ""}, {"password": "not it"}, {"password": 5}):
        response = api(mia).delete("/api/me/", body, format="json")
        assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert User.objects.filter(pk=mia.pk).exists()
    assert api().delete("/api/me/", {"password": PASSWORD}, format="json").status_code == 401


@pytest.mark.django_db
def test_messages_stay_from_deleted_user_and_the_rest_goes(api, mia, olivia, lobby, django_capture_on_commit_callbacks):
    mia_api = api(mia)
    assert mia_api.patch("/api/me/", {"avatar": pictures.upload(pictures.small_png(), "me.png")},
                         format="multipart").status_code == 200
    kept = post_image(mia_api, "lobby", pictures.small_png(), "kept.png").json()
    gone = post_image(mia_api, "lobby", pictures.small_png(), "gone.png").json()
    with django_capture_on_commit_callbacks(execute=True):
        services.message_delete(user=mia, message_id=gone["id"])
    said, _ = services.message_send(sender=mia, room=lobby, body="I was here")
    reply, _ = services.message_send(sender=olivia, room=lobby, body="yes you were", reply_to=said.id)
    services.reaction_add(user=mia, message_id=reply.id, emoji="👍")
    services.reaction_add(user=olivia, message_id=reply.id, emoji="🎉")
    token = Token.objects.create(user=mia).key
    browser = Client()
    browser.force_login(mia)
    files_before = media_files()
    assert len(files_before) == 2  # the avatar and the kept image (the deleted one's went with it)
    rev_before = lobby.__class__.objects.get(pk=lobby.pk).rev

    with django_capture_on_commit_callbacks(execute=True):
        assert mia_api.delete("/api/me/", {"password": PASSWORD}, format="json").status_code == 204

    assert not User.objects.filter(username="mia").exists()
    history = api(olivia).get("/api/rooms/lobby/messages/").json()
    mine = [m for m in history if m["id"] in (said.id, kept["id"])]
    assert [m["sender"] for m in mine] == [{"username": None, "display_name": "deleted user", "avatar": None,
                                            "deleted": True}] * 2
    assert next(m for m in history if m["id"] == said.id)["body"] == "I was here"
    answer = next(m for m in history if m["id"] == reply.id)
    assert answer["reply_to"]["sender"]["display_name"] == "deleted user"
    assert answer["reactions"] == [{"emoji": "🎉", "count": 1, "users": ["olivia"]}]
    assert list(Reaction.objects.filter(user_id=mia.pk)) == []
    assert lobby.__class__.objects.get(pk=lobby.pk).rev == rev_before + 1  # the reaction's removal took a rev
    assert Message.objects.get(pk=reply.id).rev == rev_before + 1
    # The avatar went; the image of a message that stays, stays.
    assert media_files() == [p for p in files_before if "avatars" not in str(p)]
    assert not Token.objects.filter(key=token).exists()
    assert not Session.objects.exists()
    assert api().get("/api/me/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 401
    assert browser.get("/api/me/").status_code in (401, 403)
    assert api(olivia).get("/api/rooms/lobby/").json()["members"] == [
        {"username": "olivia", "display_name": "olivia", "avatar": None, "role": "owner"}
    ]


@pytest.mark.django_db(transaction=True)
async def test_open_sockets_close_4401(sockets, lobby, mia):  # noqa: F811
    _, mias = await mia_everywhere(sockets, mia)
    await db(account_services.account_delete)(user=mia, password=PASSWORD)
    for sock in mias:
        assert await sock.closed_with(timeout=2) == 4401


@pytest.mark.django_db
def test_the_profile_page_form_deletes_with_the_password(mia):
    browser = Client()
    browser.force_login(mia)
    page = browser.get("/accounts/profile/").content.decode()
    assert 'action="/accounts/delete/"' in page and 'href="/api/me/export/"' in page
    assert browser.post("/accounts/delete/", {"password": "wrong"})["Location"] == "/accounts/profile/"
    assert User.objects.filter(pk=mia.pk).exists()
    assert browser.post("/accounts/delete/", {"password": PASSWORD})["Location"] == "/accounts/login/"
    assert not User.objects.filter(pk=mia.pk).exists()
