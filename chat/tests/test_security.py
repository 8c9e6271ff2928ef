"""Attacks on the chat doors, one test per entry point that other tests leave uncovered.

Covered elsewhere, not repeated here: a plainly foreign Origin (test_consumers), session
writes without CSRF on the API (test_api), private history and images for outsiders
(test_api, test_images), DMs and project conversations over REST (test_dm,
test_projects), frames over 64 KB through the ASGI app (test_consumers).

Personas: olivia owns the rooms, mia is a member, oscar is an outsider. The tests that
need a real uvicorn process (slow readers, compression, frame and proxy limits) are in
chat/tests/test_security_server.py.
"""

import logging
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from chat import limits, services
from chat.models import Message, Room
from chat.tests.helpers import open_room, open_socket
from projects import services as project_services

db = database_sync_to_async


@pytest.fixture(autouse=True)
def no_leftover_socket_counts():
    limits.reset()
    yield
    limits.reset()


def _private_rooms(olivia, mia):
    """One room of each private kind, olivia and mia inside, one message in each."""
    secret = services.room_create(creator=olivia, slug="secret", name="Secret", kind=Room.Kind.PRIVATE)
    services.room_invite(by=olivia, room=secret, username="mia")
    dm, _ = services.dm_get_or_create(user=olivia, other_username="mia")
    project = project_services.project_create(owner=olivia, title="Bakery", slug="bakery")
    conversation, _ = project_services.project_chat_open(visitor=mia, project=project)
    rooms = {"private": secret, "dm": dm, "project": conversation.room}
    for room in rooms.values():
        services.message_send(sender=mia, room=room, body=f"only for us in {room.kind}")
    return rooms


# Cross-site WebSocket hijacking ---------------------------------------------------------

LOOKALIKE_ORIGINS = [
    b"http://127.0.0.1.evil.com",  # an allowed host as a prefix of a foreign one
    b"http://evil.com.127.0.0.1.nip.io",
    b"http://localhost.evil.com:8000",
    b"http://127.0.0.1@evil.com",  # userinfo: the host is evil.com
    b"http://evil.com/127.0.0.1",
    b"https://evil-localhost",
    b"null",
    b"file://",
    # Our host, but another origin: the page is served from http://127.0.0.1:8000.
    b"http://127.0.0.1:8081",  # another port on the same machine
    b"http://127.0.0.1",  # port 80
    b"https://127.0.0.1:8000",  # another scheme
    b"http://localhost:8000",  # another of ALLOWED_HOSTS than the one connected to
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("origin", LOOKALIKE_ORIGINS, ids=lambda o: o.decode())
@pytest.mark.parametrize("path", ["/ws/chat/lobby/", "/ws/"])
async def test_lookalike_origins_are_refused_on_both_sockets(path, origin, mia):
    await db(services.room_create)(creator=mia, slug="lobby", name="Lobby")
    sock, accepted = await open_socket(path, user=mia, origin=origin)
    assert not accepted
    sock, accepted = await open_socket(path, user=mia, origin=b"http://127.0.0.1:8000")
    assert accepted, "the real origin must still work"
    await sock.close()


# Tokens: header only, never the query string, never in logs -----------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_token_in_the_query_string_is_ignored(mia):
    await db(services.room_create)(creator=mia, slug="lobby", name="Lobby")
    key = (await db(Token.objects.create)(user=mia)).key
    sock, hello = await open_room(f"lobby/?token={key}", origin=None)
    assert hello["user"] is None, "a query-string token must leave the socket anonymous"
    await sock.send({"type": "message.send", "body": "as mia?", "client_id": "q1"})
    assert (await sock.receive_type("error"))["code"] == "auth_required"
    await sock.close()
    stream, accepted = await open_socket(f"/ws/?token={key}&access_token={key}", origin=None)
    assert accepted
    assert await stream.closed_with() == 4401
    assert await db(Message.objects.count)() == 0


@pytest.mark.django_db
def test_rest_ignores_tokens_in_the_query_string(mia):
    key = Token.objects.create(user=mia).key
    response = Client().get(f"/api/me/?token={key}&auth_token={key}")
    assert response.status_code == 401


@pytest.mark.django_db
def test_tokens_never_reach_the_logs(mia, caplog):
    key = Token.objects.create(user=mia).key
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    with caplog.at_level(logging.DEBUG):
        assert client.get("/api/me/").status_code == 200
        assert client.get("/api/rooms/nowhere/").status_code == 404  # django.request logs a warning
        assert client.post("/api/rooms/", {"slug": "bad slug!"}, content_type="application/json").status_code == 400
        Client().post("/api/auth/token/", {"username": "mia", "password": "correct horse battery"},
                      content_type="application/json")
        Client(HTTP_AUTHORIZATION=f"Token {key}x").get("/api/me/")  # a wrong token
    assert caplog.records, "nothing was logged: the check would prove nothing"
    assert key not in caplog.text


# Authorization on every read ------------------------------------------------------------


@pytest.mark.django_db
def test_outsiders_read_nothing_of_private_dm_and_project_rooms(olivia, mia, oscar):
    rooms = _private_rooms(olivia, mia)
    oscar_token = Token.objects.create(user=oscar).key
    doors = {
        "anonymous": Client(),
        "oscar (session)": Client(),
        "oscar (token)": Client(HTTP_AUTHORIZATION=f"Token {oscar_token}"),
    }
    doors["oscar (session)"].force_login(oscar)
    for kind, room in rooms.items():
        for who, client in doors.items():
            for path in (
                f"/api/rooms/{room.slug}/",
                f"/api/rooms/{room.slug}/messages/",
                f"/api/rooms/{room.slug}/messages/?since_rev=0",
                f"/api/rooms/{room.slug}/messages/?after_seq=0",
                f"/api/rooms/{room.slug}/messages/?before_seq=100",
                f"/api/rooms/{room.slug}/messages/?since_rev=0&limit=200",
            ):
                response = client.get(path)
                assert response.status_code in (401, 404), (kind, who, path, response.status_code)
                assert b"only for us" not in response.content
            page = client.get(f"/rooms/{room.slug}/")
            assert page.status_code in (302, 404), (kind, who, page.status_code)
            assert b"only for us" not in page.content
            listed = client.get("/api/rooms/")
            assert room.slug not in listed.content.decode(), (kind, who)
            unread = client.get("/api/unread/")
            assert room.slug not in unread.content.decode(), (kind, who)
    # And the members do see them: the checks above are not vacuous.
    member = Client()
    member.force_login(mia)
    for room in rooms.values():
        assert b"only for us" in member.get(f"/api/rooms/{room.slug}/messages/?since_rev=0").content


@pytest.mark.django_db(transaction=True)
async def test_outsider_sockets_get_nothing_from_private_dm_and_project_rooms(olivia, mia, oscar):
    rooms = await db(_private_rooms)(olivia, mia)
    for room in rooms.values():
        sock, accepted = await open_socket(f"/ws/chat/{room.slug}/", user=oscar)
        assert accepted
        assert await sock.closed_with() == 4404, room.kind
    lobby = await db(services.room_create)(creator=olivia, slug="lobby", name="Lobby")
    await db(services.room_join)(user=oscar, room=lobby)
    spy, _ = await open_room("lobby", user=oscar)
    stream, accepted = await open_socket("/ws/", user=oscar)
    assert accepted
    assert (await stream.receive())["type"] == "hello"
    watchers = []
    for room in rooms.values():
        sock, _ = await open_room(room.slug, user=mia)
        watchers.append(sock)
        # Frames naming another room on oscar's sockets: refused, nothing leaks.
        await spy.send({"type": "resume", "room": room.slug, "rev": 0})
        assert (await spy.receive_type("error"))["code"] == "invalid"
        await spy.send({"type": "message.send", "room": room.slug, "body": "hi", "client_id": f"x-{room.kind}"})
        assert (await spy.receive_type("error"))["code"] == "invalid"
        for frame in (
            {"type": "message.send", "room": room.slug, "body": "hi", "client_id": f"s-{room.kind}"},
            {"type": "read", "room": room.slug, "seq": 1},
        ):
            await stream.send(frame)
            assert (await stream.receive_type("error"))["code"] == "not_found"
        # mia types and writes in the room: oscar hears nothing on either socket.
        await sock.send({"type": "typing"})
        await sock.send({"type": "message.send", "body": "secret stuff", "client_id": f"m-{room.kind}"})
        assert (await sock.receive_type("ack"))["seq"] >= 2
    for sock in (spy, stream):
        assert await sock.nothing(0.5), "an outsider received a frame"
    # Recall/delete by id of someone else's private message: not found, nothing changes.
    message = await db(Message.objects.filter(room=rooms["private"], sender=mia).first)()
    for kind in ("message.recall", "message.delete"):
        await stream.send({"type": kind, "id": message.id})
        assert (await stream.receive_type("error"))["code"] == "not_found"
    for sock in [spy, stream, *watchers]:
        await sock.close()
    assert await db(Message.objects.filter(body="hi").count)() == 0


@pytest.mark.django_db(transaction=True)
async def test_presence_and_typing_do_not_leak_to_anonymous_readers_of_private_rooms(olivia, mia):
    await db(_private_rooms)(olivia, mia)
    sock, accepted = await open_socket("/ws/chat/secret/")
    assert accepted
    assert await sock.closed_with() == 4404


# Recall is decided by the server's clock -------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_client_timestamps_are_ignored_and_recall_uses_the_server_clock(olivia, settings):
    settings.PARLEY_RECALL_SECONDS = 30
    await db(services.room_create)(creator=olivia, slug="lobby", name="Lobby")
    sock, _ = await open_room("lobby", user=olivia)
    future = "2999-01-01T00:00:00+00:00"
    await sock.send({"type": "message.send", "body": "time travel", "client_id": "t1",
                     "created_at": future, "timestamp": future, "sent_at": future})
    ack = await sock.receive_type("ack")
    message = await db(Message.objects.get)(pk=ack["id"])
    assert abs((message.created_at - timezone.now()).total_seconds()) < 10
    # The window passes on the server's clock; a client claiming "it is still early" changes nothing.
    await db(Message.objects.filter(pk=message.pk).update)(created_at=timezone.now() - timedelta(seconds=31))
    await sock.send({"type": "message.recall", "id": message.id, "timestamp": timezone.now().isoformat(),
                     "created_at": timezone.now().isoformat(), "now": 0})
    assert (await sock.receive_type("error"))["code"] == "recall_window_passed"
    assert not (await db(Message.objects.get)(pk=message.pk)).recalled
    await sock.close()


@pytest.mark.django_db
def test_rest_ignores_client_timestamps_too(api, olivia):
    services.room_create(creator=olivia, slug="lobby", name="Lobby")
    response = api(olivia).post(
        "/api/rooms/lobby/messages/",
        {"body": "hi", "created_at": "2000-01-01T00:00:00Z", "timestamp": "2000-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 201
    message = Message.objects.get(pk=response.json()["id"])
    assert abs((message.created_at - timezone.now()).total_seconds()) < 10
    # Just sent by the server's clock, so recall works although the client said "year 2000".
    assert api(olivia).post(f"/api/messages/{message.id}/recall/", {"timestamp": "2000-01-01T00:00:00Z"},
                            format="json").status_code == 200


# CSRF on every HTML form ---------------------------------------------------------------


@pytest.mark.django_db
def test_every_html_form_and_session_api_write_needs_csrf(olivia, mia, oscar):
    rooms = _private_rooms(olivia, mia)
    services.room_create(creator=olivia, slug="lobby", name="Lobby")
    posts = [
        ("/accounts/login/", {"username": "mia", "password": "correct horse battery"}),
        ("/accounts/register/", {"username": "newbie", "password1": "x" * 12, "password2": "x" * 12}),
        ("/accounts/logout/", {}),
        ("/accounts/profile/", {"display_name": "Evil"}),
        ("/rooms/", {"slug": "evil", "name": "Evil"}),
        ("/rooms/lobby/join/", {}),
        ("/projects/bakery/chat/", {}),
        ("/i18n/setlang/", {"language": "zh-hans"}),
        ("/api/rooms/", {"slug": "evil2", "name": "Evil"}),
        ("/api/rooms/lobby/join/", {}),
        ("/api/rooms/lobby/messages/", {"body": "forged"}),
        (f"/api/rooms/{rooms['private'].slug}/members/", {"username": "mia"}),
        ("/api/dm/olivia/", {}),
        ("/api/projects/", {"title": "Evil", "slug": "evil3"}),
        ("/api/projects/bakery/chat/", {}),
    ]
    for path, data in posts:
        client = Client(enforce_csrf_checks=True)
        client.force_login(oscar)
        response = client.post(path, data)
        assert response.status_code == 403, (path, response.status_code)
    client = Client(enforce_csrf_checks=True)
    client.force_login(olivia)
    for method, path in (("patch", "/api/me/"), ("put", "/api/announcement/"),
                         ("delete", f"/api/rooms/{rooms['private'].slug}/members/mia/")):
        response = getattr(client, method)(path, {}, content_type="application/json")
        assert response.status_code == 403, (method, path, response.status_code)
    assert not Room.objects.filter(slug__startswith="evil").exists()
    assert not Message.objects.filter(body="forged").exists()
    assert Room.objects.get(slug="secret").memberships.filter(user=mia).exists()


# XSS: escaping and the Content-Security-Policy --------------------------------------------


@pytest.mark.django_db
def test_pages_carry_a_csp_without_inline_scripts(olivia):
    services.room_create(creator=olivia, slug="lobby", name="Lobby")
    client = Client()
    pages = ["/", "/accounts/login/", "/accounts/register/", "/rooms/lobby/"]
    logged_in = Client()
    logged_in.force_login(olivia)
    for c, path in [(client, p) for p in pages] + [(logged_in, "/"), (logged_in, "/rooms/lobby/"),
                                                   (logged_in, "/accounts/profile/")]:
        response = c.get(path)
        assert response.status_code == 200, path
        policy = response.headers.get("Content-Security-Policy")
        assert policy, f"{path} has no Content-Security-Policy"
        directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
        script = directives.get("script-src", directives.get("default-src"))
        assert script and "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, (path, policy)
        assert directives.get("object-src") == ["'none'"], path
        assert directives.get("frame-ancestors") == ["'none'"], path
        assert response.headers.get("X-Content-Type-Options") == "nosniff"
        # No inline script at all, so the policy costs the page nothing.
        assert "<script>" not in response.content.decode().replace("<script src", "")


@pytest.mark.django_db
def test_user_text_is_escaped_in_pages(olivia, mia):
    evil = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    mia.profile.display_name = evil
    mia.profile.save()
    room = services.room_create(creator=olivia, slug="xss", name=evil)
    services.room_join(user=mia, room=room)
    services.message_send(sender=mia, room=room, body=evil)
    project_services.project_create(owner=olivia, title=evil, slug="bakery", description=evil)
    client = Client()
    client.force_login(olivia)
    for path in ("/rooms/xss/", "/", "/projects/bakery/"):
        html = client.get(path).content.decode()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html or "\\u003Cscript\\u003E" in html, path
        assert "<script>alert(1)" not in html, path
        assert "<img src=x onerror" not in html, path


# Open redirects ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_room_create_form_does_not_redirect_off_site(olivia):
    client = Client()
    client.force_login(olivia)
    # A refused create (bad slug) keeps the form open on the page it answers with: it
    # redirects nowhere, whatever `next` says.
    for target in ("https://evil.example/phish", "//evil.example/phish", "/rooms/lobby/"):
        response = client.post("/rooms/", {"slug": "bad slug!", "name": "x", "next": target})
        assert response.status_code == 400 and not response.has_header("Location")
        assert 'value="bad slug!"' in response.content.decode()  # what was typed


# Oversized bodies ------------------------------------------------------------------------


@pytest.mark.django_db
def test_oversized_request_bodies_are_refused_413(api, olivia, settings):
    services.room_create(creator=olivia, slug="lobby", name="Lobby")
    too_big = settings.PARLEY_UPLOAD_MAX_BYTES + 1_048_576
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=olivia).key}")
    response = client.post(
        "/api/rooms/lobby/messages/",
        data=b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n" + b"x" * too_big,
        content_type="multipart/form-data; boundary=b",
    )
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    response = client.post(
        "/api/rooms/lobby/messages/", data=b'{"body": "' + b"x" * (too_big + 1_048_576) + b'"}',
        content_type="application/json",
    )
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert not Message.objects.exists()

