"""Exports (SPEC §6.5): a room's history as JSON lines or one HTML page, the same messages
the history API gives, in seq order, with edits, reactions and replies; a user's own data
as a zip. The 100k-message measurement is scripts/export_benchmark.py (not a test)."""

import io
import json
import re
import zipfile

import pytest

from chat import services
from chat.tests.test_images import post_image
from core.tests import pictures

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")]


def body_of(response) -> bytes:
    return b"".join(response)  # the async stream, read whole (a test has no event loop of its own)


@pytest.fixture
def talk(api, olivia, mia, lobby):
    """lobby: a text that is edited twice and reacted to, a reply to it, a recalled
    message, a deleted one, an image."""
    first, _ = services.message_send(sender=olivia, room=lobby, body="hello **team**")
    services.message_edit(user=olivia, message_id=first.id, body="hello **everyone**")
    services.message_edit(user=olivia, message_id=first.id, body="hello **all**")
    services.reaction_add(user=mia, message_id=first.id, emoji="👍")
    services.message_send(sender=mia, room=lobby, body="agreed <b>not bold</b>", reply_to=first.id)
    recalled, _ = services.message_send(sender=mia, room=lobby, body="oops")
    services.message_recall(user=mia, message_id=recalled.id)
    deleted, _ = services.message_send(sender=mia, room=lobby, body="secret stuff")
    services.message_delete(user=mia, message_id=deleted.id)
    assert post_image(api(mia), "lobby", pictures.small_png(), "dot.png").status_code == 201
    return first


def test_jsonl_is_the_history_in_seq_order_with_versions(api, mia, lobby, talk):
    response = api(mia).get("/api/rooms/lobby/export/?format=jsonl")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/x-ndjson")
    assert response["Content-Disposition"].startswith('attachment; filename="lobby-')
    lines = [json.loads(line) for line in body_of(response).decode().splitlines()]
    history = api(mia).get("/api/rooms/lobby/messages/?limit=200").json()
    # The record of the room, without the reader's own `blocked` marks.
    assert all("blocked" not in line for line in lines)
    assert [{k: v for k, v in line.items() if k != "versions"} for line in lines] == [
        {k: v for k, v in message.items() if k != "blocked"} for message in history
    ]
    assert [line["seq"] for line in lines] == sorted(line["seq"] for line in lines)
    assert "secret stuff" not in json.dumps(lines, ensure_ascii=False)
    edited = next(line for line in lines if line["id"] == talk.id)
    assert edited["body"] == "hello **all**" and edited["edited_at"]
    assert [v["body"] for v in edited["versions"]] == ["hello **team**", "hello **everyone**"]
    assert edited["reactions"] == [{"emoji": "👍", "count": 1, "users": ["mia"]}]
    reply = next(line for line in lines if line["body"].startswith("agreed"))
    assert reply["reply_to"]["id"] == talk.id and reply["reply_to"]["excerpt"] == "hello **all**"
    assert any(line["recalled"] and line["body"] == "" for line in lines)


def test_html_is_one_self_contained_page(api, mia, lobby, talk):
    response = api(mia).get("/api/rooms/lobby/export/?format=html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    page = body_of(response).decode()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "<link" not in page and " src=" not in page  # nothing loaded from anywhere
    seqs = [int(s) for s in re.findall(r'data-seq="(\d+)"', page)]
    history = api(mia).get("/api/rooms/lobby/messages/?limit=200").json()
    assert seqs == [m["seq"] for m in history]
    assert "hello <strong>all</strong>" in page and "hello **team**" in page  # current body, earlier versions
    assert "agreed &lt;b&gt;not bold&lt;/b&gt;" in page  # raw HTML stays text
    assert f'href="#m{talk.seq}"' in page  # the reply jumps to its original
    assert "👍 1" in page and "(Message recalled)" in page and "secret stuff" not in page
    assert re.search(r'href="http://testserver/media/messages/[^"]+\.png"', page)


def test_who_may_export(api, mia, oscar, olivia, secret, lobby, settings):
    services.message_send(sender=olivia, room=secret, body="members only")
    assert api(oscar).get("/api/rooms/secret/export/").status_code == 404
    assert api(mia).get("/api/rooms/secret/export/").status_code == 200
    assert api(oscar).get("/api/rooms/lobby/export/?format=html").status_code == 200  # public: anyone who may read
    settings.PARLEY_ANONYMOUS_READ = False
    assert api().get("/api/rooms/lobby/export/").status_code == 401
    bad = api(mia).get("/api/rooms/lobby/export/?format=pdf")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"


def test_me_export_is_a_zip_of_my_own_data(api, mia, lobby, secret, talk):
    response = api(mia).get("/api/me/export/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(body_of(response)))
    assert set(archive.namelist()) == {"profile.json", "memberships.json", "messages.jsonl"}
    assert json.loads(archive.read("profile.json"))["username"] == "mia"
    assert {m["room"] for m in json.loads(archive.read("memberships.json"))} == {"lobby", "secret"}
    messages = [json.loads(line) for line in archive.read("messages.jsonl").decode().splitlines()]
    assert all(m["sender"]["username"] == "mia" for m in messages)
    bodies = [m["body"] for m in messages]
    assert "agreed <b>not bold</b>" in bodies and "hello **all**" not in bodies and "secret stuff" not in bodies
    assert api().get("/api/me/export/").status_code == 401


def test_the_integrations_page(mia, olivia, oscar, lobby, secret):
    from django.test import Client

    def page(user, slug):
        client = Client()
        client.force_login(user)
        return client.get(f"/rooms/{slug}/integrations/")

    owner = page(olivia, "lobby").content.decode()
    assert 'id="webhook-create"' in owner and "/api/rooms/lobby/export/?format=html" in owner
    member = page(mia, "lobby").content.decode()
    assert 'id="webhook-create"' not in member and "/api/rooms/lobby/export/?format=jsonl" in member
    assert page(oscar, "secret").status_code == 404
    room_page = Client()
    room_page.force_login(olivia)
    assert 'href="/rooms/lobby/integrations/"' in room_page.get("/rooms/lobby/").content.decode()


def test_html_speaks_the_readers_language(api, mia, lobby, talk):
    page = body_of(api(mia).get("/api/rooms/lobby/export/?format=html", HTTP_ACCEPT_LANGUAGE="zh-hans")).decode()
    assert '<html lang="zh-hans">' in page and "已编辑" in page and "消息已撤回" in page and "这条消息的各个版本" in page
